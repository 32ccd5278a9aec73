package admin

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

func TestSearch(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		qid := fill(t, b, "searched", 10) // keys kI, values vI, header n=I on one of two qids
		s, ctx := service(b), context.Background()
		offsets := func(p SearchPage) []int64 {
			var out []int64
			for _, r := range p.Records {
				if r.Qid != qid {
					t.Errorf("a match on qid %s, want %s", r.Qid, qid)
				}
				out = append(out, r.Offset)
			}
			return out
		}
		for _, c := range []struct {
			name     string
			q        SearchQuery
			want     []int64
			complete bool
		}{
			{"key", SearchQuery{Key: []byte("k3")}, []int64{3}, true},
			{"header", SearchQuery{HeaderKey: "n", HeaderValue: "5"}, []int64{5}, true},
			{"header of any value", SearchQuery{HeaderKey: "n", Limit: 100}, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, true},
			{"value and key", SearchQuery{ValueContains: []byte("v7"), Key: []byte("k7")}, []int64{7}, true},
			{"no match", SearchQuery{Key: []byte("k3"), ValueContains: []byte("v4")}, nil, true},
			// Four messages shared by two qids: each qid's newest two.
			{"the newest only", SearchQuery{ValueContains: []byte("v"), Scan: 4}, []int64{8, 9}, false},
			{"up to the limit", SearchQuery{ValueContains: []byte("v"), Limit: 3}, []int64{0, 1, 2}, false},
			{"from a time", SearchQuery{HeaderKey: "n", Since: time.Now().Add(-time.Hour)}, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, true},
		} {
			p, err := s.Search(ctx, "searched", c.q)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if got := offsets(p); !slices.Equal(got, c.want) || p.Complete != c.complete {
				t.Errorf("%s: found %v (complete %t, scanned %d), want %v (complete %t)", c.name, got, p.Complete, p.Scanned, c.want, c.complete)
			}
		}
		for _, c := range []struct {
			q    SearchQuery
			says string
		}{
			{SearchQuery{}, "give what to search for"},
			{SearchQuery{Key: []byte("k"), Scan: MaxSearchScan + 1}, "scan: must be 1 to 100000"},
			{SearchQuery{Key: []byte("k"), Limit: 101}, "limit: must be 1 to 100"},
		} {
			if _, err := s.Search(ctx, "searched", c.q); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), c.says) {
				t.Errorf("Search(%+v) = %v, want code 11 saying %q", c.q, err, c.says)
			}
		}
		if _, err := s.Search(ctx, "no-such-topic", SearchQuery{Key: []byte("k")}); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
			t.Errorf("Search of a missing topic = %v, want code 14", err)
		}
	})
}
