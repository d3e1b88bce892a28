package store_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/store"
)

// newDB opens a fresh, migrated database for one test.
func newDB(t *testing.T) *store.DB {
	t.Helper()
	db := testenv.NewStore(t)
	pending, err := db.PendingMigrations(t.Context())
	require.NoError(t, err)
	require.Empty(t, pending)
	return db
}

// allocate records the newInstance of a fresh order line whose first
// businessId is instanceID, and returns the recorded callback.
func allocate(t *testing.T, db *store.DB, instanceID string) store.Recorded {
	t.Helper()
	orderID, lineID := "O-"+instanceID, "L-"+instanceID
	rec, err := db.Callbacks.RecordNewInstance(context.Background(), instanceID, store.NewCallback{
		DedupKey:    "newInstance:" + orderID + ":" + lineID,
		Activity:    "newInstance",
		OrderID:     orderID,
		OrderLineID: lineID,
		Body:        []byte(`{"activity":"newInstance"}`),
	})
	require.NoError(t, err)
	require.True(t, rec.Fresh)
	require.Equal(t, instanceID, rec.Key.InstanceID)
	return rec
}

// refresh is a refreshInstance callback of an instance for a renewal order.
func refresh(instanceID, orderID string) store.NewCallback {
	return store.NewCallback{
		DedupKey:    "refreshInstance:" + instanceID + ":" + orderID + ":" + orderID + "-1",
		Activity:    "refreshInstance",
		InstanceID:  instanceID,
		OrderID:     orderID,
		OrderLineID: orderID + "-1",
		Body:        []byte(`{"activity":"refreshInstance"}`),
	}
}

// status is a status change keyed by the inbox's rule of episodes.
func status(instanceID, s string) store.NewCallback {
	in := store.NewCallback{
		DedupKey:   "updateInstanceStatus:" + instanceID + ":" + s,
		Activity:   "updateInstanceStatus",
		InstanceID: instanceID,
		Status:     s,
		Body:       []byte(`{"activity":"updateInstanceStatus"}`),
	}
	in.StatusChange = inbox.StatusChange(in)
	return in
}

// callback returns the stored row of an instance's callback by seq.
func callback(t *testing.T, db *store.DB, instanceID string, seq int64) store.Callback {
	t.Helper()
	cbs, err := db.Callbacks.CallbacksOf(context.Background(), instanceID)
	require.NoError(t, err)
	for _, cb := range cbs {
		if cb.Seq == seq {
			return cb
		}
	}
	require.FailNow(t, "callback not found", "instance %s seq %d", instanceID, seq)
	return store.Callback{}
}

func undelivered(t *testing.T, db *store.DB) int64 {
	t.Helper()
	n, err := db.Callbacks.UndeliveredCount(context.Background())
	require.NoError(t, err)
	return n
}

func seqs(cbs []store.Callback) []int64 {
	out := []int64{}
	for _, cb := range cbs {
		out = append(out, cb.Seq)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// --- nonces ---

func TestClaimNonce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	now := time.Now()

	fresh, err := db.Nonces.Claim(ctx, "n-1", now.Add(5*time.Minute))
	require.NoError(t, err)
	require.True(t, fresh)

	fresh, err = db.Nonces.Claim(ctx, "n-1", now.Add(5*time.Minute))
	require.NoError(t, err)
	require.False(t, fresh, "a replayed nonce is not fresh")

	fresh, err = db.Nonces.Claim(ctx, "n-2", now.Add(5*time.Minute))
	require.NoError(t, err)
	require.True(t, fresh, "another nonce is fresh")
}

func TestClaimExpiredNonceAgain(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	now := time.Now()

	fresh, err := db.Nonces.Claim(ctx, "n-old", now.Add(-time.Minute))
	require.NoError(t, err)
	require.True(t, fresh)

	// Remembered only until a minute ago: it can be claimed again, and is
	// then remembered until the new time.
	fresh, err = db.Nonces.Claim(ctx, "n-old", now.Add(5*time.Minute))
	require.NoError(t, err)
	require.True(t, fresh)

	fresh, err = db.Nonces.Claim(ctx, "n-old", now.Add(10*time.Minute))
	require.NoError(t, err)
	require.False(t, fresh)
}

func TestDeleteExpiredNonces(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	now := time.Now()
	for nonce, until := range map[string]time.Time{
		"expired-2h": now.Add(-2 * time.Hour),
		"expired-1h": now.Add(-time.Hour),
		"live":       now.Add(time.Hour),
	} {
		fresh, err := db.Nonces.Claim(ctx, nonce, until)
		require.NoError(t, err)
		require.True(t, fresh)
	}

	n, err := db.Nonces.DeleteExpiredNonces(ctx, now)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	n, err = db.Nonces.DeleteExpiredNonces(ctx, now)
	require.NoError(t, err)
	require.Zero(t, n)

	// The live nonce is still remembered.
	fresh, err := db.Nonces.Claim(ctx, "live", now.Add(2*time.Hour))
	require.NoError(t, err)
	require.False(t, fresh)
}

// --- RecordNewInstance ---

func TestRecordNewInstance(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	in := store.NewCallback{
		DedupKey:    "newInstance:O1:L1",
		Activity:    "newInstance",
		OrderID:     "O1",
		OrderLineID: "L1",
		Debug:       true,
		Body:        []byte(`{"activity":"newInstance","businessId":"B1"}`),
	}

	first, err := db.Callbacks.RecordNewInstance(ctx, "B1", in)
	require.NoError(t, err)
	require.True(t, first.Fresh)
	require.Equal(t, "B1", first.Key.InstanceID)
	require.Equal(t, "O1", first.Key.OrderID)
	require.Equal(t, "L1", first.Key.OrderLineID)
	require.True(t, first.Key.Debug)
	require.False(t, first.Key.CreatedAt.IsZero())
	cb := first.Callback
	require.Positive(t, cb.Seq)
	require.Equal(t, "newInstance:O1:L1", cb.DedupKey)
	require.Equal(t, "newInstance", cb.Activity)
	require.Equal(t, "B1", cb.InstanceID)
	require.Equal(t, "O1", cb.OrderID)
	require.Equal(t, "L1", cb.OrderLineID)
	require.True(t, cb.Debug)
	require.Equal(t, `{"activity":"newInstance","businessId":"B1"}`, cb.Body)
	require.Zero(t, cb.Redeliveries)
	require.Zero(t, cb.Attempts)
	require.Empty(t, cb.LastError)
	require.False(t, cb.Delivered())
	require.Empty(t, cb.Outcome)

	// A redelivery carries another businessId: same instance, same row.
	in.Body = []byte(`{"activity":"newInstance","businessId":"B2"}`)
	again, err := db.Callbacks.RecordNewInstance(ctx, "B2", in)
	require.NoError(t, err)
	require.False(t, again.Fresh)
	require.Equal(t, "B1", again.Key.InstanceID)
	require.Equal(t, cb.Seq, again.Callback.Seq)
	require.Equal(t, 1, again.Callback.Redeliveries)
	require.Equal(t, `{"activity":"newInstance","businessId":"B1"}`, again.Callback.Body, "the first body is kept")
	_, err = db.Callbacks.InstanceKey(ctx, "B2")
	require.ErrorIs(t, err, store.ErrUnknownInstance)

	third, err := db.Callbacks.RecordNewInstance(ctx, "B3", in)
	require.NoError(t, err)
	require.False(t, third.Fresh)
	require.Equal(t, 2, third.Callback.Redeliveries)

	key, err := db.Callbacks.InstanceKey(ctx, "B1")
	require.NoError(t, err)
	require.Equal(t, first.Key.InstanceID, key.InstanceID)
	require.Equal(t, "O1", key.OrderID)
	require.Equal(t, "L1", key.OrderLineID)
	require.Equal(t, int64(1), undelivered(t, db))
}

func TestRecordNewInstanceBusinessIDTaken(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	allocate(t, db, "B1")

	other := store.NewCallback{
		DedupKey:    "newInstance:O2:L2",
		Activity:    "newInstance",
		OrderID:     "O2",
		OrderLineID: "L2",
		Body:        []byte(`{}`),
	}
	_, err := db.Callbacks.RecordNewInstance(ctx, "B1", other)
	require.ErrorIs(t, err, store.ErrInstanceIDTaken)

	// Nothing was recorded: B1 still names the first line, and the second
	// line's callback is fresh when it comes with a free businessId.
	key, err := db.Callbacks.InstanceKey(ctx, "B1")
	require.NoError(t, err)
	require.Equal(t, "O-B1", key.OrderID)
	require.Equal(t, int64(1), undelivered(t, db))
	cbs, err := db.Callbacks.CallbacksOf(ctx, "B1")
	require.NoError(t, err)
	require.Len(t, cbs, 1)

	rec, err := db.Callbacks.RecordNewInstance(ctx, "B9", other)
	require.NoError(t, err)
	require.True(t, rec.Fresh)
	require.Equal(t, "B9", rec.Key.InstanceID)
	require.Zero(t, rec.Callback.Redeliveries)
}

// --- RecordCallback ---

func TestRecordCallbackUnknownInstance(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	allocate(t, db, "I1")

	for name, in := range map[string]store.NewCallback{
		"unknown id":    refresh("nope", "R1"),
		"empty id":      refresh("", "R1"),
		"unknown state": status("nope", "FREEZE"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := db.Callbacks.RecordCallback(ctx, in)
			require.ErrorIs(t, err, store.ErrUnknownInstance)
		})
	}
	require.Equal(t, int64(1), undelivered(t, db), "only the newInstance is recorded")
	cbs, err := db.Callbacks.CallbacksOf(ctx, "nope")
	require.NoError(t, err)
	require.Empty(t, cbs)
}

func TestRecordCallbackRedelivery(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	nw := allocate(t, db, "I1")

	first, err := db.Callbacks.RecordCallback(ctx, refresh("I1", "R1"))
	require.NoError(t, err)
	require.True(t, first.Fresh)
	require.Equal(t, "I1", first.Key.InstanceID)
	require.Equal(t, "O-I1", first.Key.OrderID, "the key is the instance's, not the renewal order's")
	require.Equal(t, "R1", first.Callback.OrderID)
	require.Equal(t, "refreshInstance:I1:R1:R1-1", first.Callback.DedupKey)
	require.Greater(t, first.Callback.Seq, nw.Callback.Seq)

	again, err := db.Callbacks.RecordCallback(ctx, refresh("I1", "R1"))
	require.NoError(t, err)
	require.False(t, again.Fresh)
	require.Equal(t, first.Callback.Seq, again.Callback.Seq)
	require.Equal(t, 1, again.Callback.Redeliveries)
	require.False(t, again.Callback.LastReceivedAt.Before(first.Callback.LastReceivedAt))

	other, err := db.Callbacks.RecordCallback(ctx, refresh("I1", "R2"))
	require.NoError(t, err)
	require.True(t, other.Fresh, "another renewal order is another callback")
	require.Greater(t, other.Callback.Seq, first.Callback.Seq)
}

func TestRecordCallbackStatusEpisodes(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	allocate(t, db, "I1")
	allocate(t, db, "I2")

	steps := []struct {
		instance string
		status   string
		wantKey  string
		fresh    bool
	}{
		{"I1", "FREEZE", "updateInstanceStatus:I1:FREEZE:1", true},
		{"I1", "FREEZE", "updateInstanceStatus:I1:FREEZE:1", false},
		{"I2", "FREEZE", "updateInstanceStatus:I2:FREEZE:1", true}, // episodes are per instance
		{"I1", "UNFREEZE", "updateInstanceStatus:I1:UNFREEZE:2", true},
		{"I1", "UNFREEZE", "updateInstanceStatus:I1:UNFREEZE:2", false},
		{"I1", "FREEZE", "updateInstanceStatus:I1:FREEZE:3", true},
		{"I1", "UNFREEZE", "updateInstanceStatus:I1:UNFREEZE:4", true},
		{"I2", "FREEZE", "updateInstanceStatus:I2:FREEZE:1", false},
	}
	seqByKey := map[string]int64{}
	for i, s := range steps {
		rec, err := db.Callbacks.RecordCallback(ctx, status(s.instance, s.status))
		require.NoError(t, err, "step %d", i)
		require.Equal(t, s.wantKey, rec.Callback.DedupKey, "step %d", i)
		require.Equal(t, s.fresh, rec.Fresh, "step %d", i)
		if seq, ok := seqByKey[s.wantKey]; ok {
			require.Equal(t, seq, rec.Callback.Seq, "step %d", i)
		}
		seqByKey[s.wantKey] = rec.Callback.Seq
	}

	cbs, err := db.Callbacks.CallbacksOf(ctx, "I1")
	require.NoError(t, err)
	var keys []string
	var redeliveries []int
	for _, cb := range cbs {
		keys = append(keys, cb.DedupKey)
		redeliveries = append(redeliveries, cb.Redeliveries)
	}
	require.Equal(t, []string{
		"newInstance:O-I1:L-I1",
		"updateInstanceStatus:I1:FREEZE:1",
		"updateInstanceStatus:I1:UNFREEZE:2",
		"updateInstanceStatus:I1:FREEZE:3",
		"updateInstanceStatus:I1:UNFREEZE:4",
	}, keys)
	require.Equal(t, []int{0, 1, 1, 0, 0}, redeliveries)
}

func TestRecordCallbackConcurrentRedeliveries(t *testing.T) {
	cases := []struct {
		name    string
		in      store.NewCallback
		wantKey string
	}{
		{"refresh", refresh("I1", "R1"), "refreshInstance:I1:R1:R1-1"},
		{"freeze", status("I1", "FREEZE"), "updateInstanceStatus:I1:FREEZE:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := newDB(t)
			allocate(t, db, "I1")

			const n = 10
			recs := make([]store.Recorded, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					recs[i], errs[i] = db.Callbacks.RecordCallback(ctx, tc.in)
				})
			}
			close(start)
			wg.Wait()

			fresh := 0
			for i := range n {
				require.NoError(t, errs[i])
				require.Equal(t, tc.wantKey, recs[i].Callback.DedupKey)
				require.Equal(t, recs[0].Callback.Seq, recs[i].Callback.Seq)
				if recs[i].Fresh {
					fresh++
				}
			}
			require.Equal(t, 1, fresh)
			cb := callback(t, db, "I1", recs[0].Callback.Seq)
			require.Equal(t, n-1, cb.Redeliveries)
			cbs, err := db.Callbacks.CallbacksOf(ctx, "I1")
			require.NoError(t, err)
			require.Len(t, cbs, 2, "the newInstance and one callback")
		})
	}
}

// --- RecordNotice ---

// TestConcurrentStatusChangesKeepArrivalOrder: FREEZE and UNFREEZE calls
// racing for one instance are numbered in the order they are recorded, so
// that in seq order the episode grows exactly when the status changes.
func TestConcurrentStatusChangesKeepArrivalOrder(t *testing.T) {
	db := newDB(t)
	allocate(t, db, "race")
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				s := "FREEZE"
				if (g+i)%2 == 0 {
					s = "UNFREEZE"
				}
				_, err := db.Callbacks.RecordCallback(t.Context(), status("race", s))
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	cbs, err := db.Callbacks.CallbacksOf(t.Context(), "race")
	require.NoError(t, err)
	episode, last := 0, ""
	for _, cb := range cbs {
		if cb.Activity != "updateInstanceStatus" {
			continue
		}
		parts := strings.Split(cb.DedupKey, ":")
		s, n := parts[2], parts[3]
		if s != last {
			episode++
			last = s
		}
		require.Equal(t, strconv.Itoa(episode), n, "seq %d %s", cb.Seq, cb.DedupKey)
	}
	require.Greater(t, episode, 1, "the race produced alternations")
}

func TestRecordNotice(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	in := store.NewCallback{
		DedupKey:    "orderNotify:O1:L1",
		Activity:    "orderNotify",
		OrderID:     "O1",
		OrderLineID: "L1",
		Body:        []byte(`{"activity":"orderNotify"}`),
	}

	cb, fresh, err := db.Callbacks.RecordNotice(ctx, in, "recorded")
	require.NoError(t, err)
	require.True(t, fresh)
	require.True(t, cb.Delivered())
	require.Equal(t, "recorded", cb.Outcome)
	require.Equal(t, "orderNotify:O1:L1", cb.DedupKey)
	require.Equal(t, "orderNotify", cb.Activity)
	require.Empty(t, cb.InstanceID)
	require.Equal(t, "O1", cb.OrderID)
	require.Equal(t, "L1", cb.OrderLineID)
	require.Equal(t, `{"activity":"orderNotify"}`, cb.Body)
	require.Zero(t, undelivered(t, db))

	again, fresh, err := db.Callbacks.RecordNotice(ctx, in, "something else")
	require.NoError(t, err)
	require.False(t, fresh)
	require.Equal(t, cb.Seq, again.Seq)
	require.True(t, again.Delivered())
	require.Equal(t, "recorded", again.Outcome, "the first outcome is kept")
	require.Equal(t, 1, again.Redeliveries)
	require.Zero(t, undelivered(t, db))

	leased, err := db.Callbacks.LeaseUndelivered(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, leased)
}

// --- delivery bookkeeping ---

func TestHasEarlierUndelivered(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	c1 := allocate(t, db, "I1").Callback
	other := allocate(t, db, "I2").Callback
	c2, err := db.Callbacks.RecordCallback(ctx, refresh("I1", "R1"))
	require.NoError(t, err)
	c3, err := db.Callbacks.RecordCallback(ctx, refresh("I1", "R2"))
	require.NoError(t, err)

	check := func(instance string, seq int64, want bool) {
		t.Helper()
		got, err := db.Callbacks.HasEarlierUndelivered(ctx, store.Callback{InstanceID: instance, Seq: seq})
		require.NoError(t, err)
		require.Equal(t, want, got, "instance %s seq %d", instance, seq)
	}
	check("I1", c1.Seq, false)
	check("I1", c2.Callback.Seq, true)
	check("I1", c3.Callback.Seq, true)
	check("I2", other.Seq, false) // I1's older callback does not count

	require.NoError(t, db.Callbacks.MarkDelivered(ctx, c1.Seq, "signalled"))
	check("I1", c2.Callback.Seq, false)
	check("I1", c3.Callback.Seq, true)

	require.NoError(t, db.Callbacks.MarkDeliveryFailed(ctx, c2.Callback.Seq, "boom", time.Now().Add(time.Hour)))
	check("I1", c3.Callback.Seq, true) // a failed one still waits
	require.NoError(t, db.Callbacks.MarkDelivered(ctx, c2.Callback.Seq, "signalled"))
	check("I1", c3.Callback.Seq, false)
}

func TestLeaseUndelivered(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	now := time.Now()

	// Five instances, one newInstance each, recorded in order.
	var all []store.Callback
	for i := range 5 {
		all = append(all, allocate(t, db, fmt.Sprintf("I%d", i)).Callback)
	}
	// A callback whose first attempt is left to its request for an hour.
	later := refresh("I0", "R1")
	later.DeliverAfter = now.Add(time.Hour)
	notYet, err := db.Callbacks.RecordCallback(ctx, later)
	require.NoError(t, err)
	// A callback that is already delivered.
	require.NoError(t, db.Callbacks.MarkDelivered(ctx, all[1].Seq, "signalled"))

	leased, err := db.Callbacks.LeaseUndelivered(ctx, 2, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []int64{all[0].Seq, all[2].Seq}, seqs(leased), "oldest first, up to the limit")
	for _, cb := range leased {
		require.WithinDuration(t, time.Now().Add(time.Minute), cb.DeliverAfter, 10*time.Second,
			"leased for the lease duration")
		require.Equal(t, cb.DeliverAfter, callback(t, db, cb.InstanceID, cb.Seq).DeliverAfter)
	}

	leased, err = db.Callbacks.LeaseUndelivered(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []int64{all[3].Seq, all[4].Seq}, seqs(leased),
		"leased rows are hidden, delivered and not-yet-due rows are not offered")

	leased, err = db.Callbacks.LeaseUndelivered(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, leased)

	// A row whose lease or backoff has passed is offered again.
	require.NoError(t, db.Callbacks.MarkDeliveryFailed(ctx, all[2].Seq, "boom", time.Now().Add(-time.Second)))
	require.NoError(t, db.Callbacks.MarkDeliveryFailed(ctx, notYet.Callback.Seq, "boom", time.Now().Add(-time.Second)))
	leased, err = db.Callbacks.LeaseUndelivered(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []int64{all[2].Seq, notYet.Callback.Seq}, seqs(leased))
	require.Equal(t, 1, leased[0].Attempts)
	require.Equal(t, "boom", leased[0].LastError)
}

func TestLeaseUndeliveredOrderWithManyRows(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	allocate(t, db, "I1")
	for i := range 30 {
		_, err := db.Callbacks.RecordCallback(ctx, refresh("I1", fmt.Sprintf("R%02d", i)))
		require.NoError(t, err)
	}
	cbs, err := db.Callbacks.CallbacksOf(ctx, "I1")
	require.NoError(t, err)
	require.Len(t, cbs, 31)

	leased, err := db.Callbacks.LeaseUndelivered(ctx, 100, time.Minute)
	require.NoError(t, err)
	require.Equal(t, seqs(cbs), seqs(leased))
}

func TestMarkDeliveredAndFailed(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	c := allocate(t, db, "I1").Callback
	require.Equal(t, int64(1), undelivered(t, db))

	retryAt := time.Now().Add(90 * time.Second).Truncate(time.Microsecond)
	require.NoError(t, db.Callbacks.MarkDeliveryFailed(ctx, c.Seq, "temporal unavailable", retryAt))
	got := callback(t, db, "I1", c.Seq)
	require.Equal(t, 1, got.Attempts)
	require.Equal(t, "temporal unavailable", got.LastError)
	require.True(t, retryAt.Equal(got.DeliverAfter), "deliver_after %v, want %v", got.DeliverAfter, retryAt)
	require.False(t, got.Delivered())
	require.Equal(t, int64(1), undelivered(t, db))

	require.NoError(t, db.Callbacks.MarkDeliveryFailed(ctx, c.Seq, "still down", retryAt.Add(time.Minute)))
	got = callback(t, db, "I1", c.Seq)
	require.Equal(t, 2, got.Attempts)
	require.Equal(t, "still down", got.LastError)

	require.NoError(t, db.Callbacks.MarkDelivered(ctx, c.Seq, "signalled"))
	got = callback(t, db, "I1", c.Seq)
	require.True(t, got.Delivered())
	require.Equal(t, "signalled", got.Outcome)
	require.Equal(t, 3, got.Attempts)
	require.Empty(t, got.LastError)
	require.Zero(t, undelivered(t, db))
	deliveredAt := got.DeliveredAt.Time

	// A delivered callback stays as it was delivered.
	require.NoError(t, db.Callbacks.MarkDelivered(ctx, c.Seq, "instance workflow closed"))
	require.NoError(t, db.Callbacks.MarkDeliveryFailed(ctx, c.Seq, "late failure", time.Now()))
	got = callback(t, db, "I1", c.Seq)
	require.Equal(t, "signalled", got.Outcome)
	require.Equal(t, 3, got.Attempts)
	require.Empty(t, got.LastError)
	require.True(t, deliveredAt.Equal(got.DeliveredAt.Time))
}

func TestUndeliveredCountAndCallbacksOf(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	require.Zero(t, undelivered(t, db))

	a := allocate(t, db, "A").Callback
	b := allocate(t, db, "B").Callback
	a2, err := db.Callbacks.RecordCallback(ctx, refresh("A", "R1"))
	require.NoError(t, err)
	b2, err := db.Callbacks.RecordCallback(ctx, status("B", "FREEZE"))
	require.NoError(t, err)
	a3, err := db.Callbacks.RecordCallback(ctx, status("A", "FREEZE"))
	require.NoError(t, err)
	require.Equal(t, int64(5), undelivered(t, db))

	cbs, err := db.Callbacks.CallbacksOf(ctx, "A")
	require.NoError(t, err)
	require.Equal(t, []int64{a.Seq, a2.Callback.Seq, a3.Callback.Seq}, seqs(cbs))
	cbs, err = db.Callbacks.CallbacksOf(ctx, "B")
	require.NoError(t, err)
	require.Equal(t, []int64{b.Seq, b2.Callback.Seq}, seqs(cbs))
	cbs, err = db.Callbacks.CallbacksOf(ctx, "C")
	require.NoError(t, err)
	require.Empty(t, cbs)

	require.NoError(t, db.Callbacks.MarkDelivered(ctx, a.Seq, "signalled"))
	require.NoError(t, db.Callbacks.MarkDeliveryFailed(ctx, b.Seq, "x", time.Now()))
	require.Equal(t, int64(4), undelivered(t, db))
}

// --- instances read model ---

func sampleInstance(id, orderID, state string, revision int64) store.Instance {
	expire := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	return store.Instance{
		InstanceID:   id,
		OrderID:      orderID,
		OrderLineID:  orderID + "-1",
		State:        state,
		Reason:       "because",
		Debug:        true,
		ChargingMode: "PERIOD",
		OrderType:    "NEW",
		SkuCode:      "sku-1",
		ProductID:    "prod-1",
		LinearValue:  ptr(int64(20)),
		PeriodType:   "month",
		PeriodNumber: 3,
		CustomerID:   "cust-1",
		CustomerName: "客户一",
		ExpireTime:   &expire,
		FrontEndURL:  "https://app.example.com/t/" + id,
		AdminURL:     "https://app.example.com/admin/" + id,
		Memo:         "备注",
		Revision:     revision,
	}
}

// requireSameInstance compares everything but the timestamps the database sets.
func requireSameInstance(t *testing.T, want, got store.Instance) {
	t.Helper()
	require.False(t, got.CreatedAt.IsZero())
	require.False(t, got.UpdatedAt.IsZero())
	if want.ExpireTime != nil {
		require.NotNil(t, got.ExpireTime)
		require.True(t, want.ExpireTime.Equal(*got.ExpireTime), "expire %v, want %v", got.ExpireTime, want.ExpireTime)
	} else {
		require.Nil(t, got.ExpireTime)
	}
	want.CreatedAt, want.UpdatedAt, want.ExpireTime = got.CreatedAt, got.UpdatedAt, got.ExpireTime
	if want.Details == nil {
		want.Details = []byte(`{}`) // what SaveInstance stores for no details
	}
	require.JSONEq(t, string(want.Details), string(got.Details))
	want.Details = got.Details
	require.Equal(t, want, got)
}

func eventKeys(events []store.Event) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, e.Key)
	}
	return out
}

func TestSaveInstanceRevisions(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	_, err := db.Instances.Instance(ctx, "I1")
	require.ErrorIs(t, err, store.ErrNotFound)

	v1 := sampleInstance("I1", "O1", "provisioning", 1)
	written, err := db.Instances.SaveInstance(ctx, v1, []store.Event{
		{Key: "e1", Kind: "received", Message: "newInstance received", OccurredAt: t0},
		{Key: "e2", Kind: "state", Message: "provisioning", OccurredAt: t0.Add(time.Second)},
	})
	require.NoError(t, err)
	require.True(t, written)
	got, err := db.Instances.Instance(ctx, "I1")
	require.NoError(t, err)
	requireSameInstance(t, v1, got)

	// Same revision: a retried write. The row is kept; new events are still appended once.
	stale := sampleInstance("I1", "O1", "failed", 1)
	stale.Reason = "stale"
	for range 2 {
		written, err = db.Instances.SaveInstance(ctx, stale, []store.Event{
			{Key: "e2", Kind: "state", Message: "duplicate", OccurredAt: t0.Add(time.Hour)},
			{Key: "e3", Kind: "note", Message: "from the stale write", OccurredAt: t0.Add(2 * time.Second)},
		})
		require.NoError(t, err)
		require.False(t, written)
	}
	// Lower revision.
	older := sampleInstance("I1", "O1", "failed", 0)
	written, err = db.Instances.SaveInstance(ctx, older, nil)
	require.NoError(t, err)
	require.False(t, written)
	got, err = db.Instances.Instance(ctx, "I1")
	require.NoError(t, err)
	requireSameInstance(t, v1, got)

	// Newer revision overwrites every field.
	v2 := sampleInstance("I1", "O1", "active", 2)
	v2.Reason = ""
	v2.Debug = false
	v2.LinearValue = nil
	v2.ExpireTime = nil
	v2.Memo = ""
	written, err = db.Instances.SaveInstance(ctx, v2, []store.Event{
		{Key: "e4", Kind: "state", Message: "active", OccurredAt: t0.Add(3 * time.Second)},
	})
	require.NoError(t, err)
	require.True(t, written)
	got, err = db.Instances.Instance(ctx, "I1")
	require.NoError(t, err)
	requireSameInstance(t, v2, got)

	events, err := db.Instances.Events(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, []string{"e1", "e2", "e3", "e4"}, eventKeys(events))
	require.Equal(t, "provisioning", events[1].Message, "the first e2 is kept")
	require.Equal(t, "I1", events[0].InstanceID)
	require.Equal(t, "received", events[0].Kind)
	require.True(t, t0.Equal(events[0].OccurredAt))
}

func TestEventsOrderedByTime(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := db.Instances.SaveInstance(ctx, sampleInstance("I1", "O1", "active", 1), []store.Event{
		{Key: "third", Kind: "k", Message: "m", OccurredAt: t0.Add(2 * time.Minute)},
		{Key: "first", Kind: "k", Message: "m", OccurredAt: t0},
		{Key: "second-a", Kind: "k", Message: "m", OccurredAt: t0.Add(time.Minute)},
		{Key: "second-b", Kind: "k", Message: "m", OccurredAt: t0.Add(time.Minute)},
	})
	require.NoError(t, err)
	_, err = db.Instances.SaveInstance(ctx, sampleInstance("I2", "O2", "active", 1), []store.Event{
		{Key: "other", Kind: "k", Message: "m", OccurredAt: t0},
	})
	require.NoError(t, err)

	events, err := db.Instances.Events(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, []string{"first", "second-a", "second-b", "third"}, eventKeys(events))

	events, err = db.Instances.Events(ctx, "none")
	require.NoError(t, err)
	require.NotNil(t, events)
	require.Empty(t, events)
}

func TestListInstances(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	for _, in := range []store.Instance{
		sampleInstance("i-1", "O1", "active", 1),
		sampleInstance("i-2", "O1", "frozen", 1),
		sampleInstance("i-3", "O2", "active", 1),
		sampleInstance("i-4", "O2", "released", 1),
		sampleInstance("i-5", "O3", "active", 1),
	} {
		_, err := db.Instances.SaveInstance(ctx, in, nil)
		require.NoError(t, err)
	}
	ids := func(list []store.Instance) []string {
		out := []string{}
		for _, in := range list {
			out = append(out, in.InstanceID)
		}
		return out
	}

	cases := []struct {
		name   string
		filter store.InstanceFilter
		want   []string
	}{
		{"all", store.InstanceFilter{}, []string{"i-1", "i-2", "i-3", "i-4", "i-5"}},
		{"state", store.InstanceFilter{State: "active"}, []string{"i-1", "i-3", "i-5"}},
		{"order", store.InstanceFilter{OrderID: "O2"}, []string{"i-3", "i-4"}},
		{"state and order", store.InstanceFilter{State: "active", OrderID: "O2"}, []string{"i-3"}},
		{"no match", store.InstanceFilter{State: "failed"}, []string{}},
		{"first page", store.InstanceFilter{Limit: 2}, []string{"i-1", "i-2"}},
		{"second page", store.InstanceFilter{After: "i-2", Limit: 2}, []string{"i-3", "i-4"}},
		{"last page", store.InstanceFilter{After: "i-4", Limit: 2}, []string{"i-5"}},
		{"past the end", store.InstanceFilter{After: "i-5", Limit: 2}, []string{}},
		{"state paged", store.InstanceFilter{State: "active", After: "i-1", Limit: 1}, []string{"i-3"}},
		{"negative limit means default", store.InstanceFilter{Limit: -1}, []string{"i-1", "i-2", "i-3", "i-4", "i-5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list, err := db.Instances.ListInstances(ctx, tc.filter)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(list))
		})
	}

	list, err := db.Instances.ListInstances(ctx, store.InstanceFilter{OrderID: "O3"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	requireSameInstance(t, sampleInstance("i-5", "O3", "active", 1), list[0])
}

func TestLookupInstances(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	allocate(t, db, "full")     // read model and credentials
	allocate(t, db, "bare")     // allocated only
	allocate(t, db, "creds")    // credentials, no read model yet
	allocate(t, db, "modelled") // read model, no credentials
	_, err := db.Instances.SaveInstance(ctx, sampleInstance("full", "O-full", "active", 3), nil)
	require.NoError(t, err)
	_, err = db.Instances.SaveInstance(ctx, sampleInstance("modelled", "O-modelled", "provisioning", 1), nil)
	require.NoError(t, err)
	require.NoError(t, db.Instances.SaveCredentials(ctx, "full", store.SealedCredentials{UserName: "u-old", Password: "p-old"}))
	require.NoError(t, db.Instances.SaveCredentials(ctx, "full", store.SealedCredentials{UserName: "u-enc", Password: "p-enc"}))
	require.NoError(t, db.Instances.SaveCredentials(ctx, "creds", store.SealedCredentials{UserName: "u2", Password: "p2"}))
	// A read model without an allocated key is not an instance the marketplace knows.
	_, err = db.Instances.SaveInstance(ctx, sampleInstance("orphan", "O-x", "active", 1), nil)
	require.NoError(t, err)

	views, err := db.Instances.LookupInstances(ctx, []string{"full", "bare", "creds", "modelled", "unknown", "orphan"})
	require.NoError(t, err)
	require.Len(t, views, 4)
	require.NotContains(t, views, "unknown")
	require.NotContains(t, views, "orphan")

	full := views["full"]
	require.Equal(t, "full", full.Key.InstanceID)
	require.Equal(t, "O-full", full.Key.OrderID)
	require.Equal(t, "L-full", full.Key.OrderLineID)
	require.NotNil(t, full.Instance)
	requireSameInstance(t, sampleInstance("full", "O-full", "active", 3), *full.Instance)
	require.Equal(t, &store.SealedCredentials{UserName: "u-enc", Password: "p-enc"}, full.Credentials)

	bare := views["bare"]
	require.Equal(t, "bare", bare.Key.InstanceID)
	require.Nil(t, bare.Instance)
	require.Nil(t, bare.Credentials)

	creds := views["creds"]
	require.Nil(t, creds.Instance)
	require.Equal(t, &store.SealedCredentials{UserName: "u2", Password: "p2"}, creds.Credentials)

	modelled := views["modelled"]
	require.NotNil(t, modelled.Instance)
	require.Equal(t, "provisioning", modelled.Instance.State)
	require.Nil(t, modelled.Credentials)

	views, err = db.Instances.LookupInstances(ctx, []string{"unknown"})
	require.NoError(t, err)
	require.Empty(t, views)
	views, err = db.Instances.LookupInstances(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, views)
}
