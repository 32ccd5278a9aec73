// Command rmqread reads a RocketMQ topic from its first offset with
// rocketmq-client-go's push consumer, in a new consumer group, and prints
// each message as a JSON line on stdout. It runs until its stdin closes.
//
// Tests use it to check what mqgate wrote with RocketMQ's own Go client. It
// runs in a process of its own, built without the race detector, because
// rocketmq-client-go v2.1.2 races with itself at start-up (its first route
// refresh reads SubscriptionData.SubVersion while the push consumer's first
// rebalance writes it): inside a -race test binary that report would fail
// tests that have nothing to do with it.
//
//	rmqread -nameserver 127.0.0.1:9876 -topic orders -group reader-1
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// Message is one line of output.
type Message struct {
	Key        string            `json:"key"`
	Value      []byte            `json:"value"` // base64: bodies may be binary
	Tags       string            `json:"tags"`
	Properties map[string]string `json:"properties"`
	QueueID    int32             `json:"queue_id"`
	Offset     int64             `json:"offset"`
}

func main() {
	nameserver := flag.String("nameserver", "", "the name server, host:port")
	topic := flag.String("topic", "", "the topic to read")
	group := flag.String("group", "", "a consumer group of its own")
	flag.Parse()
	if *nameserver == "" || *topic == "" || *group == "" {
		fmt.Fprintln(os.Stderr, "usage: rmqread -nameserver HOST:PORT -topic TOPIC -group GROUP")
		os.Exit(2)
	}
	rlog.SetLogLevel("error") // the client logs at info to stdout, where the messages go
	if err := read(*nameserver, *topic, *group); err != nil {
		fmt.Fprintln(os.Stderr, "rmqread:", err)
		os.Exit(1)
	}
}

func read(nameserver, topic, group string) error {
	c, err := rmq.NewPushConsumer(
		consumer.WithGroupName(group),
		consumer.WithInstance(group),
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{nameserver})),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	)
	if err != nil {
		return err
	}
	var mu sync.Mutex // the client calls back from one goroutine per queue
	out := json.NewEncoder(os.Stdout)
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			line := Message{Key: m.GetKeys(), Value: m.Body, Tags: m.GetTags(), Properties: m.GetProperties(),
				QueueID: int32(m.Queue.QueueId), Offset: m.QueueOffset}
			if err := out.Encode(line); err != nil {
				return consumer.SuspendCurrentQueueAMoment, err
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test is done with us
	return c.Shutdown()
}
