package inbox

import (
	"context"
	"time"

	"github.com/fulfillment-server/fulfillment/store"
)

// Relay settings.
const (
	relayBatch = 100
	// relayLease hides leased rows from other replicas' relays while this
	// one delivers them; a crashed relay's rows come back after it.
	relayLease = 30 * time.Second
	// deliveryTimeout bounds one SignalWithStart, so a hanging Temporal
	// does not stall the relay.
	deliveryTimeout = 10 * time.Second
)

// RelayOnce delivers the callbacks that are due, oldest first, and returns
// how many it delivered. For each instance it stops at the first callback it
// cannot deliver, so a later callback never overtakes an earlier one; the
// later ones it took are made due again shortly, not held for the lease.
func (ib *Inbox) RelayOnce(ctx context.Context) (int, error) {
	due, err := ib.background().LeaseUndelivered(ctx, relayBatch, relayLease)
	if err != nil {
		return 0, err
	}
	delivered := 0
	blocked := map[string]bool{}
	var leftOver []int64
	defer func() {
		// The blocking callback retries after a second or more; its
		// successors are looked at again from then on.
		if err := ib.background().ReturnLeases(context.WithoutCancel(ctx), leftOver, time.Now().Add(time.Second)); err != nil {
			ib.logger().Warn("Relay could not return leases; they expire on their own", "error", err)
		}
	}()
	keys := map[string]store.InstanceKey{}
	for _, cb := range due {
		if blocked[cb.InstanceID] {
			leftOver = append(leftOver, cb.Seq)
			continue
		}
		waiting, err := ib.background().HasEarlierUndelivered(ctx, cb.InstanceID, cb.Seq)
		if err != nil {
			return delivered, err
		}
		if waiting {
			// An older callback is backing off or leased elsewhere.
			blocked[cb.InstanceID] = true
			leftOver = append(leftOver, cb.Seq)
			continue
		}
		key, ok := keys[cb.InstanceID]
		if !ok {
			if key, err = ib.background().InstanceKey(ctx, cb.InstanceID); err != nil {
				return delivered, err
			}
			keys[cb.InstanceID] = key
		}
		dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
		err = ib.Deliver(dctx, key, cb)
		cancel()
		if err != nil {
			blocked[cb.InstanceID] = true
			ib.logger().Warn("Relay could not deliver callback; will retry",
				"instanceId", cb.InstanceID, "seq", cb.Seq, "activity", cb.Activity, "attempt", cb.Attempts+1, "error", err)
			continue
		}
		delivered++
	}
	return delivered, nil
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
		wait := interval
		if n == relayBatch {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
