package main

import (
	"context"
	"fmt"
	"strconv"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// directProduceRocketMQ is the direct side of the produce scenarios on
// RocketMQ: rocketmq-client-go's producer sending the same batches
// (SendSync of B messages to one queue) with the same concurrency.
func directProduceRocketMQ(ctx context.Context, e *env, p params) (result, error) {
	if err := e.rocketmq.CreateTopic("bench-direct", e.partitions); err != nil {
		return result{}, err
	}
	prod, err := rmq.NewProducer(
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{e.rocketmq.Addr()})),
		producer.WithGroupName("bench-direct"),
		producer.WithInstanceName("bench-direct"),
		producer.WithQueueSelector(producer.NewRoundRobinQueueSelector()),
	)
	if err != nil {
		return result{}, err
	}
	if err := prod.Start(); err != nil {
		return result{}, err
	}
	defer prod.Shutdown()
	value := randomValue(p.size)
	batch := func(call int) []*primitive.Message {
		ms := make([]*primitive.Message, p.batch)
		for j := range ms {
			ms[j] = primitive.NewMessage("bench-direct", value).WithKeys([]string{strconv.Itoa(call*p.batch + j)})
		}
		return ms
	}
	send := func(call int) error {
		res, err := prod.SendSync(ctx, batch(call)...)
		if err == nil && res.Status != primitive.SendOK {
			err = fmt.Errorf("send status %d", res.Status)
		}
		return err
	}
	if err := send(0); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	return runCalls(p, func(_, call int) error { return send(call) }), nil
}
