package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// produceThriftBatch: sendBatchSync of B messages of S bytes, C callers
// each on its own connection (framed + compact, as DDMQ's SDKs), against
// direct ProduceSync of the same batches.
var produceThriftBatch = scenario{
	repeatable: true,
	name:       "produce-thrift-batch",
	about:      "Thrift sendBatchSync vs direct franz-go ProduceSync, same batch and concurrency",
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		value := randomValue(p.size)
		return runThrift(e, p, func(c *producer.ProducerServiceClient, call int) error {
			ms := make([]*producer.Message, p.batch)
			for j := range ms {
				// Spread by hashId, as DDMQ places -1 (hashId 0 would all be partition 0).
				id := call*p.batch + j
				ms[j] = &producer.Message{Topic: "bench-thrift", Key: strconv.Itoa(id), HashId: int64(id), Body: value, PartitionId: -1}
			}
			return resultErr(c.SendBatchSync(ctx, ms))
		})
	},
	direct: directProduce,
}

// produceThriftSync: one message per sendSync, 16 callers; the point is the
// latency mqgate adds over a direct ProduceSync of one record.
var produceThriftSync = scenario{
	repeatable: true,
	name:       "produce-thrift-sync",
	about:      "Thrift sendSync of one message vs direct ProduceSync of one record, 16 callers",
	latency:    true,
	adjust: func(p params) params {
		p.batch, p.concurrency = 1, 16
		p.n = min(p.n, 50000)
		return p
	},
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		value := randomValue(p.size)
		return runThrift(e, p, func(c *producer.ProducerServiceClient, call int) error {
			return resultErr(c.SendSync(ctx, &producer.Message{Topic: "bench-thrift-sync", Key: strconv.Itoa(call), HashId: int64(call), Body: value, PartitionId: -1}, 5000))
		})
	},
	direct: directProduce,
}

// produceAsync: POST ?mode=async with batches of B, C in flight: messages
// accepted once fsynced in the spool. The direct side is ProduceSync of the
// same batches, for scale; the spool forwards to the same broker meanwhile.
var produceAsync = scenario{
	name:  "produce-async",
	about: "HTTP mode=async (spooled, fsynced) vs direct ProduceSync",
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		bodies, err := jsonBodies(p)
		if err != nil {
			return result{}, err
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: p.concurrency * 2}}
		url := "http://" + e.httpAddr + "/v1/topics/bench-async/messages?mode=async"
		if err := postStatus(client, url, bodies[0], http.StatusAccepted); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
		return runCalls(p, func(_, call int) error {
			return postStatus(client, url, bodies[call%len(bodies)], http.StatusAccepted)
		}), nil
	},
	direct: directProduce,
}

// runThrift gives each worker a client of its own, warms up with one call
// (which creates the topic), then times p's calls of send.
func runThrift(e *env, p params, send func(c *producer.ProducerServiceClient, call int) error) (result, error) {
	clients, closeAll, err := thriftClients(e, p.concurrency)
	if err != nil {
		return result{}, err
	}
	defer closeAll()
	if err := send(clients[0], 0); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	return runCalls(p, func(worker, call int) error { return send(clients[worker], call) }), nil
}

func resultErr(r *producer.Result_, err error) error {
	if err != nil {
		return err
	}
	if r.Code != 0 {
		return fmt.Errorf("code %d: %s", r.Code, r.Msg)
	}
	return nil
}

// thriftClients opens one client per worker, each on its own connection
// (a Thrift client is not safe for concurrent calls), framed + compact.
func thriftClients(e *env, n int) ([]*producer.ProducerServiceClient, func(), error) {
	var clients []*producer.ProducerServiceClient
	var trans []thrift.TTransport
	closeAll := func() {
		for _, t := range trans {
			_ = t.Close() // the benchmark is over
		}
	}
	for range n {
		sock := thrift.NewTSocketConf(e.thriftAddr, &thrift.TConfiguration{})
		t := thrift.NewTFramedTransportConf(sock, &thrift.TConfiguration{})
		if err := t.Open(); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("connecting to %s: %w", e.thriftAddr, err)
		}
		trans = append(trans, t)
		clients = append(clients, producer.NewProducerServiceClientFactory(t, thrift.NewTCompactProtocolFactoryConf(&thrift.TConfiguration{})))
	}
	return clients, closeAll, nil
}
