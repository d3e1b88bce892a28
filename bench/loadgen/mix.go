package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Mix is a run of whole purchase lives: for every instance, in order,
//
//	newInstance → queryInstance → refreshInstance (RENEWAL) → FREEZE →
//	UNFREEZE → queryInstance → releaseInstance
//
// with each callback that changes something sent a second time, at the
// Redeliver rate, as KooGallery does when it misses an answer. Instances
// run side by side, Concurrency at a time.
type Mix struct {
	Instances   int
	Concurrency int
	// Rate is the callbacks offered a second; 0 sends as fast as the
	// clients go.
	Rate float64
	// Redeliver is the share (0 to 1) of the changing callbacks sent twice.
	Redeliver float64
	// OrderPrefix names the orders: <prefix>-<n>, line <prefix>-<n>-000001.
	// The server's Query Order must know them (make bench serves them from
	// a mock open API; the documented mock orders cannot be bought twice).
	OrderPrefix string
	// RenewTo is the expiry the renewal sets.
	RenewTo time.Time
	// Patience bounds the wait for every callback to be applied.
	Patience time.Duration
}

// Changes is the number of callbacks of one life that change the instance,
// each signalled once to its workflow: newInstance, refreshInstance, FREEZE,
// UNFREEZE, releaseInstance.
const Changes = 5

// MixResult is what a Mix run measured.
type MixResult struct {
	Summary
	// Applied runs from the first callback sent until the last instance's
	// release was applied; zero when that did not happen within Patience.
	Applied time.Duration
	// Unfinished counts the instances not yet released when Patience ran
	// out; their timelines are then not checked.
	Unfinished int
	// Checked is the instances whose timelines were read; Lost counts
	// callbacks answered 000000 whose effect is missing, Duplicated those
	// applied more than once.
	Checked, Lost, Duplicated int
	// InstanceIDs are the lives' instances, "" for a life whose
	// newInstance was never answered 000000.
	InstanceIDs []string
}

// AppliedRate is the changing callbacks applied a second, from the first
// sent to the last applied.
func (r MixResult) AppliedRate(instances int) float64 {
	if r.Applied <= 0 {
		return 0
	}
	return float64(instances*Changes) / r.Applied.Seconds()
}

// OrderID and LineID name the order of instance n of a prefix.
func OrderID(prefix string, n int) string { return prefix + "-" + strconv.Itoa(n) }
func LineID(prefix string, n int) string  { return OrderID(prefix, n) + "-000001" }

// RunMix plays the lives, waits until every one is applied and checks each
// instance's timeline for lost and duplicated effects.
func RunMix(ctx context.Context, t Target, m Mix) (MixResult, error) {
	if err := validate(m.Instances, m.Concurrency, m.Rate); err != nil {
		return MixResult{}, err
	}
	if m.Redeliver < 0 || m.Redeliver > 1 {
		return MixResult{}, fmt.Errorf("the redelivery share must be between 0 and 1, not %g", m.Redeliver)
	}
	if m.RenewTo.IsZero() {
		m.RenewTo = time.Now().AddDate(2, 0, 0).UTC().Truncate(time.Second)
	}
	hc := t.client(m.Concurrency)
	before, err := StateCounts(ctx, hc, t)
	if err != nil {
		return MixResult{}, err
	}
	stats := &Stats{}
	sched := newSchedule(m.Rate)
	ids := make([]string, m.Instances)
	_ = benchenv.Parallel(ctx, m.Instances, m.Concurrency, func(ctx context.Context, n int) error {
		ids[n] = playLife(ctx, hc, t, m, n, sched, stats)
		return nil
	})
	if err := ctx.Err(); err != nil {
		return MixResult{}, err
	}
	res := MixResult{Summary: stats.Summary(), InstanceIDs: ids}
	want := before["released"] + int64(m.Instances)
	if err := waitForState(ctx, hc, t, "released", want, m.Patience); err != nil {
		// Not lost, perhaps, only not yet applied: say how far it got
		// rather than count the rest as lost.
		if counts, cerr := StateCounts(ctx, hc, t); cerr == nil {
			res.Unfinished = int(want - counts["released"])
		}
		return res, nil
	}
	res.Applied = time.Since(res.Started)
	res.Checked, res.Lost, res.Duplicated, err = checkLives(ctx, hc, t, m, ids)
	return res, err
}

// playLife sends one instance's callbacks in order and returns its
// instanceId ("" when newInstance was never answered 000000).
func playLife(ctx context.Context, hc *http.Client, t Target, m Mix, n int, sched *schedule, stats *Stats) string {
	// Redeliveries are drawn from a generator of the instance's own, so a
	// run is the same whatever the interleaving.
	rng := rand.New(rand.NewPCG(uint64(n), 0x6b67))
	call := func(kind, body string) Answer {
		due, err := sched.next(ctx)
		if err != nil {
			return Answer{Kind: kind, Code: "cancelled"}
		}
		a := send(ctx, hc, t, kind, []byte(body), due)
		stats.add(a, due)
		return a
	}
	twice := func(kind, body string) Answer {
		a := call(kind, body)
		if rng.Float64() < m.Redeliver {
			call(kind, body)
		}
		return a
	}
	order, line := OrderID(m.OrderPrefix, n), LineID(m.OrderPrefix, n)
	first := call("newInstance", NewInstanceBody(order, line, order+"-biz"))
	if first.Code != string(koogallery.ResultSuccess) {
		return ""
	}
	id := first.InstanceID
	if rng.Float64() < m.Redeliver {
		// A redelivered newInstance carries a new businessId (contract §1.2).
		call("newInstance", NewInstanceBody(order, line, order+"-biz-again"))
	}
	call("queryInstance", fmt.Sprintf(`{"activity":"queryInstance","instanceId":%q}`, id))
	twice("refreshInstance", fmt.Sprintf(`{"activity":"refreshInstance","instanceId":%q,"orderId":%q,"orderLineId":%q,"scene":"RENEWAL","expireTime":%q}`,
		id, order+"-R", order+"-R-000001", koogallery.FormatTime(m.RenewTo)))
	twice("FREEZE", StatusBody(id, "FREEZE"))
	twice("UNFREEZE", StatusBody(id, "UNFREEZE"))
	call("queryInstance", fmt.Sprintf(`{"activity":"queryInstance","instanceId":%q}`, id))
	twice("releaseInstance", fmt.Sprintf(`{"activity":"releaseInstance","instanceId":%q}`, id))
	return id
}

// NewInstanceBody and StatusBody are callback bodies as KooGallery sends them.
func NewInstanceBody(order, line, businessID string) string {
	return fmt.Sprintf(`{"activity":"newInstance","orderId":%q,"orderLineId":%q,"businessId":%q}`, order, line, businessID)
}

func StatusBody(id, status string) string {
	return fmt.Sprintf(`{"activity":"updateInstanceStatus","instanceId":%q,"status":%q}`, id, status)
}

// checkLives reads every instance's timeline: each changing callback must
// have been applied exactly once, and the instance released.
func checkLives(ctx context.Context, hc *http.Client, t Target, m Mix, ids []string) (checked, lost, duplicated int, err error) {
	type tally struct{ checked, lost, duplicated int }
	results := make([]tally, len(ids))
	err = benchenv.Parallel(ctx, len(ids), m.Concurrency, func(ctx context.Context, n int) error {
		id := ids[n]
		if id == "" {
			return nil
		}
		inst, err := GetInstance(ctx, hc, t, id)
		if err != nil {
			return err
		}
		order := OrderID(m.OrderPrefix, n)
		applied := map[string]int{}
		for _, e := range inst.Events {
			applied[e.Key]++
		}
		r := tally{checked: 1}
		for _, key := range []string{
			"callback/newInstance:" + order + ":" + LineID(m.OrderPrefix, n),
			"callback/refreshInstance:" + id + ":" + order + "-R:" + order + "-R-000001",
			"callback/updateInstanceStatus:" + id + ":FREEZE:1",
			"callback/updateInstanceStatus:" + id + ":UNFREEZE:2",
			"callback/releaseInstance:" + id,
		} {
			switch c := applied[key]; {
			case c == 0:
				r.lost++
			case c > 1:
				r.duplicated += c - 1
			}
		}
		if inst.State != "released" && r.lost == 0 {
			r.lost++
		}
		results[n] = r
		return nil
	})
	for _, r := range results {
		checked, lost, duplicated = checked+r.checked, lost+r.lost, duplicated+r.duplicated
	}
	return checked, lost, duplicated, err
}
