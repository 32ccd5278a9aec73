package redis

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/testport"
	"github.com/mqgate/mqgate/internal/testredis"
	"github.com/mqgate/mqgate/sdk"
)

// orderCommands are docs/sink-redis.md's worked example: each JSON order
// becomes a hash with a time to live, and an order marked deleted removes
// it instead.
const orderCommands = `[
	{"cmd": "HSET", "key": "'order:' + string(json.id)", "fields": {"status": "json.status", "total": "json.total"}, "when": "json?.deleted != true"},
	{"cmd": "EXPIRE", "key": "'order:' + string(json.id)", "ttl": 3600, "when": "json?.deleted != true"},
	{"cmd": "DEL", "key": "'order:' + string(json.id)", "when": "json?.deleted == true"}]`

// A record's several commands all apply, and `when` picks which do.
func TestSeveralCommandsPerRecord(t *testing.T) {
	addr := testredis.Start(t)
	rdb := client(t, addr)
	ctx := context.Background()
	rdb.HSet(ctx, "order:7", "status", "new")
	s := configure(t, standalone(addr, orderCommands))
	writeOK(t, s,
		record(0, `{"id": 42, "status": "paid", "total": 99.5}`),
		record(1, `{"id": 7, "deleted": true}`),
		record(2, `{"id": 43, "status": "new", "total": 5}`),
		record(3, `{"id": 43, "status": "paid", "total": 5}`))
	equal(t, "HGETALL order:42", get(t, rdb.HGetAll(ctx, "order:42")), map[string]string{"status": "paid", "total": "99.5"})
	ttlWithin(t, rdb, "order:42", time.Hour)
	equal(t, "HGETALL order:43", get(t, rdb.HGetAll(ctx, "order:43")), map[string]string{"status": "paid", "total": "5"})
	missing(t, rdb, "order:7")
}

// A record the server refuses, one whose mapping fails and one of the
// wrong type each fail alone, with code 11 and a message naming the
// command, the field and the record; the others land.
func TestRecordFailsAlone(t *testing.T) {
	addr := testredis.Start(t)
	rdb := client(t, addr)
	ctx := context.Background()
	rdb.Set(ctx, "order:2", "a string, not a hash", 0)
	rdb.Set(ctx, "count:5", "not a number", 0)
	s := configure(t, standalone(addr, `[
		{"cmd": "HSET", "key": "'order:' + string(json.id)", "fields": {"status": "json.status"}},
		{"cmd": "INCRBY", "key": "'count:' + string(json.id)", "by": "json.n"}]`))
	res := write(t, s,
		record(10, `{"id": 1, "status": "paid", "n": 1}`),
		record(11, `{"id": 2, "status": "paid", "n": 1}`),      // WRONGTYPE: order:2 is a string
		record(12, `not JSON`),                                 // json.id of nil
		record(13, `{"id": 4, "status": "paid", "n": "many"}`), // by is not an integer
		record(14, `{"id": 5, "status": "paid", "n": 1}`),      // ERR: count:5 is not an integer
		record(15, `{"id": 6, "status": {"a": 1}, "n": 1}`))
	for _, i := range []int{0, 5} {
		if res[i] != nil {
			t.Errorf("record %d: %v", i, res[i])
		}
	}
	wantCode(t, "WRONGTYPE", res[1], sdk.CodeIllegal, "commands[0] (HSET)", "WRONGTYPE", "topic orders, qid 2, offset 11")
	wantCode(t, "not JSON", res[2], sdk.CodeIllegal, "commands[0].key", "offset 12")
	wantCode(t, "by not an integer", res[3], sdk.CodeIllegal, "commands[1].by", `gave "many", want an integer`, "offset 13")
	wantCode(t, "INCRBY of a string", res[4], sdk.CodeIllegal, "commands[1] (INCRBY)", "not an integer", "offset 14")

	equal(t, "HGETALL order:1", get(t, rdb.HGetAll(ctx, "order:1")), map[string]string{"status": "paid"})
	equal(t, "HGETALL order:6", get(t, rdb.HGetAll(ctx, "order:6")), map[string]string{"status": `{"a":1}`})
	equal(t, "GET count:6", get(t, rdb.Get(ctx, "count:6")), "1")
	// A record whose mapping failed sends none of its commands.
	missing(t, rdb, "order:4")
	missing(t, rdb, "count:4")
	// A record whose second command failed at the server keeps its first:
	// commands of a record are not a transaction.
	equal(t, "HGETALL order:5", get(t, rdb.HGetAll(ctx, "order:5")), map[string]string{"status": "paid"})
}

// Values of the wrong type for what the command needs are per-record
// errors naming the field.
func TestMappingErrors(t *testing.T) {
	addr := testredis.Start(t)
	for _, tc := range []struct {
		name, commands, value, field, msg string
	}{
		{"key of a map", `[{"cmd": "DEL", "key": "json"}]`, `{"a": 1}`, "commands[0].key", "gave a map"},
		{"empty key", `[{"cmd": "DEL", "key": "json.k"}]`, `{"k": ""}`, "commands[0].key", "empty"},
		{"nil value", `[{"cmd": "SET", "key": "key", "value": "json?.v"}]`, `{}`, "commands[0].value", "gave nil"},
		{"ttl of a word", `[{"cmd": "EXPIRE", "key": "key", "ttl": "json.ttl"}]`, `{"ttl": "soon"}`, "commands[0].ttl", "duration"},
		{"negative ttl", `[{"cmd": "EXPIRE", "key": "key", "ttl": "json.ttl"}]`, `{"ttl": -1}`, "commands[0].ttl", "time to live"},
		{"score of a word", `[{"cmd": "ZADD", "key": "key", "member": "value", "score": "json.s"}]`, `{"s": "high"}`, "commands[0].score", "want a number"},
		{"fields not a map", `[{"cmd": "HSET", "key": "key", "fields": "json.f"}]`, `{"f": [1]}`, "commands[0].fields", "want a map"},
		{"every field nil", `[{"cmd": "HSET", "key": "key", "fields": {"a": "json?.a"}}]`, `{}`, "commands[0].fields", "no field"},
		{"field fails", `[{"cmd": "HSET", "key": "key", "fields": {"a": "json.a.b"}}]`, `{"a": 1}`, "commands[0].fields.a", "evaluating"},
		{"when not boolean", `[{"cmd": "DEL", "key": "key", "when": "json.w"}]`, `{"w": "yes"}`, "commands[0].when", "bool(string)"},
		{"second command", `[{"cmd": "DEL", "key": "key"}, {"cmd": "SADD", "key": "key", "member": "json.m"}]`, `{}`, "commands[1].member", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := configure(t, standalone(addr, tc.commands))
			res := write(t, s, record(3, tc.value))
			wantCode(t, tc.name, res[0], sdk.CodeIllegal, tc.field, tc.msg, "topic orders, qid 2, offset 3")
		})
	}
}

// A server that refuses connections fails every record with code 17, and
// Health says so.
func TestDownServer(t *testing.T) {
	down := testport.Reserve(t) // bound, not listening: connections are refused
	s := configure(t, standalone(down.Addr, orderCommands))
	res := write(t, s, record(0, `{"id": 1, "status": "paid", "total": 1}`), record(1, `{"id": 1, "deleted": true}`),
		record(2, `{"id": 2, "status": "paid", "total": 1}`))
	for i, err := range res {
		wantCode(t, fmt.Sprint("record ", i), err, sdk.CodeUnavailable, "offset "+fmt.Sprint(i))
		if errors.Is(err, sdk.ErrLasting) {
			t.Errorf("record %d: a refused connection is marked lasting", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	wantCode(t, "Health", s.Health(ctx), sdk.CodeUnavailable, "PING")
}

// A Write whose context ends fails its records with code 17 rather than
// hanging.
func TestWriteContextEnds(t *testing.T) {
	addr := testredis.Start(t)
	s := configure(t, standalone(addr, orderCommands))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := s.Write(ctx, []sdk.Record{record(0, `{"id": 1, "status": "paid", "total": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "cancelled Write", res[0], sdk.CodeUnavailable)
}

// A password and an ACL user log in; a wrong password fails records with
// code 17 marked lasting, for it passes only when an operator acts.
func TestAuth(t *testing.T) {
	addr := testredis.Start(t, "--requirepass", "default-secret")
	rdb := client(t, addr)
	ctx := context.Background()
	rdb.Options().Password = "default-secret"
	if err := rdb.Do(ctx, "ACL", "SETUSER", "writer", "on", ">writer-secret", "~order:*", "+@write", "+@connection").Err(); err != nil {
		t.Fatal(err)
	}
	commands := `[{"cmd": "SET", "key": "'order:' + key", "value": "value"}]`
	for _, tc := range []struct {
		name, creds string
		ok          bool
	}{
		{"password", `"password": "default-secret"`, true},
		{"ACL user", `"username": "writer", "password": "writer-secret"`, true},
		{"wrong password", `"password": "nope"`, false},
		{"no password", `"db": 0`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := configure(t, fmt.Sprintf(`{"addrs": [%q], %s, "commands": %s}`, addr, tc.creds, commands))
			res := write(t, s, record(0, "v"))
			if tc.ok {
				if res[0] != nil {
					t.Fatalf("Write: %v", res[0])
				}
				return
			}
			wantCode(t, tc.name, res[0], sdk.CodeUnavailable)
			if !errors.Is(res[0], sdk.ErrLasting) {
				t.Errorf("%v is not marked lasting", res[0])
			}
			if msg := res[0].Error(); contains(msg, "default-secret") || contains(msg, "nope") {
				t.Errorf("the error shows a password: %s", msg)
			}
		})
	}
	// Without the ACL's permission a command fails, lasting too.
	s := configure(t, fmt.Sprintf(`{"addrs": [%q], "username": "writer", "password": "writer-secret",
		"commands": [{"cmd": "SET", "key": "'other:' + key", "value": "value"}]}`, addr))
	res := write(t, s, record(0, "v"))
	wantCode(t, "NOPERM", res[0], sdk.CodeUnavailable, "NOPERM")
	if !errors.Is(res[0], sdk.ErrLasting) {
		t.Errorf("%v is not marked lasting", res[0])
	}
}

// A server killed mid-stream fails the records written meanwhile with code
// 17, and the sink writes again once it is back, with no reconfiguring.
func TestServerDownAndBack(t *testing.T) {
	srv := testredis.StartServer(t)
	s := configure(t, standalone(srv.Addr, orderCommands))
	writeOK(t, s, record(0, `{"id": 1, "status": "paid", "total": 1}`))
	srv.Stop()
	for i, err := range write(t, s, record(1, `{"id": 2, "status": "paid", "total": 2}`), record(2, `{"id": 3, "status": "new", "total": 3}`)) {
		wantCode(t, fmt.Sprint("record ", i, " with the server down"), err, sdk.CodeUnavailable)
	}
	srv.Start()
	writeOK(t, s, record(1, `{"id": 2, "status": "paid", "total": 2}`), record(2, `{"id": 3, "status": "new", "total": 3}`))
	rdb := client(t, srv.Addr)
	for _, id := range []string{"1", "2", "3"} {
		if n := get(t, rdb.Exists(context.Background(), "order:"+id)); n != 1 {
			t.Errorf("order:%s is not in Redis after the restart", id)
		}
	}
}
