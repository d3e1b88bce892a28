package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Storm is the expiry storm: Instances monthly purchases bought on the same
// day expire in the same minute, and KooGallery's FREEZE for every one of
// them arrives within that minute (contract §4: it gives up after its retry
// window, so each must be answered in time).
type Storm struct {
	Instances   int
	Concurrency int
	// OrderPrefix names the orders (see Mix); the server's Query Order must
	// give them all the expiry ExpireAt.
	OrderPrefix string
	ExpireAt    time.Time
	// Spread is how long the FREEZE calls take to arrive, evenly spaced
	// (at most a minute).
	Spread time.Duration
	// Patience bounds each wait: every instance active, every one frozen.
	Patience time.Duration
}

// StormResult is what a Storm run measured.
type StormResult struct {
	// Create covers the newInstance calls; AllActive runs from the first
	// of them until every instance was active.
	Create    Summary
	AllActive time.Duration
	// Freeze covers the FREEZE calls; AllFrozen runs from the first of them
	// until every tenant was frozen (zero: not within Patience).
	Freeze    Summary
	AllFrozen time.Duration
	Frozen    int64
}

// RunStorm buys the instances, waits for their common expiry, sends every
// FREEZE within the minute and times how long until the last is frozen.
func RunStorm(ctx context.Context, t Target, s Storm) (StormResult, error) {
	if err := validate(s.Instances, s.Concurrency, 0); err != nil {
		return StormResult{}, err
	}
	if s.Spread <= 0 || s.Spread > time.Minute {
		return StormResult{}, fmt.Errorf("the FREEZE calls must be spread over up to a minute, not %s", s.Spread)
	}
	hc := t.client(s.Concurrency)
	before, err := StateCounts(ctx, hc, t)
	if err != nil {
		return StormResult{}, err
	}
	var res StormResult

	bought, err := Buy(ctx, t, Purchase{
		Instances: s.Instances, Concurrency: s.Concurrency, OrderPrefix: s.OrderPrefix, Patience: s.Patience,
	})
	res.Create, res.AllActive = bought.Create, bought.AllActive
	if err != nil {
		return res, err
	}
	ids := bought.IDs
	if time.Until(s.ExpireAt) < 0 {
		return res, fmt.Errorf("provisioning %d instances took %s, past their expiry at %s: give them a later one",
			s.Instances, res.AllActive.Round(time.Second), s.ExpireAt.Format(time.TimeOnly))
	}

	// The minute of the expiry: every FREEZE arrives in it.
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(time.Until(s.ExpireAt)):
	}
	frozen := &Stats{}
	sched := newSchedule(float64(s.Instances) / s.Spread.Seconds())
	_ = benchenv.Parallel(ctx, s.Instances, s.Concurrency, func(ctx context.Context, n int) error {
		due, err := sched.next(ctx)
		if err != nil {
			return err
		}
		frozen.add(send(ctx, hc, t, "FREEZE", []byte(StatusBody(ids[n], "FREEZE")), due), due)
		return nil
	})
	res.Freeze = frozen.Summary()
	want := before["frozen"] + int64(s.Instances)
	err = waitForState(ctx, hc, t, "frozen", want, s.Patience)
	if counts, cerr := StateCounts(ctx, hc, t); cerr == nil {
		res.Frozen = counts["frozen"] - before["frozen"]
	}
	if err == nil {
		res.AllFrozen = time.Since(res.Freeze.Started)
	}
	return res, nil
}

// Purchase is a number of monthly purchases bought at once, from
// Concurrency clients; Patience bounds the wait until all are active.
type Purchase struct {
	Instances   int
	Concurrency int
	OrderPrefix string
	Patience    time.Duration
}

// Bought is what Buy did: the instances' IDs, the newInstance answers, and
// the time from the first call until every instance was active.
type Bought struct {
	IDs       []string
	Create    Summary
	AllActive time.Duration
}

// Buy sends newInstance for every purchase and waits until all are active.
func Buy(ctx context.Context, t Target, p Purchase) (Bought, error) {
	if err := validate(p.Instances, p.Concurrency, 0); err != nil {
		return Bought{}, err
	}
	hc := t.client(p.Concurrency)
	before, err := StateCounts(ctx, hc, t)
	if err != nil {
		return Bought{}, err
	}
	created := &Stats{}
	out := Bought{IDs: make([]string, p.Instances)}
	_ = benchenv.Parallel(ctx, p.Instances, p.Concurrency, func(ctx context.Context, n int) error {
		order := OrderID(p.OrderPrefix, n)
		a := send(ctx, hc, t, "newInstance", []byte(NewInstanceBody(order, LineID(p.OrderPrefix, n), order+"-biz")), time.Now())
		created.add(a, time.Now().Add(-a.Latency))
		if a.Code == string(koogallery.ResultSuccess) {
			out.IDs[n] = a.InstanceID
		}
		return nil
	})
	out.Create = created.Summary()
	if failed := p.Instances - out.Create.Codes[string(koogallery.ResultSuccess)]; failed > 0 {
		return out, fmt.Errorf("%d of %d newInstance calls were not answered 000000: %v", failed, p.Instances, out.Create.Codes)
	}
	if err := waitForState(ctx, hc, t, "active", before["active"]+int64(p.Instances), p.Patience); err != nil {
		return out, fmt.Errorf("provisioning %d instances: %w", p.Instances, err)
	}
	out.AllActive = time.Since(out.Create.Started)
	return out, nil
}
