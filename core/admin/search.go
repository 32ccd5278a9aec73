package admin

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// The bounds of one search.
const (
	// MaxSearchScan is the most messages one search reads.
	MaxSearchScan = 100000
	// DefaultSearchScan is how many it reads when not asked.
	DefaultSearchScan = 10000
	// searchFetch is how many records one fetch of a qid asks for.
	searchFetch = 500
)

// SearchQuery says what a search looks for and where. Every criterion
// given must match; at least one must be given.
type SearchQuery struct {
	// Key matches a message whose key is exactly these bytes.
	Key []byte
	// HeaderKey and HeaderValue match a message with that header; an
	// empty HeaderValue matches any value of it.
	HeaderKey, HeaderValue string
	// ValueContains matches a message whose value holds these bytes.
	ValueContains []byte
	// Since, when set, searches each qid from its first message written
	// at or after it; otherwise each qid's newest messages are searched.
	Since time.Time
	// Scan bounds the messages read (0: DefaultSearchScan; at most
	// MaxSearchScan), shared evenly among the qids.
	Scan int
	// Limit bounds the matches returned (0: DefaultBrowse; at most
	// MaxBrowse).
	Limit int
}

// SearchPage is what a search found.
type SearchPage struct {
	Topic   string
	Cluster string
	// Records are the matches, oldest first by timestamp.
	Records []sdk.Record
	// Scanned counts the messages read; Complete is set when they were
	// every message in the ranges searched (else a wider scan, or one
	// from a later time, reads more).
	Scanned  int
	Complete bool
}

func (q *SearchQuery) matches(r *sdk.Record) bool {
	if q.Key != nil && !bytes.Equal(r.Key, q.Key) {
		return false
	}
	if q.ValueContains != nil && !bytes.Contains(r.Value, q.ValueContains) {
		return false
	}
	if q.HeaderKey != "" {
		found := false
		for _, h := range r.Headers {
			if h.Key == q.HeaderKey && (q.HeaderValue == "" || string(h.Value) == q.HeaderValue) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Search reads topic's messages, outside any group, and returns those q
// matches: at most q.Scan messages read, shared among the qids, each qid
// read from its newest messages back that share (or from q.Since on), and
// at most q.Limit matches within MaxPageBytes.
func (s *Service) Search(ctx context.Context, topic string, q SearchQuery) (SearchPage, error) {
	switch {
	case q.Key == nil && q.HeaderKey == "" && q.ValueContains == nil:
		return SearchPage{}, sdk.Errorf(sdk.CodeIllegal, "give what to search for: key, header or value_contains")
	case q.Scan == 0:
		q.Scan = DefaultSearchScan
	case q.Scan < 0 || q.Scan > MaxSearchScan:
		return SearchPage{}, sdk.Errorf(sdk.CodeIllegal, "scan: must be 1 to %d messages, got %d", MaxSearchScan, q.Scan)
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultBrowse
	case q.Limit < 0 || q.Limit > MaxBrowse:
		return SearchPage{}, sdk.Errorf(sdk.CodeIllegal, "limit: must be 1 to %d, got %d", MaxBrowse, q.Limit)
	}
	cluster, b, err := s.cluster(topic)
	if err != nil {
		return SearchPage{}, err
	}
	qids, err := ranges(ctx, b, topic)
	if err != nil {
		return SearchPage{}, err
	}
	page := SearchPage{Topic: topic, Cluster: cluster, Records: []sdk.Record{}, Complete: true}
	if len(qids) == 0 {
		return page, nil
	}
	share := max(int64(q.Scan/len(qids)), 1)
	size := 0
	for _, qd := range qids {
		from := max(qd.Start, qd.End-share)
		if !q.Since.IsZero() {
			from, err = offsetAt(ctx, b, topic, sdk.QidOffsets{Topic: topic, Qid: qd.Qid, Partition: qd.Partition, Start: qd.Start, End: qd.End}, q.Since)
			if err != nil {
				return SearchPage{}, err
			}
		}
		if (q.Since.IsZero() && from > qd.Start) || qd.End-from > share {
			page.Complete = false // older messages, or later ones, left unread
		}
		until := min(qd.End, from+share)
		for next := from; next < until; {
			res, ok, err := fetchAt(ctx, b, topic, qd.Qid, next, int32(min(int64(searchFetch), until-next)))
			if err != nil {
				return SearchPage{}, err
			}
			if !ok {
				break // the range moved on meanwhile
			}
			for i := range res.Records {
				r := &res.Records[i]
				if r.Offset >= until {
					break
				}
				page.Scanned++
				if !q.matches(r) {
					continue
				}
				n := recordBytes(r)
				if len(page.Records) == q.Limit || (len(page.Records) > 0 && size+n > MaxPageBytes) {
					page.Complete = false
					return page.sorted(), nil
				}
				size += n
				page.Records = append(page.Records, *r)
			}
			next = res.NextOffset
		}
	}
	return page.sorted(), nil
}

func (p SearchPage) sorted() SearchPage {
	slices.SortStableFunc(p.Records, func(a, b sdk.Record) int { return cmp.Compare(a.Timestamp.UnixNano(), b.Timestamp.UnixNano()) })
	return p
}
