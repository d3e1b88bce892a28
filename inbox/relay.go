package inbox

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fulfillment-server/fulfillment/store"
)

// Relay settings.
const (
	relayBatch = 500
	// relayParallel is how many owners (instances, license codes) the
	// relay delivers to at once; each one's callbacks still go one at a
	// time, in order. After a
	// burst larger than the dispatcher's queues the relay carries the
	// backlog, so it must not be one SignalWithStart at a time.
	relayParallel = 16
	// relayLease hides leased rows from other replicas' relays while this
	// one delivers them; a crashed relay's rows come back after it.
	relayLease = 30 * time.Second
	// deliveryTimeout bounds one SignalWithStart, so a hanging Temporal
	// does not stall the relay.
	deliveryTimeout = 10 * time.Second
)

// RelayOnce delivers the callbacks that are due, oldest first, and returns
// how many it delivered. Owners (instances, license codes) are served side
// by side; for each one it
// stops at the first callback it cannot deliver, so a later callback never
// overtakes an earlier one; the later ones it took are made due again
// shortly, not held for the lease.
func (ib *Inbox) RelayOnce(ctx context.Context) (int, error) {
	due, err := ib.background().LeaseUndelivered(ctx, relayBatch, relayLease)
	if err != nil {
		return 0, err
	}
	// The owners in order of their oldest due callback, each with its
	// callbacks in seq order.
	var order []string
	byOwner := map[string][]store.Callback{}
	for _, cb := range due {
		owner := cb.Owner()
		if _, ok := byOwner[owner]; !ok {
			order = append(order, owner)
		}
		byOwner[owner] = append(byOwner[owner], cb)
	}

	var (
		mu        sync.Mutex
		delivered int
		leftOver  []int64
		firstErr  error
		wg        sync.WaitGroup
	)
	slots := make(chan struct{}, relayParallel)
	for _, id := range order {
		slots <- struct{}{}
		wg.Add(1)
		go func(cbs []store.Callback) {
			defer func() { <-slots; wg.Done() }()
			n, left, err := ib.relayOwner(ctx, cbs)
			mu.Lock()
			defer mu.Unlock()
			delivered += n
			leftOver = append(leftOver, left...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}(byOwner[id])
	}
	wg.Wait()
	// The blocking callback retries after a second or more; its successors
	// are looked at again from then on.
	if err := ib.background().ReturnLeases(context.WithoutCancel(ctx), leftOver, time.Now().Add(time.Second)); err != nil {
		ib.logger().Warn("Relay could not return leases; they expire on their own", "error", err)
	}
	return delivered, firstErr
}

// relayOwner delivers one owner's leased callbacks in seq order until
// one cannot be delivered, and returns how many it delivered and the seqs of
// the ones it did not try. A failed delivery is marked with its own retry
// time; a database error leaves the rest to the lease.
func (ib *Inbox) relayOwner(ctx context.Context, cbs []store.Callback) (delivered int, leftOver []int64, err error) {
	rest := func(from int) []int64 {
		var seqs []int64
		for _, cb := range cbs[from:] {
			seqs = append(seqs, cb.Seq)
		}
		return seqs
	}
	var key store.InstanceKey
	for i, cb := range cbs {
		waiting, err := ib.background().HasEarlierUndelivered(ctx, cb)
		if err != nil {
			return delivered, nil, err
		}
		if waiting {
			// An older callback is backing off or leased elsewhere.
			return delivered, rest(i), nil
		}
		if key.InstanceID == "" && cb.License == "" {
			if key, err = ib.background().InstanceKey(ctx, cb.InstanceID); err != nil {
				return delivered, nil, err
			}
		}
		dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
		err = ib.Deliver(dctx, key, cb)
		cancel()
		if errors.Is(err, ErrParked) {
			continue // set aside for an operator: the next ones go on
		}
		if err != nil {
			ib.logger().Warn("Relay could not deliver callback; will retry",
				"owner", cb.Owner(), "seq", cb.Seq, "activity", cb.Activity, "attempt", cb.Attempts+1, "error", err)
			return delivered, rest(i + 1), nil
		}
		delivered++
	}
	return delivered, nil, nil
}

// RunRelay relays until ctx ends, checking every interval (sooner while
// there is a backlog to work through).
func (ib *Inbox) RunRelay(ctx context.Context, interval time.Duration) {
	for {
		n, err := ib.RelayOnce(ctx)
		if err != nil && ctx.Err() == nil {
			ib.logger().Warn("Relay pass failed", "error", err)
		}
		if n > 0 {
			ib.logger().Info("Relay delivered callbacks", "count", n)
		}
		// While there is a backlog, the next pass starts at once.
		wait := interval
		if n > 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
