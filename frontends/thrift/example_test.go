package thriftapi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/core/produce"
	thriftapi "github.com/mqgate/mqgate/frontends/thrift"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// printingProducer stands in for the router: it prints what it is asked
// to produce.
type printingProducer struct{}

func (printingProducer) Produce(_ context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
	for _, m := range msgs {
		fmt.Printf("produce to %s: key=%s value=%q headers=%d\n", topic, m.Key, m.Value, len(m.Headers))
	}
	return make([]sdk.ProduceResult, len(msgs)), nil
}

func (printingProducer) ProduceAsync(context.Context, string, []produce.Message) error { return nil }

// A Go client generated from producer.thrift, as docs/thrift.md shows it,
// against a ProducerService with the default framed transport and compact
// protocol.
func Example() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := thriftapi.NewProducerServer(thriftapi.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, printingProducer{})
	go srv.Serve(l)
	defer srv.Stop()

	// The client, as in docs/thrift.md.
	cfg := &thrift.TConfiguration{}
	sock := thrift.NewTSocketConf(l.Addr().String(), cfg)
	trans := thrift.NewTFramedTransportConf(sock, cfg)
	if err := trans.Open(); err != nil {
		log.Fatal(err)
	}
	defer trans.Close()
	client := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(cfg))

	m := producer.NewMessage() // partitionId -1: by hashId, else by key
	m.Topic, m.Key = "orders", "order-42"
	m.Body = []byte(`{"id": 42}`)
	m.Properties = map[string]string{"source": "checkout"}
	res, err := client.SendSync(context.Background(), m, 3000) // timeout in ms
	if err != nil {
		log.Fatal(err) // the connection failed; the message may or may not have been produced
	}
	fmt.Println(res.Code, res.Msg, res.GetKey())

	m.Topic = ""
	res, _ = client.SendSync(context.Background(), m, 3000)
	fmt.Println(res.Code, res.Msg)
	// Output:
	// produce to orders: key=order-42 value="{\"id\": 42}" headers=1
	// 0 OK order-42
	// 11 message.topic: must not be empty
}
