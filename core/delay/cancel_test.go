package delay

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// oneCancel is a cancel topic holding one record: a fake backend of two
// calls.
type oneCancel struct {
	sdk.Backend
	rec sdk.Record
}

func (b oneCancel) ListOffsets(context.Context, []string, string) ([]sdk.QidOffsets, error) {
	return []sdk.QidOffsets{{Qid: "0", Start: 0, End: 1}}, nil
}

func (b oneCancel) Fetch(context.Context, sdk.FetchRequest) ([]sdk.FetchResult, error) {
	return []sdk.FetchResult{{Topic: b.rec.Topic, Qid: "0", NextOffset: 1, Records: []sdk.Record{b.rec}}}, nil
}

// A cancel record that claims to apply until the year 3000 (written by
// anything but this gateway) is held no longer than the cancel promise
// needs: the hold from when it is read. One within the hold keeps its
// own time.
func TestCancelRecordTimeIsCapped(t *testing.T) {
	now := time.Now()
	const hold = 31 * 24 * time.Hour
	for _, tc := range []struct {
		name     string
		until    time.Time
		heldTill time.Time
	}{
		{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(hold)},
		{"within the hold", now.Add(time.Hour), now.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := sdk.Record{Topic: "mqgate_delay_cancel", Key: []byte("orders/x"), Value: []byte(strconv.FormatInt(tc.until.UnixMilli(), 10))}
			c := newCancels(oneCancel{rec: rec}, rec.Topic, hold, func() time.Time { return now }, slog.New(slog.DiscardHandler))
			if err := c.readOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !c.cancelled("orders/x", tc.heldTill.Add(-time.Millisecond)) {
				t.Fatal("the cancel does not apply within its time")
			}
			c.expire(tc.heldTill.Add(time.Millisecond))
			if n := c.len(); n != 0 {
				t.Fatalf("%d cancels still held after %s", n, tc.heldTill.Sub(now))
			}
		})
	}
}
