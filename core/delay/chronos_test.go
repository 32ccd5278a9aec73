package delay

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// ddmqCancelPattern is the pattern DDMQ's producer proxy holds an id to
// cancel to (DelayRequest.checkDelayMessage in DDMQ's carrera-producer).
var ddmqCancelPattern = regexp.MustCompile(`^\d{10}-\d-\d{10}-\d+-\d+-\d+-\d+-[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$`)

const testUUID = "9e7952e0-b709-11e8-a709-aafb4bfc0bc5"

func TestParseChronosID(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   string
		want ChronosID
	}{
		// The examples in DDMQ's sources: DelayRequest.java's comment, the
		// Go SDK's example.go, Batcher.putLoopTombstoneKey's comment.
		{"a delay", "1507609164-2-1507609214-0-0-0-0-14f22520-ad72-11e7-91be-6ee54da579e3",
			ChronosID{1507609164, ChronosDelay, 1507609214, 0, 0, 0, 0, "14f22520-ad72-11e7-91be-6ee54da579e3"}},
		{"a delay from the Go SDK's example", "1514992938-2-1515165738-0-0-0-0-bf039782-f099-11e7-90d4-d0a637ed6097",
			ChronosID{1514992938, ChronosDelay, 1515165738, 0, 0, 0, 0, "bf039782-f099-11e7-90d4-d0a637ed6097"}},
		{"a loop", "1536811267-3-1536911267-3-0-10-0-" + testUUID,
			ChronosID{1536811267, ChronosLoop, 1536911267, 3, 0, 10, 0, testUUID}},
		{"an exponential loop's third firing", "1536897967-4-1536911267-3-2-300-0-" + testUUID,
			ChronosID{1536897967, ChronosExponentialLoop, 1536911267, 3, 2, 300, 0, testUUID}},
		{"a type Chronos keeps to itself", "1536811267-0-1536911267-3-0-10-0-" + testUUID,
			ChronosID{1536811267, 0, 1536911267, 3, 0, 10, 0, testUUID}},
		{"the largest counts", "9999999999-9-9999999999-2147483647-2147483647-2147483647-2147483647-" + testUUID,
			ChronosID{9999999999, 9, 9999999999, math.MaxInt32, math.MaxInt32, math.MaxInt32, math.MaxInt32, testUUID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChronosID(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("parsed %+v\nwant   %+v", got, tc.want)
			}
			if s := got.String(); s != tc.id {
				t.Fatalf("String() = %q, want %q back", s, tc.id)
			}
		})
	}
}

// Every id DDMQ's producer proxy refuses to cancel with code 30, and the
// ones whose numbers Chronos cannot read back (InternalKey reads four of
// them as Java ints), are refused with code 30 naming the id.
func TestParseChronosIDRefusesMalformed(t *testing.T) {
	const ok = "1536811267-3-1536911267-3-0-10-0-" + testUUID
	for _, tc := range []struct {
		name, id, want string
	}{
		{"empty", "", "1 fields"},
		{"an id of the HTTP API", "6f1c0e6a9b2d4c3f8e7a1b2c3d4e5f60", "1 fields"},
		{"a field short", strings.TrimSuffix(ok, "-aafb4bfc0bc5"), "11 fields"},
		{"Chronos's segment suffix", ok + "-2-100", "14 fields"},
		{"a timestamp of 9 digits", "536811267-3-1536911267-3-0-10-0-" + testUUID, "timestamp \"536811267\" has 9 digits"},
		{"an expire of 11 digits", "1536811267-3-15369112670-3-0-10-0-" + testUUID, "expire \"15369112670\" has 11 digits"},
		{"a type of 2 digits", "1536811267-13-1536911267-3-0-10-0-" + testUUID, "type \"13\" has 2 digits"},
		{"a sign", "1536811267-3-1536911267-+3-0-10-0-" + testUUID, "times \"+3\" is not a number"},
		{"an empty field", "1536811267-3-1536911267--0-10-0-" + testUUID, "times \"\" is not a number"},
		{"a negative number", "1536811267-3-1536911267-3-0--10-0-" + testUUID, "13 fields"},
		{"letters", "1536811267-3-1536911267-3-0-1O-0-" + testUUID, "interval \"1O\""},
		{"times over a Java int", "1536811267-3-1536911267-2147483648-0-10-0-" + testUUID, "times \"2147483648\" is out of range"},
		{"an inner topic over a Java int", "1536811267-3-1536911267-3-0-10-99999999999999999999-" + testUUID, "innerTopicSeq \"99999999999999999999\" is out of range"},
		{"an upper-case uuid", "1536811267-3-1536911267-3-0-10-0-" + strings.ToUpper(testUUID), "uuid"},
		{"a uuid's groups of other sizes", "1536811267-3-1536911267-3-0-10-0-9e7952e0b-709-11e8-a709-aafb4bfc0bc5", "uuid"},
		{"a trailing newline", ok + "\n", "uuid"},
		{"unicode digits", "１536811267-3-1536911267-3-0-10-0-" + testUUID, "timestamp"},
		{"longer than any", strings.Repeat("0", 300) + ok, "369 bytes, longer than any"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseChronosID(tc.id)
			if sdk.CodeOf(err) != sdk.CodeDelayID || !strings.HasPrefix(err.Error(), "id: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseChronosID(%q) = %v; want code 30 naming id and %q", tc.id, err, tc.want)
			}
		})
	}
}

// The firings of a loop, whichever is cancelled with, name one message;
// another uuid, type or schedule is another message; an id of another
// format names itself.
func TestChronosIdentity(t *testing.T) {
	first := "1536811267-3-1536911267-3-0-10-0-" + testUUID
	c, err := ParseChronosID(first)
	if err != nil {
		t.Fatal(err)
	}
	third := c.Firing(time.Unix(1536811287, 0), 2).String()
	if third != "1536811287-3-1536911267-3-2-10-0-"+testUUID {
		t.Fatalf("third firing's id %q", third)
	}
	if identityOf(first) != identityOf(third) {
		t.Fatalf("a loop's firings have identities %q and %q", identityOf(first), identityOf(third))
	}
	if identityOf("1536811267-3-1536911267-03-0-010-0-"+testUUID) != identityOf(first) {
		t.Fatal("an id with leading zeros names another message than the id without")
	}
	for _, other := range []string{
		"1536811267-3-1536911267-3-0-10-0-9e7952e0-b709-11e8-a709-aafb4bfc0bc6",
		"1536811267-4-1536911267-3-0-10-0-" + testUUID,
		"1536811267-3-1536911268-3-0-10-0-" + testUUID,
		"1536811267-3-1536911267-4-0-10-0-" + testUUID,
		"1536811267-3-1536911267-3-0-11-0-" + testUUID,
	} {
		if identityOf(other) == identityOf(first) {
			t.Errorf("%s has the identity of %s", other, first)
		}
	}
	for _, id := range []string{"order-42", "", identityOf(first)} {
		if identityOf(id) != id {
			t.Errorf("identityOf(%q) = %q; want it as it is", id, identityOf(id))
		}
	}
}

// A loop's firings are keyed and timed as Chronos's
// InternalKey.nextUniqDelayMsgId makes them: an exponential loop of base
// 300 waits 300 s, then a day (300^2 s is longer), as in the example of
// Batcher.putLoopTombstoneKey; a loop of interval 10 waits 10 s each time.
// The loop ends after times firings.
func TestChronosLoopFirings(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   string
		loop Loop
		want []string
	}{
		{"exponential", "1536811267-4-1536911267-3-0-300-0-" + testUUID, Loop{Base: 300, Times: 3, Expire: time.Unix(1536911267, 0)}, []string{
			"1536811267-4-1536911267-3-0-300-0-" + testUUID,
			"1536811567-4-1536911267-3-1-300-0-" + testUUID,
			"1536897967-4-1536911267-3-2-300-0-" + testUUID,
		}},
		{"every 10 s", "1536811267-3-1536911267-3-0-10-0-" + testUUID, Loop{Interval: 10 * time.Second, Times: 3, Expire: time.Unix(1536911267, 0)}, []string{
			"1536811267-3-1536911267-3-0-10-0-" + testUUID,
			"1536811277-3-1536911267-3-1-10-0-" + testUUID,
			"1536811287-3-1536911267-3-2-10-0-" + testUUID,
		}},
		{"expiring first", "1536811267-4-1536811567-9-0-300-0-" + testUUID, Loop{Base: 300, Times: 9, Expire: time.Unix(1536811567, 0)}, []string{
			"1536811267-4-1536811567-9-0-300-0-" + testUUID,
			"1536811567-4-1536811567-9-1-300-0-" + testUUID, // at its expire: Chronos fires it
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.loop
			e := &envelope{id: tc.id, topic: "ticks", due: time.Unix(1536811267, 0), loop: &l, chronos: true,
				msg: chronosMessage(produce.Message{Value: []byte("v")}, tc.id)}
			var got []string
			for ; e != nil; e = nextFiring(e) {
				// Through a tier record and back, as between every hop.
				rec := e.record("mqgate_delay_1s")
				back, err := parseEnvelope(&rec)
				if err != nil {
					t.Fatal(err)
				}
				m := back.delivered()
				got = append(got, string(m.Key))
				if header(m.Headers, ChronosProperty) != ChronosProperty || header(m.Headers, HeaderID) != tc.id ||
					header(m.Headers, HeaderDue) != strconv.FormatInt(e.due.UnixMilli(), 10) || m.Partition != sdk.PartitionRandom {
					t.Fatalf("firing %d delivered as %+v", e.fired, m)
				}
				if len(got) > len(tc.want) {
					break
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("keys of the firings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func header(hs []sdk.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// A tier record of a loop written before exponential and Chronos loops
// (four fields) still reads; one of them reads its first four fields as
// such a gateway would; broken ones are refused.
func TestLoopHeader(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    Loop
		fired   int64
		chronos bool
	}{
		{"10000/3/0/1", Loop{Interval: 10 * time.Second, Times: 3}, 1, false},
		{"2000/5/1536911267000/2/2/1", Loop{Interval: 2 * time.Second, Times: 5, Base: 2, Expire: time.UnixMilli(1536911267000)}, 2, true},
		{"10000/3/0/0/0/1", Loop{Interval: 10 * time.Second, Times: 3}, 0, true},
	} {
		var e envelope
		if err := e.parseLoop(tc.value); err != nil {
			t.Fatalf("%s: %v", tc.value, err)
		}
		if *e.loop != tc.want || e.fired != tc.fired || e.chronos != tc.chronos {
			t.Errorf("%s read as %+v fired %d chronos %v", tc.value, *e.loop, e.fired, e.chronos)
		}
		if got := string(e.loopHeader()); got != tc.value {
			t.Errorf("%s written back as %s", tc.value, got)
		}
	}
	for _, bad := range []string{"", "1/2/3", "1/2/3/4/5", "1/2/3/4/1/0", "1/2/3/4/0/2", "1/2/3/-1", "a/2/3/4", "1/2/3/4/2/1/0"} {
		var e envelope
		if err := e.parseLoop(bad); err == nil {
			t.Errorf("%q read as %+v", bad, e.loop)
		}
	}
}

func TestExponentialGap(t *testing.T) {
	for _, tc := range []struct {
		base, k int64
		want    time.Duration
	}{
		{2, 1, 2 * time.Second},
		{2, 2, 4 * time.Second},
		{2, 16, 65536 * time.Second},
		{2, 17, 24 * time.Hour},
		{300, 1, 300 * time.Second},
		{300, 2, 24 * time.Hour},
		{86400, 1, 24 * time.Hour},
		{86401, 1, 24 * time.Hour},
		{math.MaxInt32, 1 << 40, 24 * time.Hour},
	} {
		if got := exponentialGap(tc.base, tc.k); got != tc.want {
			t.Errorf("exponentialGap(%d, %d) = %s, want %s", tc.base, tc.k, got, tc.want)
		}
	}
}

func TestChronosUUID(t *testing.T) {
	if got := ChronosUUID(strings.ToUpper(testUUID)); got != testUUID {
		t.Errorf("ChronosUUID of an upper-case UUID = %q, want it in lower case", got)
	}
	a, b := ChronosUUID(""), ChronosUUID("not a uuid")
	if !isChronosUUID(a) || !isChronosUUID(b) || a == b {
		t.Errorf("generated UUIDs %q and %q; want two of Chronos's form", a, b)
	}
}

// A Chronos message is keyed by its id, on a random partition, with
// from_chronos set to from_chronos whatever the client sent.
func TestChronosMessage(t *testing.T) {
	h := int64(7)
	got := chronosMessage(produce.Message{Key: []byte("k"), Value: []byte("v"), Partition: 3, HashID: &h,
		Headers: []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: ChronosProperty, Value: []byte("mine")}}}, "the-id")
	if string(got.Key) != "the-id" || got.Partition != sdk.PartitionRandom || got.HashID != nil || len(got.Headers) != 2 ||
		header(got.Headers, "a") != "1" || header(got.Headers, ChronosProperty) != ChronosProperty {
		t.Fatalf("chronosMessage = %+v", got)
	}
}

// FuzzParseChronosID checks ParseChronosID against DDMQ's pattern and
// Chronos's parser: it accepts exactly the ids the pattern matches whose
// four counts fit a Java int, refuses the rest with code 30, never panics,
// and what it accepts writes back to an id it reads the same, of the same
// identity at any firing.
func FuzzParseChronosID(f *testing.F) {
	f.Add("1507609164-2-1507609214-0-0-0-0-14f22520-ad72-11e7-91be-6ee54da579e3")
	f.Add("1536897967-4-1536911267-3-2-300-0-" + testUUID)
	f.Add("1536811267-3-1536911267-03-0-010-0-" + testUUID)
	f.Add("1536811267-3-1536911267-2147483648-0-10-0-" + testUUID)
	f.Add("1536811267-3-1536911267-3-0-10-0-" + testUUID + "-2-100")
	f.Add("6f1c0e6a9b2d4c3f8e7a1b2c3d4e5f60")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChronosID(s)
		if err != nil {
			if sdk.CodeOf(err) != sdk.CodeDelayID || !strings.HasPrefix(err.Error(), "id: ") {
				t.Fatalf("error %v is not code 30 naming id", err)
			}
			if len(s) <= MaxIDBytes && ddmqCancelPattern.MatchString(s) && countsFit(s) {
				t.Fatalf("refused %q, which DDMQ accepts and Chronos reads: %v", s, err)
			}
			return
		}
		if !ddmqCancelPattern.MatchString(s) || !countsFit(s) || len(s) > MaxIDBytes {
			t.Fatalf("accepted %q as %+v; DDMQ refuses it", s, c)
		}
		back, err := ParseChronosID(c.String())
		if err != nil || back != c {
			t.Fatalf("%q parsed as %+v, written as %q, read back as %+v, %v", s, c, c.String(), back, err)
		}
		if f := c.Firing(time.Unix(1700000000, 0), 5).String(); identityOf(f) != identityOf(s) {
			t.Fatalf("a later firing %q of %q has another identity", f, s)
		}
	})
}

// countsFit reports whether the 4th to 7th fields of an id the pattern
// matched fit a Java int, as Chronos reads them.
func countsFit(s string) bool {
	parts := strings.Split(s, "-")
	for _, p := range parts[3:7] {
		if n, err := strconv.ParseInt(p, 10, 64); err != nil || n > math.MaxInt32 {
			return false
		}
	}
	return true
}
