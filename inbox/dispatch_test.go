package inbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/store"
)

// waitIdle waits until the dispatcher has finished with what it was given.
func waitIdle(t *testing.T, backlog func() int) {
	t.Helper()
	require.Eventually(t, func() bool { return backlog() == 0 }, 10*time.Second, time.Millisecond)
}

func TestDispatchDeliversEachInstanceInArrivalOrder(t *testing.T) {
	ib, fake := newInbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	wait := ib.StartDispatcher(ctx, 3)
	t.Cleanup(func() { cancel(); wait() })

	// Five instances' lives, interleaved as concurrent requests would
	// record them.
	var recs [][]store.Recorded
	for i := range 5 {
		id := fmt.Sprintf("B%d", i)
		recs = append(recs, []store.Recorded{record(t, ib, newInstanceBody(fmt.Sprintf("O%d", i), id))})
	}
	for _, body := range []func(id string) string{
		func(id string) string { return refreshBody(id, "R"+id) },
		func(id string) string { return statusBody(id, "FREEZE") },
		func(id string) string { return statusBody(id, "UNFREEZE") },
		func(id string) string { return releaseBody(id) },
	} {
		for i := range recs {
			recs[i] = append(recs[i], record(t, ib, body(fmt.Sprintf("B%d", i))))
		}
	}
	for step := range recs[0] {
		for i := range recs {
			require.True(t, ib.Dispatch(recs[i][step]))
		}
	}
	waitIdle(t, ib.DispatchBacklog)

	byInstance := map[string][]string{}
	for _, c := range fake.Calls() {
		require.NoError(t, c.Err)
		byInstance[c.WorkflowID] = append(byInstance[c.WorkflowID], c.Signal.Key)
	}
	require.Len(t, byInstance, 5)
	for i := range recs {
		var want []string
		for _, rec := range recs[i] {
			want = append(want, rec.Callback.DedupKey)
			require.True(t, row(t, ib, rec).Delivered(), "marked delivered")
		}
		require.Equal(t, want, byInstance[fmt.Sprintf("instance/B%d", i)], "instance B%d in arrival order", i)
	}
}

func TestDispatchLeavesToTheRelay(t *testing.T) {
	t.Run("before the dispatcher runs", func(t *testing.T) {
		ib, fake := newInbox(t)
		rec := record(t, ib, newInstanceBody("O1", "B1"))
		require.False(t, ib.Dispatch(rec))
		require.Empty(t, fake.Calls())
		require.False(t, row(t, ib, rec).Delivered())

		delivered, err := ib.RelayOnce(context.Background())
		require.NoError(t, err)
		require.Equal(t, 1, delivered)
	})

	t.Run("a callback that waited past the relay's grace", func(t *testing.T) {
		ib, fake := newInbox(t)
		ib.DirectGrace = 50 * time.Millisecond
		// The lane is stuck on the first signal while the second
		// callback waits behind it past the grace.
		ctx, cancel := context.WithCancel(context.Background())
		release := fake.holdCalls()
		wait := ib.StartDispatcher(ctx, 1)
		t.Cleanup(func() { cancel(); wait() })
		first := record(t, ib, newInstanceBody("O1", "B1"))
		second := record(t, ib, newInstanceBody("O2", "B2"))
		require.True(t, ib.Dispatch(first))
		require.True(t, ib.Dispatch(second))
		time.Sleep(2 * ib.DirectGrace)
		release()
		waitIdle(t, ib.DispatchBacklog)

		require.Equal(t, []string{"newInstance:O1:O1-1"}, fake.keys(), "the second is the relay's by now")
		require.False(t, row(t, ib, second).Delivered())
	})
}
