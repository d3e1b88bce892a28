package inbox

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulfillment-server/fulfillment/store"
)

// The dispatcher delivers recorded callbacks in the background, so that the
// marketplace's answer waits only for the durable record, never for
// Temporal: an answer is one Postgres commit away, whatever Temporal's load.
//
// Callbacks are spread over lanes by owner (instance or license code), and
// each lane delivers its callbacks one at a time in the order they were
// handed over, so one owner's callbacks reach its workflow in arrival order
// while different owners' go side by side. A callback the dispatcher cannot take (its
// lane is full, the server is stopping, Temporal is away) is already in the
// inbox: the relay delivers it after DirectGrace.
type dispatcher struct {
	lanes []chan dispatched
	// queued counts callbacks handed over and not yet finished with.
	queued atomic.Int64
}

type dispatched struct {
	rec store.Recorded
	at  time.Time
}

// Dispatcher defaults: enough lanes to keep Temporal's frontend busy from a
// 2-core machine, and a queue per lane that drains well within the relay's
// grace at the rates one Temporal server manages.
const (
	DefaultDispatchLanes = 32
	dispatchLaneDepth    = 512
)

// StartDispatcher starts lanes delivery goroutines and returns a function
// that waits for them to stop once ctx ends. Until it is called, Dispatch
// leaves every callback to the relay.
func (ib *Inbox) StartDispatcher(ctx context.Context, lanes int) (wait func()) {
	if lanes <= 0 {
		lanes = DefaultDispatchLanes
	}
	d := &dispatcher{lanes: make([]chan dispatched, lanes)}
	var wg sync.WaitGroup
	for i := range d.lanes {
		d.lanes[i] = make(chan dispatched, dispatchLaneDepth)
		wg.Add(1)
		go func(lane <-chan dispatched) {
			defer wg.Done()
			ib.runLane(ctx, d, lane)
		}(d.lanes[i])
	}
	ib.dispatch.Store(d)
	return wg.Wait
}

// Dispatch hands a recorded callback over for delivery and returns at once.
// It reports false when the callback was left to the relay instead.
func (ib *Inbox) Dispatch(rec store.Recorded) bool {
	owner := rec.Callback.Owner()
	if rec.Callback.Delivered() || owner == "" {
		return true
	}
	d := ib.dispatch.Load()
	if d == nil {
		return false
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(owner))
	lane := d.lanes[h.Sum32()%uint32(len(d.lanes))]
	d.queued.Add(1)
	select {
	case lane <- dispatched{rec: rec, at: time.Now()}:
		return true
	default:
		d.queued.Add(-1)
		ib.logger().Warn("Dispatch lane full; delivery left to the relay",
			"owner", owner, "seq", rec.Callback.Seq)
		return false
	}
}

// DispatchBacklog is the number of callbacks handed to the dispatcher and
// not yet delivered or left to the relay.
func (ib *Inbox) DispatchBacklog() int {
	if d := ib.dispatch.Load(); d != nil {
		return int(d.queued.Load())
	}
	return 0
}

func (ib *Inbox) runLane(ctx context.Context, d *dispatcher, lane <-chan dispatched) {
	for {
		select {
		case <-ctx.Done():
			// What is still queued is in the inbox; the relay of this or
			// another replica delivers it.
			return
		case item := <-lane:
			ib.deliverDispatched(ctx, item)
			d.queued.Add(-1)
		}
	}
}

// deliverDispatched is one lane's delivery attempt. A callback that waited
// in its lane past DirectGrace is the relay's by now, and is not sent a
// second time from here.
func (ib *Inbox) deliverDispatched(ctx context.Context, item dispatched) {
	if ib.DirectGrace > 0 && time.Since(item.at) >= ib.DirectGrace {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, dispatchTimeout)
	defer cancel()
	if err := ib.DeliverNow(dctx, item.rec); err != nil {
		ib.logger().Warn("Callback recorded; delivery left to the relay",
			"owner", item.rec.Callback.Owner(), "seq", item.rec.Callback.Seq,
			"activity", item.rec.Callback.Activity, "error", err)
	}
}

// dispatchTimeout bounds one background SignalWithStart: past it the lane
// moves on and the relay retries the callback.
const dispatchTimeout = 5 * time.Second
