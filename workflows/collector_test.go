package workflows_test

// The usage collector and the metering workflows that hand their instances
// to it, against the real activities and PostgreSQL, on the test
// environment's skipped clock, with the fake marketplace of
// metering_test.go.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// collectorRig is a database of metered instances, the fake marketplace,
// and the alerts and signals the workflows sent.
type collectorRig struct {
	*meteringRig
	ids []string
}

// newCollectorRig has n pay-per-use instances, each reporting a varied
// amount at 25 past every hour from meteringStart until until.
func newCollectorRig(t *testing.T, n int, until time.Time, outages ...outage) *collectorRig {
	t.Helper()
	db := testenv.NewStore(t)
	m := &fakeMarketplace{outages: outages}
	r := &collectorRig{meteringRig: &meteringRig{db: db, period: time.Hour, marketplace: m, alerts: &alerts{},
		acts: &activities.Activities{Store: db, Usage: m}}}
	for i := range n {
		id := fmt.Sprintf("ppu-%d", i+1)
		r.ids = append(r.ids, id)
		rec, err := db.Callbacks.RecordNewInstance(t.Context(), id, store.NewCallback{
			DedupKey: "newInstance:O-" + id + ":L", Activity: "newInstance", OrderID: "O-" + id, OrderLineID: "L",
			Body: []byte(`{"activity":"newInstance"}`),
		})
		require.NoError(t, err)
		_, err = db.Instances.SaveInstance(t.Context(), store.Instance{
			InstanceID: id, OrderID: rec.Key.OrderID, OrderLineID: rec.Key.OrderLineID, State: "active",
			ChargingMode: "ON_DEMAND", CustomerID: "cust-" + id, SkuCode: "sku-sms", Revision: 1,
		}, nil)
		require.NoError(t, err)
		var usage []store.Usage
		for h := 0; ; h++ {
			at := meteringStart.Truncate(time.Hour).Add(time.Duration(h)*time.Hour + 25*time.Minute)
			if !at.Before(until) {
				break
			}
			if at.Before(meteringStart) {
				continue
			}
			usage = append(usage, store.Usage{IdempotencyKey: fmt.Sprintf("%s-%d", id, h), InstanceID: id, Meter: "sms",
				Quantity: hourlyQuantity(h + i), OccurredAt: at})
		}
		_, refused, err := db.Metering.InsertUsage(t.Context(), usage, koogallery.MaxUsageValue)
		require.NoError(t, err)
		require.Empty(t, refused)
	}
	return r
}

// register hands every instance to the collector from meteringStart, as
// their metering workflows do when they start.
func (r *collectorRig) register(t *testing.T) {
	t.Helper()
	for _, id := range r.ids {
		require.NoError(t, r.acts.RegisterMetering(t.Context(), activities.RegisterMeteringInput{
			InstanceID: id, Period: time.Hour, PushDelay: 5 * time.Minute, OpenSince: meteringStart,
		}))
	}
}

// runCollector runs the collector from meteringStart until until, with
// what happens on the way.
func (r *collectorRig) runCollector(t *testing.T, until time.Time, events ...scheduled) {
	t.Helper()
	env := r.envFor(t, meteringStart, workflows.UsageCollectorWorkflowID("test"))
	for _, e := range events {
		env.RegisterDelayedCallback(func() { e.do(env) }, e.at.Sub(meteringStart))
	}
	env.RegisterDelayedCallback(env.CancelWorkflow, until.Sub(meteringStart))
	env.ExecuteWorkflow(workflows.UsageCollectorWorkflowName, workflows.UsageCollectorInput{Period: time.Hour, PushDelay: 5 * time.Minute})
	require.True(t, env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	require.True(t, errors.As(env.GetWorkflowError(), &canceled), "%v", env.GetWorkflowError())
}

// Ten days of hourly usage of 5 instances, the usage endpoint down for 6
// hours: each hour's 5 records reach the marketplace in one call, 5
// minutes after the hour, exactly once; the hours the outage held back are
// caught up in one call when it ends. Temporal's work is one activity and
// one timer per hour, whatever the number of instances.
func TestCollectorTenDaysWithAnOutage(t *testing.T) {
	down := outage{from: time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC), to: time.Date(2026, 3, 6, 16, 0, 0, 0, time.UTC)}
	until := meteringStart.Add(10 * 24 * time.Hour)
	r := newCollectorRig(t, 5, until, down)
	r.register(t)

	r.runCollector(t, until.Add(10*time.Minute))

	accepted, refused := r.marketplace.pushes()
	hours := int(until.Sub(meteringStart.Truncate(time.Hour)) / time.Hour)
	require.Len(t, accepted, hours-6, "one call per hour, the outage's caught up in one")
	sns := map[string]bool{}
	for _, batch := range accepted {
		at := usageTime(t, batch[0].RecordTime)
		instances := map[string]bool{}
		for _, rec := range batch {
			require.False(t, sns[rec.MeteringSN], "metering_sn %s pushed twice", rec.MeteringSN)
			sns[rec.MeteringSN] = true
			instances[rec.InstanceID] = true
			begin := usageTime(t, rec.BeginTime)
			require.Equal(t, activities.MeteringSN(rec.InstanceID, begin), rec.MeteringSN)
			if at.Before(down.from) || !at.Before(down.to.Add(time.Hour)) {
				require.Equal(t, usageTime(t, rec.EndTime).Add(5*time.Minute), at, "pushed 5 minutes after its period")
			}
		}
		require.Len(t, instances, 5, "one call carries every instance")
	}
	require.Len(t, sns, 5*hours)
	require.NotEmpty(t, refused)
	require.Len(t, r.alerts.ofKind("usage_push_failing"), 1, "operators hear of the outage once")
	for _, id := range r.ids {
		summary, err := r.db.Metering.UsageSummaryOf(t.Context(), id)
		require.NoError(t, err)
		require.Zero(t, summary.Pending)
		require.Equal(t, summary.Reported, summary.Pushed, "every unit reported is billed once")
	}
}

// The batched metering workflow of an instance: it hands the instance to
// the collector when it starts, and then carries its freeze, unfreeze and
// release; the release flushes the last partial hour at once.
func TestMeteringWorkflowHandsItsInstanceToTheCollector(t *testing.T) {
	until := meteringStart.Add(6 * time.Hour)
	r := newCollectorRig(t, 1, until)
	id := r.ids[0]
	freeze := meteringStart.Truncate(time.Hour).Add(2*time.Hour + 40*time.Minute)
	unfreeze := freeze.Add(time.Hour)
	release := meteringStart.Truncate(time.Hour).Add(5*time.Hour + 30*time.Minute)
	env := r.envFor(t, meteringStart, workflows.MeteringWorkflowID(id))
	control := func(kind string, at time.Time) {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(workflows.MeteringSignal, workflows.MeteringControl{Kind: kind, At: at})
		}, at.Sub(meteringStart))
	}
	// The collector's passes, at 5 past every hour.
	for at := meteringStart.Truncate(time.Hour).Add(time.Hour + 5*time.Minute); at.Before(release); at = at.Add(time.Hour) {
		env.RegisterDelayedCallback(func() {
			_, err := r.acts.CollectUsage(context.Background(), activities.CollectUsageInput{Now: at})
			require.NoError(t, err)
		}, at.Sub(meteringStart))
	}
	control(workflows.MeterPause, freeze)
	control(workflows.MeterResume, unfreeze)
	control(workflows.MeterStop, release)

	env.ExecuteWorkflow(workflows.MeteringWorkflowName, workflows.MeteringInput{
		InstanceID: id, Period: time.Hour, PushDelay: 5 * time.Minute, From: meteringStart,
	})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	accepted, _ := r.marketplace.pushes()
	var spans []string
	for _, batch := range accepted {
		for _, rec := range batch {
			spans = append(spans, rec.BeginTime[9:15]+"-"+rec.EndTime[9:15]+" at "+rec.RecordTime[9:15])
		}
	}
	require.Equal(t, []string{
		"002000-010000 at 010500", // the collector, from the start
		"010000-020000 at 020500",
		"020000-024000 at 024000", // the freeze pushes at once
		// 03:25 was frozen: not billed; metered again from 03:40
		"040000-050000 at 050500",
		"050000-053000 at 053000", // the release's flush
	}, spans)
	require.Equal(t, []workflows.Internal{{Kind: workflows.InternalMeteringFlushed}}, r.internal)
	summary, err := r.db.Metering.UsageSummaryOf(t.Context(), id)
	require.NoError(t, err)
	require.Zero(t, summary.Pending)
	require.Equal(t, "0.0000", summary.Unassigned)
	require.Equal(t, sum(t, summary.Reported), sum(t, summary.Pushed, hourlyQuantity(3)), "all but the frozen hour's usage")
}

// A metering run that began before the collector (it closes and pushes its
// own periods) hands over at its first close after the upgrade: across it
// no period is pushed twice or skipped.
func TestMeteringHandsOverInPlace(t *testing.T) {
	release := meteringStart.Add(8 * time.Hour)
	r := newCollectorRig(t, 1, release)
	id := r.ids[0]
	upgrade := meteringStart.Truncate(time.Hour).Add(3*time.Hour + 30*time.Minute)
	env := r.envFor(t, meteringStart, workflows.MeteringWorkflowID(id))
	env.OnGetVersion(mock.Anything, workflow.DefaultVersion, 1).Return(
		func(changeID string, _, maxSupported workflow.Version) workflow.Version {
			if len(changeID) > len("batched-metering/") && changeID[:len("batched-metering/")] == "batched-metering/" &&
				env.Now().Before(upgrade) {
				return workflow.DefaultVersion // the code before the upgrade
			}
			return maxSupported
		})
	for at := upgrade.Truncate(time.Hour).Add(time.Hour + 5*time.Minute); at.Before(release); at = at.Add(time.Hour) {
		env.RegisterDelayedCallback(func() {
			_, err := r.acts.CollectUsage(context.Background(), activities.CollectUsageInput{Now: at})
			require.NoError(t, err)
		}, at.Sub(meteringStart)+time.Second) // just after the metering's own wake
	}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.MeteringSignal, workflows.MeteringControl{Kind: workflows.MeterStop, At: release})
	}, release.Sub(meteringStart))

	env.ExecuteWorkflow(workflows.MeteringWorkflowName, workflows.MeteringInput{
		InstanceID: id, Period: time.Hour, PushDelay: 5 * time.Minute, From: meteringStart,
	})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	accepted, _ := r.marketplace.pushes()
	var begins []time.Time
	sns := map[string]bool{}
	for _, batch := range accepted {
		for _, rec := range batch {
			require.False(t, sns[rec.MeteringSN], "metering_sn %s pushed twice", rec.MeteringSN)
			sns[rec.MeteringSN] = true
			begins = append(begins, usageTime(t, rec.BeginTime))
		}
	}
	require.Len(t, begins, 8, "00:20, 01:00 … 07:00 (08:00–08:20 had no usage)")
	require.Equal(t, meteringStart, begins[0])
	for i := 1; i < len(begins); i++ {
		require.Equal(t, meteringStart.Truncate(time.Hour).Add(time.Duration(i)*time.Hour), begins[i], "no gap")
	}
	summary, err := r.db.Metering.UsageSummaryOf(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, summary.Reported, summary.Pushed)
}
