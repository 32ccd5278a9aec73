package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// adminSide is how many messages the admin scenario browses and dead
// letters it redrives per pass.
const adminSide = 1000

// adminLoad: does the admin API disturb producers? The produce-http load
// (the same flags) runs twice against the gateway: alone, and with an
// admin client beside it that makes -admin-passes passes (0: back to back
// for the whole run, far more than a person at a console asks), each
// browsing 1,000 messages of a topic (10 pages of 100), searching them
// all for a value no message holds (one search reading 1,000), listing
// the topics and groups, and redriving 1,000 dead letters of a group (10
// calls of 100), one request at a time,
// starting once the producer is under way. The "direct" line is the
// producer alone; the ratio is what the admin traffic leaves of its rate
// over its whole run. The report says how many passes ran and how long
// one took.
var adminLoad = scenario{
	name:      "admin",
	about:     "produce-http with an admin client browsing and searching 1,000 messages, listing topics and groups and redriving 1,000 dead letters beside it, vs produce-http alone",
	kafkaOnly: true, // the dead letters are written with franz-go
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		if err := fillAdmin(ctx, e, p); err != nil {
			return result{}, err
		}
		e.restartMeter()
		actx, stop := context.WithCancel(ctx)
		var browsed, searched, redriven atomic.Int64
		var passes int
		var took time.Duration
		done := make(chan error, 1)
		go func() {
			time.Sleep(500 * time.Millisecond) // the producer is under way
			for actx.Err() == nil && (p.adminPasses == 0 || passes < p.adminPasses) {
				start := time.Now()
				if err := adminPass(actx, e, &browsed, &searched, &redriven); err != nil {
					done <- err
					return
				}
				if actx.Err() == nil {
					passes++
					took += time.Since(start)
				}
			}
			done <- nil
		}()
		r, err := produceHTTP.gateway(ctx, e, p)
		stop()
		if aerr := <-done; aerr != nil && err == nil {
			err = fmt.Errorf("admin client: %w", aerr)
		}
		pass := "no pass finished within the producer's run: make -n larger"
		if passes > 0 {
			pass = fmt.Sprintf("%d passes of 1,000 browsed, 1,000 searched, the lists and 1,000 redriven, %s each", passes, (took / time.Duration(passes)).Round(time.Millisecond))
		}
		r.note = fmt.Sprintf("%d messages browsed, %d searched and %d dead letters redriven beside it (%s)", browsed.Load(), searched.Load(), redriven.Load(), pass)
		return r, err
	},
	direct: func(ctx context.Context, e *env, p params) (result, error) {
		r, err := produceHTTP.gateway(ctx, e, p)
		r.note = "the same produce-http load, nothing beside it"
		return r, err
	},
	report: func(g, d result) {
		fmt.Printf("admin: with admin traffic: %s; alone: %s\n", g.note, d.note)
	},
}

// fillAdmin writes what the admin client reads: adminSide messages to
// bench-admin-browse, and adminSide dead letters of group bench-admin
// (whose dead-letter topic is bench-admin-dlq) that name
// bench-admin-origin as their origin.
func fillAdmin(ctx context.Context, e *env, p params) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.ProducerBatchMaxBytes(16<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, 1, -1, nil, "bench-admin-browse", "bench-admin-dlq", "bench-admin-origin"); err != nil {
		return fmt.Errorf("creating the admin topics: %w", err)
	}
	value := randomValue(p.size)
	var rs []*kgo.Record
	for i := range adminSide {
		rs = append(rs, &kgo.Record{Topic: "bench-admin-browse", Key: []byte(strconv.Itoa(i)), Value: value},
			&kgo.Record{Topic: "bench-admin-dlq", Key: []byte(strconv.Itoa(i)), Value: value, Headers: []kgo.RecordHeader{
				{Key: "mqgate-dlq-origin-topic", Value: []byte("bench-admin-origin")},
				{Key: "mqgate-dlq-last-error", Value: []byte("failed by the bench")}}})
	}
	return cl.ProduceSync(ctx, rs...).FirstErr()
}

// adminPass browses adminSide messages and redrives adminSide dead
// letters, one request at a time, as a person at the console would, only
// without pausing; it stops early when ctx ends.
func adminPass(ctx context.Context, e *env, browsed, searched, redriven *atomic.Int64) error {
	base := "http://" + e.httpAddr
	{
		for next := int64(0); next < adminSide && ctx.Err() == nil; {
			var page struct {
				Next     int64             `json:"next_offset"`
				Messages []json.RawMessage `json:"messages"`
			}
			err := adminCall(ctx, "GET", base+"/v1/admin/topics/bench-admin-browse/messages?qid=0&limit=100&offset="+strconv.FormatInt(next, 10), "", &page)
			if err != nil {
				return err
			}
			browsed.Add(int64(len(page.Messages)))
			if len(page.Messages) == 0 {
				break
			}
			next = page.Next
		}
		var found struct {
			Scanned int64 `json:"scanned"`
		}
		if err := adminCall(ctx, "GET", base+"/v1/admin/topics/bench-admin-browse/search?value_contains=no-such-text&scan=10000", "", &found); err != nil {
			return err
		}
		searched.Add(found.Scanned)
		var lists map[string]json.RawMessage
		for _, list := range []string{"topics", "groups"} {
			if err := adminCall(ctx, "GET", base+"/v1/admin/"+list, "", &lists); err != nil {
				return err
			}
		}
		for first := 0; first < adminSide && ctx.Err() == nil; first += 100 {
			offs := make([]string, 100)
			for i := range offs {
				offs[i] = strconv.Itoa(first + i)
			}
			var out struct {
				Redriven int64 `json:"redriven"`
			}
			body := `{"qid": "0", "offsets": [` + strings.Join(offs, ",") + `]}`
			if err := adminCall(ctx, "POST", base+"/v1/admin/groups/bench-admin/dead-letters/redrive", body, &out); err != nil {
				return err
			}
			redriven.Add(out.Redriven)
		}
	}
	return nil
}

// adminCall makes one admin request and decodes its 200 answer into out;
// a request cut short by ctx is not an error.
func adminCall(ctx context.Context, method, target, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, (&url.URL{Path: req.URL.Path}).String(), resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}
