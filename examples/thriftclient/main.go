// Command thriftclient sends one message to mqgate's ProducerService the way a
// DDMQ client does (framed transport, compact protocol), with the client
// generated from DDMQ's producer IDL. Run it against `go run ./cmd/mqgate`:
//
//	go run ./examples/thriftclient
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

func main() {
	cfg := &thrift.TConfiguration{}
	sock := thrift.NewTSocketConf("127.0.0.1:9613", cfg)
	trans := thrift.NewTFramedTransportConf(sock, cfg)
	if err := trans.Open(); err != nil {
		log.Fatal(err)
	}
	defer trans.Close()
	client := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(cfg))

	m := producer.NewMessage() // partitionId -1: by hashId % partitions, as DDMQ places it
	m.Topic, m.Key, m.HashId = "orders", "order-42", 42
	m.Body = []byte(`{"id": 42}`)
	m.Properties = map[string]string{"source": "checkout"}
	res, err := client.SendSync(context.Background(), m, 3000) // timeout in ms
	if err != nil {
		log.Fatal(err) // no answer: the message may or may not have been produced
	}
	if res.Code != 0 {
		log.Fatalf("code %d: %s", res.Code, res.Msg)
	}
	fmt.Println(res.Msg, res.GetKey()) // OK order-42
}
