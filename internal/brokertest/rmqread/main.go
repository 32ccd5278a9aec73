// Command rmqread reads a RocketMQ topic from its first offset with
// rocketmq-client-go's push consumer, in a clustering consumer group, and
// prints each delivery as a JSON line on stdout. It runs until its stdin
// closes, then shuts the consumer down, which persists its offsets, and
// exits.
//
// Tests use it to check what mqgate wrote with RocketMQ's own Go client, and
// to check the RocketMQ fake against that client. It runs in a process of
// its own, built without the race detector, because rocketmq-client-go
// v2.1.2 races with itself at start-up (its first route refresh reads
// SubscriptionData.SubVersion while the push consumer's first rebalance
// writes it): inside a -race test binary that report would fail tests that
// have nothing to do with it.
//
//	rmqread -nameserver 127.0.0.1:9876 -topic orders -group reader-1
//
// Flags shape the consumer for what a test checks: -tags subscribes with a
// TAG expression; -serial makes the client call the handler once at a
// time, so that each queue's deliveries print in offset order and a
// sentinel at the end of a queue means everything before it has printed;
// -fail answers RECONSUME_LATER to the first deliveries, and
// -max-reconsume bounds the redeliveries before the dead-letter queue.
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

// Message is one line of output: one delivery.
type Message struct {
	Topic          string            `json:"topic"`
	Key            string            `json:"key"`
	Value          []byte            `json:"value"` // base64: bodies may be binary
	Tags           string            `json:"tags"`
	Properties     map[string]string `json:"properties"`
	QueueID        int32             `json:"queue_id"`
	Offset         int64             `json:"offset"`
	OffsetMsgID    string            `json:"offset_msg_id"`
	StoreHost      string            `json:"store_host"`
	ReconsumeTimes int32             `json:"reconsume_times"`
}

// options are the flags.
type options struct {
	nameserver, topic, group string
	tags                     string
	serial                   bool
	fail                     int
	maxReconsume             int
}

func main() {
	var o options
	flag.StringVar(&o.nameserver, "nameserver", "", "the name server, host:port")
	flag.StringVar(&o.topic, "topic", "", "the topic to read")
	flag.StringVar(&o.group, "group", "", "the consumer group (also the client's instance name)")
	flag.StringVar(&o.tags, "tags", "*", "the TAG expression to subscribe with, as in \"a || b\"")
	flag.BoolVar(&o.serial, "serial", false, "call the handler once at a time: each queue's deliveries print in offset order")
	flag.IntVar(&o.fail, "fail", 0, "answer RECONSUME_LATER to the first `n` deliveries (printed all the same); -1: to every one")
	flag.IntVar(&o.maxReconsume, "max-reconsume", -1, "redeliveries of a failed message before the dead-letter queue; -1: the client's default")
	flag.Parse()
	if o.nameserver == "" || o.topic == "" || o.group == "" {
		fmt.Fprintln(os.Stderr, "usage: rmqread -nameserver HOST:PORT -topic TOPIC -group GROUP [-tags EXPR] [-serial] [-fail N] [-max-reconsume N]")
		os.Exit(2)
	}
	rlog.SetLogLevel("error") // the client logs at info to stdout, where the messages go
	if err := read(o); err != nil {
		fmt.Fprintln(os.Stderr, "rmqread:", err)
		os.Exit(1)
	}
}

func read(o options) error {
	opts := []consumer.Option{
		consumer.WithGroupName(o.group),
		consumer.WithInstance(o.group),
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{o.nameserver})),
		consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}
	if o.serial {
		// One handler goroutine per topic: the client starts a queue's
		// next delivery only after the previous one returned and its
		// offset was recorded.
		opts = append(opts, consumer.WithConsumeGoroutineNums(1))
	}
	if o.maxReconsume >= 0 {
		opts = append(opts, consumer.WithMaxReconsumeTimes(int32(o.maxReconsume)))
	}
	c, err := rmq.NewPushConsumer(opts...)
	if err != nil {
		return err
	}
	var mu sync.Mutex // the client calls back from one goroutine per message
	out := json.NewEncoder(os.Stdout)
	delivered := 0
	err = c.Subscribe(o.topic, consumer.MessageSelector{Type: consumer.TAG, Expression: o.tags}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		result := consumer.ConsumeSuccess
		for _, m := range msgs {
			line := Message{Topic: m.Topic, Key: m.GetKeys(), Value: m.Body, Tags: m.GetTags(), Properties: m.GetProperties(),
				QueueID: int32(m.Queue.QueueId), Offset: m.QueueOffset, OffsetMsgID: m.OffsetMsgId, StoreHost: m.StoreHost,
				ReconsumeTimes: m.ReconsumeTimes}
			if err := out.Encode(line); err != nil {
				return consumer.SuspendCurrentQueueAMoment, err
			}
			delivered++
			if o.fail < 0 || delivered <= o.fail {
				result = consumer.ConsumeRetryLater
			}
		}
		return result, nil
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
