package activities_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// batchMarketplace takes usage pushes like the open API: it refuses a
// whole call that names a bad instance (MKT.9001), or every call with
// refuseAll.
type batchMarketplace struct {
	bad       map[string]bool
	refuseAll *koogallery.OpenAPIError

	mu       sync.Mutex
	calls    []int // records per call, refused ones included
	accepted map[string]int
}

func (m *batchMarketplace) PushUsage(_ context.Context, records []koogallery.UsageRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(records) > koogallery.MaxUsageRecords {
		return &koogallery.OpenAPIError{HTTPStatus: 400, Code: koogallery.OpenAPITooManyRecords}
	}
	m.calls = append(m.calls, len(records))
	if m.refuseAll != nil {
		return m.refuseAll
	}
	for i, r := range records {
		if m.bad[r.InstanceID] {
			return &koogallery.OpenAPIError{HTTPStatus: 400, Code: koogallery.OpenAPIInstanceNotFound,
				Message: fmt.Sprintf("usage record %d: instance_id not found", i)}
		}
	}
	if m.accepted == nil {
		m.accepted = map[string]int{}
	}
	for _, r := range records {
		m.accepted[r.MeteringSN]++
	}
	return nil
}

var collectStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// collectFixture meters n instances hourly from collectStart, each with
// one record in each of the first hours.
func collectFixture(t *testing.T, n, hours int, m *batchMarketplace) *activities.Activities {
	t.Helper()
	db := testenv.NewStore(t)
	a := &activities.Activities{Store: db, Usage: m}
	for i := range n {
		id := fmt.Sprintf("ppu-%03d", i)
		_, err := db.Callbacks.RecordNewInstance(t.Context(), id, store.NewCallback{
			DedupKey: "newInstance:O-" + id + ":L", Activity: "newInstance", OrderID: "O-" + id, OrderLineID: "L", Body: []byte(`{}`),
		})
		require.NoError(t, err)
		require.NoError(t, a.RegisterMetering(t.Context(), activities.RegisterMeteringInput{
			InstanceID: id, Period: time.Hour, PushDelay: 5 * time.Minute, OpenSince: collectStart,
		}))
		var usage []store.Usage
		for h := range hours {
			usage = append(usage, store.Usage{IdempotencyKey: fmt.Sprintf("%s-%d", id, h), InstanceID: id, Meter: "m",
				Quantity: "1.5", OccurredAt: collectStart.Add(time.Duration(h)*time.Hour + 10*time.Minute)})
		}
		_, refused, err := db.Metering.InsertUsage(t.Context(), usage, koogallery.MaxUsageValue)
		require.NoError(t, err)
		require.Empty(t, refused)
	}
	return a
}

// After an outage of 420 hours, the periods of 6 instances (2,520
// records) are closed in one pass and pushed in ⌈2520/1000⌉ = 3 calls,
// oldest first; a second pass finds nothing to do.
func TestCollectUsagePushesInBatches(t *testing.T) {
	m := &batchMarketplace{}
	a := collectFixture(t, 6, 420, m)
	now := collectStart.Add(420*time.Hour + 5*time.Minute)

	res, err := a.CollectUsage(t.Context(), activities.CollectUsageInput{Now: now})
	require.NoError(t, err)
	require.Empty(t, res.Error)
	require.Equal(t, 6, res.Instances)
	require.Equal(t, 2520, res.Periods)
	require.Equal(t, 2520, res.Pushed)
	require.Equal(t, 3, res.Calls)
	require.Equal(t, []int{1000, 1000, 520}, m.calls)
	require.Len(t, m.accepted, 2520)
	require.Equal(t, now.Add(time.Hour), res.NextClose.UTC())

	again, err := a.CollectUsage(t.Context(), activities.CollectUsageInput{Now: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Zero(t, again.Instances)
	require.Zero(t, again.Calls, "nothing pushed twice")
}

// A call the marketplace refuses for one record is split until that record
// is alone: it is held with the marketplace's answer, the others go
// through, in a few calls more.
func TestCollectUsageIsolatesARefusedRecord(t *testing.T) {
	m := &batchMarketplace{bad: map[string]bool{"ppu-006": true}}
	a := collectFixture(t, 10, 1, m)

	res, err := a.CollectUsage(t.Context(), activities.CollectUsageInput{Now: collectStart.Add(time.Hour + 5*time.Minute)})
	require.NoError(t, err)
	require.Empty(t, res.Error)
	require.Equal(t, 9, res.Pushed)
	require.Len(t, res.Held, 1)
	require.Contains(t, res.Held[0], "instance ppu-006")
	require.Contains(t, res.Held[0], koogallery.OpenAPIInstanceNotFound)
	// 10 → 5+5 → (2+3) → (1+2) → (1+1): at most 2·⌈log2 10⌉ calls more.
	require.LessOrEqual(t, res.Calls, 1+2*4)
	require.Len(t, m.accepted, 9)
	summary, err := a.Store.Metering.UsageSummaryOf(t.Context(), "ppu-006")
	require.NoError(t, err)
	require.Equal(t, 1, summary.Held)
	require.Contains(t, summary.LastError, koogallery.OpenAPIInstanceNotFound)
}

// A call refused as a whole (an outage, a refused signature) is not split:
// every period stays pending with the reason, for the next pass.
func TestCollectUsageKeepsEverythingPendingWhenTheCallFails(t *testing.T) {
	for _, refusal := range []*koogallery.OpenAPIError{
		{HTTPStatus: 500, Code: koogallery.OpenAPIInternalError, Message: "other internal error"},
		{HTTPStatus: 400, Code: koogallery.OpenAPIInvalidBodySign, Message: "body signature check failed"},
	} {
		t.Run(refusal.Code, func(t *testing.T) {
			m := &batchMarketplace{refuseAll: refusal}
			a := collectFixture(t, 4, 2, m)

			res, err := a.CollectUsage(t.Context(), activities.CollectUsageInput{Now: collectStart.Add(2*time.Hour + 5*time.Minute)})
			require.NoError(t, err)
			require.Contains(t, res.Error, refusal.Code)
			require.Equal(t, 1, res.Calls, "not split")
			require.Zero(t, res.Pushed)
			pending, err := a.Store.Metering.OldestPendingPeriods(t.Context(), 100)
			require.NoError(t, err)
			require.Len(t, pending, 8)
			for _, p := range pending {
				require.Equal(t, 1, p.Attempts)
				require.True(t, strings.Contains(p.LastError, refusal.Code), p.LastError)
			}
		})
	}
}
