package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
)

// A DDMQ consumer's loop through the Thrift ConsumerService: pull, process,
// pass the ConsumeResult on the next pull. Every message is consumed once,
// the group's lag falls to zero, and getConsumeStats says so.
func TestThriftConsumerLoop(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		s := writeConfig(t, dir, kind.local(t, dir), options{})
		g := startGateway(t, s)
		var msgs []string
		for i := range 30 {
			msgs = append(msgs, fmt.Sprintf(`{"key":"k%d","value":"m%02d"}`, i, i))
		}
		g.produceOK("events", `{"messages":[`+strings.Join(msgs, ",")+`]}`)

		trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(g.consumerAddr, nil), nil)
		if err := trans.Open(); err != nil {
			t.Fatal(err)
		}
		defer trans.Close()
		client := consumer.NewConsumerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(nil))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		seen := map[string]int{}
		var result *consumer.ConsumeResult_
		batch, linger := int32(7), int32(500)
		for len(seen) < 30 && ctx.Err() == nil {
			topic := "events"
			req := &consumer.PullRequest{GroupId: "ddmq", Topic: &topic, MaxBatchSize: &batch, MaxLingerTime: &linger, Result_: result}
			resp, err := client.Pull(ctx, req)
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			result = nil
			if len(resp.Messages) == 0 {
				continue
			}
			var offsets []int64
			for _, m := range resp.Messages {
				seen[string(m.Value)]++
				offsets = append(offsets, m.Offset)
			}
			// Processed: acked on the next pull, as DDMQ's SDK does.
			result = &consumer.ConsumeResult_{Context: resp.Context, SuccessOffsets: offsets, FailOffsets: []int64{}}
		}
		if _, err := client.Submit(ctx, result); result != nil && err != nil {
			t.Fatalf("submit: %v", err)
		}
		for i := range 30 {
			if v := fmt.Sprintf("m%02d", i); seen[v] != 1 {
				t.Errorf("%s consumed %d times", v, seen[v])
			}
		}
		topic := "events"
		waitFor(t, "the lag to reach zero", func() bool {
			stats, err := client.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "ddmq", Topic: &topic})
			if err != nil || len(stats) != 1 {
				return false
			}
			var consumed, produced int64
			for qid, o := range stats[0].ConsumeOffsets {
				consumed += o
				produced += stats[0].ProduceOffsets[qid]
			}
			return produced == 30 && consumed == 30
		})
		// The HTTP stats agree.
		code, body := g.do("GET", "/v1/groups/ddmq/stats?topic=events", "", nil)
		var st struct {
			Stats []struct {
				Lag int64 `json:"lag"`
			} `json:"stats"`
		}
		if code != 200 || json.Unmarshal(body, &st) != nil || len(st.Stats) != 1 || st.Stats[0].Lag != 0 {
			t.Fatalf("HTTP stats: %d %s; want lag 0", code, body)
		}
	})
}

// consumerListen reads thrift.consumer_listen back from a written config.
// Seed 004's batch-id API at the root, for http.batch_default, with its
// own curl examples' paths: info, fetch_new with an ack, fetch_old, ack.
func TestBatchIDRootRoutes(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: "", httpExtra: "batch_default: {group: ape, topic: dts}"}))
		g.produceOK("dts", `{"messages":[{"value":"a"},{"value":"b"},{"value":"c"},{"value":"d"}]}`)
		code, body := g.do("GET", "/info", "", nil)
		if code != 200 || string(body) != "{\"acked_batch_id\":0,\"sent_batch_id\":0}\n" {
			t.Fatalf("info: %d %s", code, body)
		}
		type batch struct {
			Data    []json.RawMessage `json:"data"`
			BatchID int64             `json:"batch_id"`
		}
		var b1 batch
		for len(b1.Data) == 0 {
			code, body = g.do("GET", "/fetch_new?batch_size=2", "", nil)
			if code != 200 || json.Unmarshal(body, &b1) != nil {
				t.Fatalf("fetch_new: %d %s", code, body)
			}
		}
		code, old := g.do("GET", fmt.Sprintf("/fetch_old?old_batch_id=%d", b1.BatchID), "", nil)
		var again batch
		if code != 200 || json.Unmarshal(old, &again) != nil || fmt.Sprint(again.Data) != fmt.Sprint(b1.Data) {
			t.Fatalf("fetch_old %d: %d %s; want the same data as %s", b1.BatchID, code, old, body)
		}
		code, body = g.do("GET", fmt.Sprintf("/fetch_new?batch_size=2&ack_batch_id=%d", b1.BatchID), "", nil)
		var b2 batch
		if code != 200 || json.Unmarshal(body, &b2) != nil || b2.BatchID != b1.BatchID+1 {
			t.Fatalf("fetch_new with ack_batch_id: %d %s", code, body)
		}
		code, body = g.do("POST", "/ack", fmt.Sprintf(`{"ack_batch_id": %d}`, b2.BatchID), nil)
		if code != 200 || string(body) != fmt.Sprintf("{\"acked_batch_id\":%d}\n", b2.BatchID) {
			t.Fatalf("ack: %d %s", code, body)
		}
		code, body = g.do("GET", fmt.Sprintf("/fetch_old?old_batch_id=%d", b2.BatchID), "", nil)
		checkAPIError(t, "fetch_old of an acked batch", code, body, 400, 11, "old_batch_id")
	})
}
