package redis

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/internal/testredis"
	"github.com/mqgate/mqgate/sdk"
)

// Every command lands in Redis exactly as mapped, read back with go-redis.
// Each case writes its records with its own commands into keys named
// after the case, on one server.
func TestEveryCommandLandsExactly(t *testing.T) {
	addr := testredis.Start(t)
	rdb := client(t, addr)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T) // state before the write
		commands string
		values   []string // the records' values, offsets 0, 1, ...
		check    func(t *testing.T)
	}{
		{
			name:     "SET with a fixed ttl in seconds",
			commands: `[{"cmd": "SET", "key": "'set:' + string(json.id)", "value": "json.name", "ttl": 3600}]`,
			values:   []string{`{"id": 1, "name": "ada"}`},
			check: func(t *testing.T) {
				equal(t, "GET set:1", get(t, rdb.Get(ctx, "set:1")), "ada")
				ttlWithin(t, rdb, "set:1", 3600*time.Second)
			},
		},
		{
			name:     "SET with a ttl in fractions of a second and a number value",
			commands: `[{"cmd": "SET", "key": "'setpx:' + key", "value": "json.total", "ttl": "json.ttl"}]`,
			values:   []string{`{"total": 99.5, "ttl": 1.5}`},
			check: func(t *testing.T) {
				equal(t, "GET setpx:k0", get(t, rdb.Get(ctx, "setpx:k0")), "99.5")
				ttlWithin(t, rdb, "setpx:k0", 1500*time.Millisecond)
			},
		},
		{
			name:     "SET NX keeps what exists and is a success",
			setup:    func(t *testing.T) { rdb.Set(ctx, "setnx:old", "before", 0) },
			commands: `[{"cmd": "SET", "key": "'setnx:' + json.k", "value": "json.v", "nx": true}]`,
			values:   []string{`{"k": "old", "v": "after"}`, `{"k": "new", "v": "after"}`},
			check: func(t *testing.T) {
				equal(t, "GET setnx:old", get(t, rdb.Get(ctx, "setnx:old")), "before")
				equal(t, "GET setnx:new", get(t, rdb.Get(ctx, "setnx:new")), "after")
			},
		},
		{
			name:     "SET XX sets only what exists",
			setup:    func(t *testing.T) { rdb.Set(ctx, "setxx:old", "before", 0) },
			commands: `[{"cmd": "SET", "key": "'setxx:' + json.k", "value": "json.v", "xx": true}]`,
			values:   []string{`{"k": "old", "v": "after"}`, `{"k": "new", "v": "after"}`},
			check: func(t *testing.T) {
				equal(t, "GET setxx:old", get(t, rdb.Get(ctx, "setxx:old")), "after")
				missing(t, rdb, "setxx:new")
			},
		},
		{
			name: "MSET from pairs and from one map",
			commands: `[{"cmd": "MSET", "pairs": [{"key": "'mset:a:' + key", "value": "json.a"}, {"key": "'mset:b:' + key", "value": "json.b"}]},
				{"cmd": "MSET", "pairs": "{('mset:c:' + key): json.a, ('mset:d:' + key): json}"}]`,
			values: []string{`{"a": "x", "b": 2}`},
			check: func(t *testing.T) {
				got, err := rdb.MGet(ctx, "mset:a:k0", "mset:b:k0", "mset:c:k0", "mset:d:k0").Result()
				if err != nil {
					t.Fatal(err)
				}
				equal(t, "MGET", got, []any{"x", "2", "x", `{"a":"x","b":2}`})
			},
		},
		{
			name: "HSET from field expressions, a nil field left out",
			commands: `[{"cmd": "HSET", "key": "'order:' + string(json.id)",
				"fields": {"status": "json.status", "total": "json.total", "paid": "json.paid", "note": "json?.note", "items": "json.items"}}]`,
			values: []string{`{"id": 42, "status": "paid", "total": 99.5, "paid": true, "items": [1, 2]}`},
			check: func(t *testing.T) {
				equal(t, "HGETALL order:42", get(t, rdb.HGetAll(ctx, "order:42")),
					map[string]string{"status": "paid", "total": "99.5", "paid": "true", "items": "[1,2]"})
			},
		},
		{
			name:     "HMSET from one map",
			commands: `[{"cmd": "HMSET", "key": "'hmset:' + key", "fields": "json"}]`,
			values:   []string{`{"a": "1", "b": 2, "c": null}`},
			check: func(t *testing.T) {
				equal(t, "HGETALL hmset:k0", get(t, rdb.HGetAll(ctx, "hmset:k0")), map[string]string{"a": "1", "b": "2"})
			},
		},
		{
			name:     "HDEL of listed fields and of fields an expression names",
			setup:    func(t *testing.T) { rdb.HSet(ctx, "hdel", "a", 1, "b", 2, "c", 3, "d", 4, "e", 5) },
			commands: `[{"cmd": "HDEL", "key": "'hdel'", "fields": ["a", "b"]}, {"cmd": "HDEL", "key": "'hdel'", "fields": "json.gone"}]`,
			values:   []string{`{"gone": ["c", "d"]}`},
			check: func(t *testing.T) {
				equal(t, "HGETALL hdel", get(t, rdb.HGetAll(ctx, "hdel")), map[string]string{"e": "5"})
			},
		},
		{
			name:     "DEL",
			setup:    func(t *testing.T) { rdb.Set(ctx, "del:7", "x", 0) },
			commands: `[{"cmd": "DEL", "key": "'del:' + string(json.id)"}]`,
			values:   []string{`{"id": 7}`, `{"id": 8}`},
			check:    func(t *testing.T) { missing(t, rdb, "del:7") },
		},
		{
			name:     "EXPIRE with a fixed duration and with one per record",
			setup:    func(t *testing.T) { rdb.Set(ctx, "exp:a", "x", 0); rdb.Set(ctx, "exp:b", "x", 0) },
			commands: `[{"cmd": "EXPIRE", "key": "'exp:a'", "ttl": "2h"}, {"cmd": "EXPIRE", "key": "'exp:b'", "ttl": "json.ttl"}]`,
			values:   []string{`{"ttl": "250ms"}`},
			check: func(t *testing.T) {
				ttlWithin(t, rdb, "exp:a", 2*time.Hour)
				ttlWithin(t, rdb, "exp:b", 250*time.Millisecond)
			},
		},
		{
			name:     "EXPIRE NX leaves a ttl that is set",
			setup:    func(t *testing.T) { rdb.Set(ctx, "expnx", "x", time.Hour) },
			commands: `[{"cmd": "EXPIRE", "key": "'expnx'", "ttl": 7200, "nx": true}]`,
			values:   []string{`{}`},
			check:    func(t *testing.T) { ttlWithin(t, rdb, "expnx", time.Hour) },
		},
		{
			name:     "INCRBY in record order",
			commands: `[{"cmd": "INCRBY", "key": "'sold:' + json.sku", "by": "json.qty"}]`,
			values:   []string{`{"sku": "a", "qty": 2}`, `{"sku": "a", "qty": -5}`, `{"sku": "a", "qty": "10"}`, `{"sku": "b", "qty": 3.0}`},
			check: func(t *testing.T) {
				equal(t, "GET sold:a", get(t, rdb.Get(ctx, "sold:a")), "7")
				equal(t, "GET sold:b", get(t, rdb.Get(ctx, "sold:b")), "3")
			},
		},
		{
			name:     "LPUSH with max_len keeps the newest first",
			commands: `[{"cmd": "LPUSH", "key": "'lpush'", "value": "offset", "max_len": 3}]`,
			values:   []string{`{}`, `{}`, `{}`, `{}`, `{}`},
			check: func(t *testing.T) {
				equal(t, "LRANGE lpush", get(t, rdb.LRange(ctx, "lpush", 0, -1)), []string{"4", "3", "2"})
			},
		},
		{
			name:     "RPUSH with max_len keeps the newest last",
			commands: `[{"cmd": "RPUSH", "key": "'rpush'", "value": "json.v", "max_len": 2}, {"cmd": "RPUSH", "key": "'rpush:all'", "value": "json.v"}]`,
			values:   []string{`{"v": "a"}`, `{"v": "b"}`, `{"v": "c"}`},
			check: func(t *testing.T) {
				equal(t, "LRANGE rpush", get(t, rdb.LRange(ctx, "rpush", 0, -1)), []string{"b", "c"})
				equal(t, "LRANGE rpush:all", get(t, rdb.LRange(ctx, "rpush:all", 0, -1)), []string{"a", "b", "c"})
			},
		},
		{
			name:     "SADD and SREM",
			commands: `[{"cmd": "SADD", "key": "'set'", "member": "json.add"}, {"cmd": "SREM", "key": "'set'", "member": "json.rem"}]`,
			values:   []string{`{"add": "a", "rem": "x"}`, `{"add": "b", "rem": "a"}`, `{"add": 3, "rem": "x"}`},
			check: func(t *testing.T) {
				got := get(t, rdb.SMembers(ctx, "set"))
				equal(t, "SCARD set", len(got), 2)
				for _, m := range []string{"b", "3"} {
					if ok, _ := rdb.SIsMember(ctx, "set", m).Result(); !ok {
						t.Errorf("set lacks %s: %v", m, got)
					}
				}
			},
		},
		{
			name: "ZADD with scores, NX, and ZREM",
			commands: `[{"cmd": "ZADD", "key": "'board'", "member": "json.user", "score": "json.points"},
				{"cmd": "ZADD", "key": "'first'", "member": "json.user", "score": "offset", "nx": true},
				{"cmd": "ZREM", "key": "'board'", "member": "json.drop"}]`,
			values: []string{`{"user": "ada", "points": 10.5, "drop": "-"}`, `{"user": "bob", "points": "7", "drop": "-"}`,
				`{"user": "ada", "points": 3, "drop": "bob"}`},
			check: func(t *testing.T) {
				equal(t, "ZRANGE board", get(t, rdb.ZRangeWithScores(ctx, "board", 0, -1)), []redis.Z{{Score: 3, Member: "ada"}})
				equal(t, "ZRANGE first", get(t, rdb.ZRangeWithScores(ctx, "first", 0, -1)),
					[]redis.Z{{Score: 0, Member: "ada"}, {Score: 1, Member: "bob"}})
			},
		},
		{
			name: "XADD with fields, an id per record, and MAXLEN",
			commands: `[{"cmd": "XADD", "key": "'stream'", "fields": {"v": "json.v"}, "id": "string(offset + 1) + '-0'", "max_len": 2},
				{"cmd": "XADD", "key": "'stream:all'", "fields": "json", "max_len": 100, "approx": true}]`,
			values: []string{`{"v": "a"}`, `{"v": "b"}`, `{"v": "c"}`},
			check: func(t *testing.T) {
				msgs := get(t, rdb.XRange(ctx, "stream", "-", "+"))
				equal(t, "XRANGE stream", msgs, []redis.XMessage{
					{ID: "2-0", Values: map[string]any{"v": "b"}}, {ID: "3-0", Values: map[string]any{"v": "c"}}})
				equal(t, "XLEN stream:all", get(t, rdb.XLen(ctx, "stream:all")), int64(3))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			s := configure(t, standalone(addr, tc.commands))
			var rs []sdk.Record
			for i, v := range tc.values {
				rs = append(rs, record(int64(i), v))
			}
			writeOK(t, s, rs...)
			tc.check(t)
		})
	}
}

// PUBLISH sends each record's message to the channel it maps.
func TestPublish(t *testing.T) {
	addr := testredis.Start(t)
	rdb := client(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	sub := rdb.Subscribe(ctx, "orders:events")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription is confirmed
		t.Fatal(err)
	}
	s := configure(t, standalone(addr, `[{"cmd": "PUBLISH", "channel": "topic + ':events'", "value": "json.event"}]`))
	writeOK(t, s, record(0, `{"event": "paid"}`), record(1, `{"event": "shipped"}`))
	for _, want := range []string{"paid", "shipped"} {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Payload != want {
			t.Errorf("message %q, want %q", m.Payload, want)
		}
	}
}

// get returns a command's value, failing t on its error.
func get[T any](t *testing.T, cmd interface{ Result() (T, error) }) T {
	t.Helper()
	v, err := cmd.Result()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// ttlWithin fails t unless key has a time to live in (0, max].
func ttlWithin(t *testing.T, rdb *redis.Client, key string, max time.Duration) {
	t.Helper()
	d := get(t, rdb.PTTL(context.Background(), key))
	if d <= 0 || d > max {
		t.Errorf("PTTL %s = %v, want within (0, %v]", key, d, max)
	}
}

// missing fails t if key exists.
func missing(t *testing.T, rdb *redis.Client, key string) {
	t.Helper()
	if n := get(t, rdb.Exists(context.Background(), key)); n != 0 {
		t.Errorf("%s exists", key)
	}
}
