package workflows_test

// The metering workflow against the real activities and a real PostgreSQL:
// weeks of hourly usage on the test environment's skipped clock, with the
// marketplace's usage endpoint replaced by a fake that records every push
// and can be down for a while.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

const ppu = "ppu-1"

// meteringStart is when the instance was provisioned: not on an hour.
var meteringStart = time.Date(2026, 3, 1, 0, 20, 0, 0, time.UTC)

// outage is a stretch in which the usage endpoint refuses every push: with
// HTTP 500 MKT.0999, or with the answer of code when it is set.
type outage struct {
	from, to time.Time
	code     string
}

// fakeMarketplace records the usage pushes; a push is dated by its records'
// record_time, which the workflow sets from its own (skipped) clock.
type fakeMarketplace struct {
	outages []outage

	mu       sync.Mutex
	accepted [][]koogallery.UsageRecord
	refused  [][]koogallery.UsageRecord
}

func (f *fakeMarketplace) PushUsage(_ context.Context, records []koogallery.UsageRecord) error {
	if len(records) == 0 || len(records) > koogallery.MaxUsageRecords {
		return fmt.Errorf("a push carries 1 to 1000 records, not %d", len(records))
	}
	at, err := koogallery.ParseUsageTime(records[0].RecordTime)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.outages {
		if !at.Before(o.from) && at.Before(o.to) {
			f.refused = append(f.refused, records)
			if o.code == koogallery.OpenAPIInvalidBodySign {
				return &koogallery.OpenAPIError{HTTPStatus: 400, Code: o.code, Message: "body signature check failed"}
			}
			return &koogallery.OpenAPIError{HTTPStatus: 500, Code: "MKT.0999", Message: "other internal error"}
		}
	}
	f.accepted = append(f.accepted, records)
	return nil
}

func (f *fakeMarketplace) pushes() (accepted, refused [][]koogallery.UsageRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]koogallery.UsageRecord(nil), f.accepted...), append([][]koogallery.UsageRecord(nil), f.refused...)
}

// alerts records the Alert activity's calls.
type alerts struct {
	mu   sync.Mutex
	list []activities.AlertInput
}

func (a *alerts) Alert(_ context.Context, in activities.AlertInput) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, in)
	return nil
}

func (a *alerts) ofKind(kind string) []activities.AlertInput {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []activities.AlertInput
	for _, in := range a.list {
		if in.Kind == kind {
			out = append(out, in)
		}
	}
	return out
}

// meteringRig is one metered instance: its database, the fake marketplace
// and what the instance workflow was told.
type meteringRig struct {
	db     *store.DB
	period time.Duration
	// byItself: the metering closes and pushes its own periods, as the
	// runs that began before the usage collector do until they hand over
	// (collector_test.go tests the collector).
	byItself    bool
	marketplace *fakeMarketplace
	alerts      *alerts
	acts        *activities.Activities

	mu       sync.Mutex
	internal []workflows.Internal // signals to the instance workflow
}

func newMeteringRig(t *testing.T, outages ...outage) *meteringRig {
	t.Helper()
	db := testenv.NewStore(t)
	rec, err := db.Callbacks.RecordNewInstance(t.Context(), ppu, store.NewCallback{
		DedupKey: "newInstance:O-ppu:L-ppu", Activity: "newInstance", OrderID: "O-ppu", OrderLineID: "L-ppu",
		Body: []byte(`{"activity":"newInstance"}`),
	})
	require.NoError(t, err)
	_, err = db.Instances.SaveInstance(t.Context(), store.Instance{
		InstanceID: ppu, OrderID: rec.Key.OrderID, OrderLineID: rec.Key.OrderLineID, State: "active",
		ChargingMode: "ON_DEMAND", CustomerID: "cust-1", SkuCode: "sku-sms", Revision: 1,
	}, nil)
	require.NoError(t, err)
	m := &fakeMarketplace{outages: outages}
	return &meteringRig{db: db, period: time.Hour, byItself: true, marketplace: m, alerts: &alerts{}, acts: &activities.Activities{Store: db, Usage: m}}
}

// report stores usage as POST /v1/usage would.
func (r *meteringRig) report(t *testing.T, key, quantity string, at time.Time) {
	t.Helper()
	_, refused, err := r.db.Metering.InsertUsage(context.Background(), []store.Usage{
		{IdempotencyKey: key, InstanceID: ppu, Meter: "sms", Quantity: quantity, OccurredAt: at},
	}, koogallery.MaxUsageValue)
	require.NoError(t, err)
	require.Empty(t, refused)
}

// scheduled is something that happens at a moment of the skipped clock.
type scheduled struct {
	at time.Time
	do func(env *testsuite.TestWorkflowEnvironment)
}

// run runs the metering from meteringStart until it ends, following its
// continue-as-new runs, each in a fresh test environment that starts where
// the previous run stopped.
func (r *meteringRig) run(t *testing.T, events ...scheduled) {
	t.Helper()
	in := workflows.MeteringInput{InstanceID: ppu, Period: r.period, PushDelay: 5 * time.Minute, From: meteringStart}
	start := meteringStart
	done := make([]bool, len(events))
	for runs := 1; ; runs++ {
		require.Less(t, runs, 100, "the metering does not end")
		env := r.newEnv(t, start)
		for i, e := range events {
			if done[i] || e.at.Before(start) {
				continue
			}
			env.RegisterDelayedCallback(func() { done[i] = true; e.do(env) }, e.at.Sub(start))
		}
		env.ExecuteWorkflow(workflows.MeteringWorkflowName, in)
		require.True(t, env.IsWorkflowCompleted())
		err := env.GetWorkflowError()
		var next *workflow.ContinueAsNewError
		if !errors.As(err, &next) {
			require.NoError(t, err)
			for i := range events {
				require.True(t, done[i], "event %d at %s did not happen", i, events[i].at)
			}
			return
		}
		require.Equal(t, workflows.MeteringWorkflowName, next.WorkflowType.Name)
		in = workflows.MeteringInput{}
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(next.Input, &in))
		require.NotNil(t, in.Carried, "a new run carries the state")
		start = env.Now()
	}
}

func (r *meteringRig) newEnv(t *testing.T, start time.Time) *testsuite.TestWorkflowEnvironment {
	return r.envFor(t, start, workflows.MeteringWorkflowID(ppu))
}

// envFor is a test environment starting at start, running the workflow
// with ID id, with the metering workflows, the usage collector and their
// activities registered. The instance workflows are not in it: what they
// are told is recorded in r.internal.
func (r *meteringRig) envFor(t *testing.T, start time.Time, id string) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	out := io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(2 * time.Minute)
	env.SetStartTime(start)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id})
	env.RegisterWorkflowWithOptions(workflows.MeteringWorkflow, workflow.RegisterOptions{Name: workflows.MeteringWorkflowName})
	env.RegisterWorkflowWithOptions(workflows.UsageCollectorWorkflow, workflow.RegisterOptions{Name: workflows.UsageCollectorWorkflowName})
	if r.byItself {
		workflows.MeterByItself(env)
	}
	for name, fn := range map[string]any{
		"CloseUsagePeriods": r.acts.CloseUsagePeriods, "PushUsage": r.acts.PushUsage,
		"ExcludeFrozenUsage": r.acts.ExcludeFrozenUsage, "Alert": r.alerts.Alert,
		"CollectUsage": r.acts.CollectUsage, "RegisterMetering": r.acts.RegisterMetering,
		"PauseMetering": r.acts.PauseMetering, "ResumeMetering": r.acts.ResumeMetering, "StopMetering": r.acts.StopMetering,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", workflows.InternalSignal, mock.Anything).
		Return(func(_, _, _, _ string, arg any) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.internal = append(r.internal, arg.(workflows.Internal))
			return nil
		})
	return env
}

// stop is the instance's release at the given time.
func stop(at time.Time) scheduled {
	return scheduled{at: at, do: func(env *testsuite.TestWorkflowEnvironment) {
		env.SignalWorkflow(workflows.MeteringSignal, workflows.MeteringControl{Kind: workflows.MeterStop, At: at})
	}}
}

// sum adds decimal usage values exactly, in the shortest form.
func sum(t *testing.T, values ...string) string {
	t.Helper()
	var units int64
	for _, v := range values {
		if strings.Trim(v, "0.") == "" {
			continue // zero, which is not a valid usage value
		}
		u, err := koogallery.ParseUsageValue(v)
		require.NoError(t, err)
		n, err := u.Units()
		require.NoError(t, err)
		units += n
	}
	return koogallery.UsageValueFromUnits(units).String()
}

// hourlyQuantity is a varied, exact amount for hour h.
func hourlyQuantity(h int) string { return fmt.Sprintf("%d.%04d", h%7+1, h*37%10000) }

// Thirty days of hourly usage; the usage endpoint is down for 6 hours in
// the middle. Every hour reaches the marketplace exactly once, in order,
// each in the first minutes of the next hour except those the outage held
// back, which are caught up as soon as it ends.
func TestMeteringThirtyDaysWithAnOutage(t *testing.T) {
	down := outage{from: time.Date(2026, 3, 16, 10, 0, 0, 0, time.UTC), to: time.Date(2026, 3, 16, 16, 0, 0, 0, time.UTC)}
	r := newMeteringRig(t, down)
	end := meteringStart.Add(30*24*time.Hour + 30*time.Minute) // released mid-hour
	var reported []string
	firstHour := meteringStart.Truncate(time.Hour)
	for h := 0; firstHour.Add(time.Duration(h) * time.Hour).Before(end); h++ {
		at := firstHour.Add(time.Duration(h)*time.Hour + 25*time.Minute)
		if at.Before(meteringStart) || !at.Before(end) {
			continue
		}
		r.report(t, fmt.Sprintf("h%d", h), hourlyQuantity(h), at)
		reported = append(reported, hourlyQuantity(h))
	}
	// Usage the application reports late (after its hour was closed) is
	// billed in the next period to close, not lost.
	late := time.Date(2026, 3, 5, 12, 10, 0, 0, time.UTC)
	reported = append(reported, "0.5")

	r.run(t,
		scheduled{at: late, do: func(*testsuite.TestWorkflowEnvironment) { r.report(t, "late", "0.5", late.Add(-2*time.Hour)) }},
		stop(end),
	)

	accepted, refused := r.marketplace.pushes()
	var pushed []koogallery.UsageRecord
	for _, batch := range accepted {
		pushed = append(pushed, batch...)
	}
	// One record per period, contiguous from the start to the release.
	require.Len(t, pushed, 30*24+1)
	sns := map[string]bool{}
	var values []string
	for i, rec := range pushed {
		require.False(t, sns[rec.MeteringSN], "metering_sn %s pushed twice", rec.MeteringSN)
		sns[rec.MeteringSN] = true
		begin, end := usageTime(t, rec.BeginTime), usageTime(t, rec.EndTime)
		require.Equal(t, activities.MeteringSN(ppu, begin), rec.MeteringSN)
		if i == 0 {
			require.Equal(t, meteringStart, begin)
		} else {
			require.Equal(t, usageTime(t, pushed[i-1].EndTime), begin, "record %d: in order, without gap", i)
		}
		require.Equal(t, ppu, rec.InstanceID)
		require.Empty(t, rec.RelatePkgInstance)
		values = append(values, rec.UsageValue.String())
		pushedAt := usageTime(t, rec.RecordTime)
		switch {
		case i == len(pushed)-1:
			require.Equal(t, end, pushedAt, "the partial last hour is pushed at the release")
		case end.Before(down.from) || !end.Before(down.to):
			require.Equal(t, end.Add(5*time.Minute), pushedAt, "record %d is pushed 5 minutes after its period", i)
		default:
			require.True(t, pushedAt.After(down.to) && pushedAt.Before(down.to.Add(20*time.Minute)),
				"record %d was held back by the outage and is caught up at %s", i, pushedAt)
		}
	}
	require.Equal(t, end, usageTime(t, pushed[len(pushed)-1].EndTime), "the partial last hour is flushed")
	require.Equal(t, sum(t, reported...), sum(t, values...), "every unit reported is billed once")
	require.NotEmpty(t, refused)
	for _, batch := range refused {
		for _, rec := range batch {
			require.True(t, sns[rec.MeteringSN], "a refused period is pushed later")
		}
	}
	require.Len(t, r.alerts.ofKind("usage_push_failing"), 1, "operators hear of the outage once")
	require.Empty(t, r.alerts.ofKind("usage_expired"))

	summary, err := r.db.Metering.UsageSummaryOf(t.Context(), ppu)
	require.NoError(t, err)
	require.Zero(t, summary.Pending)
	require.Zero(t, summary.Expired)
	require.Equal(t, summary.Reported, summary.Pushed)
	require.Equal(t, []workflows.Internal{{Kind: workflows.InternalMeteringFlushed}}, r.internal)
}

// The usage endpoint is down for 23 days: the periods that became older
// than the marketplace accepts (21 days) are marked expired and reported,
// never dropped silently; the rest are caught up when it comes back. The
// product is billed daily, which keeps the outage's retries few.
func TestMeteringReportsPeriodsTooOldToPush(t *testing.T) {
	down := outage{from: meteringStart.Add(24 * time.Hour), to: meteringStart.Add(24 * 24 * time.Hour)}
	r := newMeteringRig(t, down)
	r.period = 24 * time.Hour
	end := meteringStart.Add(25 * 24 * time.Hour)
	firstHour := meteringStart.Truncate(time.Hour).Add(time.Hour)
	for h := 0; firstHour.Add(time.Duration(h) * time.Hour).Before(end); h++ {
		r.report(t, fmt.Sprintf("h%d", h), "1", firstHour.Add(time.Duration(h)*time.Hour+10*time.Minute))
	}

	r.run(t, stop(end))

	periods, err := r.db.Metering.UsagePeriodsOf(t.Context(), ppu, meteringStart, end, 10000)
	require.NoError(t, err)
	accepted, _ := r.marketplace.pushes()
	pushedSN := map[string]bool{}
	for _, batch := range accepted {
		for _, rec := range batch {
			pushedSN[rec.MeteringSN] = true
		}
	}
	var expired, pushed, empty int
	for _, p := range periods {
		switch p.State {
		case store.PeriodEmpty:
			empty++
			require.Equal(t, meteringStart, p.PeriodStart, "only the first period had no usage")
		case store.PeriodExpired:
			expired++
			require.False(t, pushedSN[p.MeteringSN], "an expired period is never pushed")
			require.True(t, p.PeriodStart.Before(down.to.Add(-20*24*time.Hour)), "only periods over 21 days old expire: %s", p.PeriodStart)
		case store.PeriodPushed:
			pushed++
			require.True(t, pushedSN[p.MeteringSN])
		default:
			require.Failf(t, "period neither pushed nor expired", "%+v", p)
		}
	}
	require.Equal(t, len(periods), expired+pushed+empty, "every period is accounted for")
	// The first day was pushed before the outage. The retries come every 6
	// hours (a quarter period); the first after the outage, at 06:05 on
	// 25 March, finds the days that began before 4 March 07:05 (21 days
	// less an hour of margin) too old: 2, 3 and 4 March. The other 21
	// days, and the partial day of the release, are caught up.
	require.Equal(t, 3, expired)
	require.Equal(t, 1+21+1, pushed)
	alerts := r.alerts.ofKind("usage_expired")
	// One day expires on each of 23, 24 and 25 March: one alert each.
	require.Len(t, alerts, 3, "%v", alerts)
	for i, a := range alerts {
		require.Contains(t, a.Message, fmt.Sprintf("1 usage period(s) of instance ppu-1 could not be pushed within the marketplace's 21 days and will not be billed (%d in all)", i+1))
	}

	summary, err := r.db.Metering.UsageSummaryOf(t.Context(), ppu)
	require.NoError(t, err)
	require.Equal(t, expired, summary.Expired)
	require.Zero(t, summary.Pending)
	require.Equal(t, sum(t, summary.Reported), sum(t, summary.Pushed, summary.Unbilled))
}

// TestMeteringHoldsAPeriodTooLargeToPush: a period whose usage no record
// can carry (stored before the intake refused such usage) is held with its
// reason and an alert; the periods after it are pushed as usual.
func TestMeteringHoldsAPeriodTooLargeToPush(t *testing.T) {
	r := newMeteringRig(t)
	firstHour := meteringStart.Truncate(time.Hour).Add(time.Hour)
	_, err := r.db.Pool().ExecContext(t.Context(), `INSERT INTO usage_records (idempotency_key, instance_id, meter, quantity, occurred_at)
		VALUES ('big-1', $1, 'sms', 900000000000000, $2), ('big-2', $1, 'sms', 900000000000000, $2)`, ppu, firstHour.Add(10*time.Minute))
	require.NoError(t, err)
	// The intake refuses more for this instance until that usage is
	// metered; stored behind it too.
	for h := 1; h < 4; h++ {
		_, err := r.db.Pool().ExecContext(t.Context(), `INSERT INTO usage_records (idempotency_key, instance_id, meter, quantity, occurred_at)
			VALUES ($1, $2, 'sms', 2.5, $3)`, fmt.Sprintf("small-%d", h), ppu, firstHour.Add(time.Duration(h)*time.Hour+10*time.Minute))
		require.NoError(t, err)
	}
	end := firstHour.Add(5 * time.Hour)

	r.run(t, stop(end))

	periods, err := r.db.Metering.UsagePeriodsOf(t.Context(), ppu, firstHour, end, 100)
	require.NoError(t, err)
	require.Equal(t, store.PeriodHeld, periods[0].State)
	require.Equal(t, "1800000000000000.0000", periods[0].Quantity)
	require.Contains(t, periods[0].LastError, "cannot be pushed as one record")
	for _, p := range periods[1:4] {
		require.Equal(t, store.PeriodPushed, p.State, "%s is pushed although an earlier period is held", p.PeriodStart)
	}
	alerts := r.alerts.ofKind("usage_period_held")
	require.Len(t, alerts, 1)
	require.Contains(t, alerts[0].Message, "split it or write it off")
	summary, err := r.db.Metering.UsageSummaryOf(t.Context(), ppu)
	require.NoError(t, err)
	require.Equal(t, 1, summary.Held)
}

// A package that stops when used up: the period that consumes the last of
// the quota tells the instance workflow to stop the service.
func TestMeteringReportsAPackageUsedUp(t *testing.T) {
	r := newMeteringRig(t)
	_, err := r.db.Metering.RegisterPackage(t.Context(), store.UsagePackage{PackageInstanceID: "pkg-1", CustomerID: "cust-1", SkuCode: "sku-sms", Quota: "10"})
	require.NoError(t, err)
	firstHour := meteringStart.Truncate(time.Hour).Add(time.Hour)
	for h := range 6 {
		r.report(t, fmt.Sprintf("h%d", h), "3", firstHour.Add(time.Duration(h)*time.Hour+10*time.Minute))
	}

	r.run(t, stop(firstHour.Add(2*time.Hour+30*time.Minute)))

	accepted, _ := r.marketplace.pushes()
	var pushed []koogallery.UsageRecord
	for _, batch := range accepted {
		pushed = append(pushed, batch...)
	}
	require.Len(t, pushed, 3)
	for _, rec := range pushed {
		require.Equal(t, "pkg-1", rec.RelatePkgInstance, "contract §6.2: required for stop-before-excess packages")
	}
	require.Equal(t, "3", pushed[0].UsageValue.String(), "the shortest form (contract §11.3)")
	require.Equal(t, "3", pushed[1].UsageValue.String())
	require.Equal(t, "3", pushed[2].UsageValue.String())
	// 9 of 10 used: the fourth period (3 more) takes the last unit.
	require.Equal(t, []workflows.Internal{{Kind: workflows.InternalMeteringFlushed}}, r.internal)

	r2 := newMeteringRig(t)
	_, err = r2.db.Metering.RegisterPackage(t.Context(), store.UsagePackage{PackageInstanceID: "pkg-1", CustomerID: "cust-1", SkuCode: "sku-sms", Quota: "10"})
	require.NoError(t, err)
	for h := range 6 {
		r2.report(t, fmt.Sprintf("h%d", h), "3", firstHour.Add(time.Duration(h)*time.Hour+10*time.Minute))
	}
	r2.run(t, stop(firstHour.Add(4*time.Hour+30*time.Minute)))
	accepted, _ = r2.marketplace.pushes()
	pushed = nil
	for _, batch := range accepted {
		pushed = append(pushed, batch...)
	}
	require.Len(t, pushed, 4, "the fourth period is billed up to the quota, the rest is not")
	require.Equal(t, "1", pushed[3].UsageValue.String())
	require.Equal(t, workflows.Internal{Kind: workflows.InternalQuotaExhausted, Package: "pkg-1"}, r2.internal[0])
}

// A freeze and an unfreeze within one second of an hour's start: periods
// start on whole seconds, so no two share a start (and a metering_sn), and
// the metering goes on.
func TestMeteringFreezeAndUnfreezeWithinASecond(t *testing.T) {
	r := newMeteringRig(t)
	hour := meteringStart.Truncate(time.Hour).Add(2 * time.Hour)
	for h := range 4 {
		r.report(t, fmt.Sprintf("h%d", h), "1", hour.Add(time.Duration(h-1)*time.Hour+10*time.Minute))
	}
	control := func(kind string, at time.Time) scheduled {
		return scheduled{at: at, do: func(env *testsuite.TestWorkflowEnvironment) {
			env.SignalWorkflow(workflows.MeteringSignal, workflows.MeteringControl{Kind: kind, At: at})
		}}
	}

	r.run(t,
		control(workflows.MeterPause, hour.Add(300*time.Millisecond)),
		control(workflows.MeterResume, hour.Add(800*time.Millisecond)),
		stop(hour.Add(3*time.Hour)),
	)

	accepted, _ := r.marketplace.pushes()
	var begins []string
	for _, batch := range accepted {
		for _, rec := range batch {
			begins = append(begins, rec.BeginTime+"-"+rec.EndTime)
		}
	}
	require.Equal(t, []string{
		"20260301T010000Z-20260301T020000Z", // the 01:10 usage (00:20–01:00 had none)
		// [02:00:00, 02:00:01) had no usage; the frozen fraction of a second
		// is rounded up to a whole one.
		"20260301T020001Z-20260301T030000Z",
		"20260301T030000Z-20260301T040000Z",
		"20260301T040000Z-20260301T050000Z",
	}, begins)
	periods, err := r.db.Metering.UsagePeriodsOf(t.Context(), ppu, hour, hour.Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, periods, 1)
	require.Equal(t, store.PeriodEmpty, periods[0].State)
	require.Equal(t, hour.Add(time.Second), periods[0].PeriodEnd.UTC(), "closed at the freeze, rounded up")
}

func usageTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := koogallery.ParseUsageTime(s)
	require.NoError(t, err)
	return at
}

// The marketplace refuses the pushes' body signature (MKT.0102) for six
// hours: operators are told at once, and once, what to check; the periods
// are pushed once the signature is accepted again.
func TestMeteringAlertsARefusedBodySignatureAtOnce(t *testing.T) {
	down := outage{from: meteringStart.Add(2 * time.Hour), to: meteringStart.Add(8 * time.Hour), code: koogallery.OpenAPIInvalidBodySign}
	r := newMeteringRig(t, down)
	end := meteringStart.Add(24 * time.Hour)
	firstHour := meteringStart.Truncate(time.Hour).Add(time.Hour)
	for h := 0; firstHour.Add(time.Duration(h) * time.Hour).Before(end); h++ {
		r.report(t, fmt.Sprintf("h%d", h), "1", firstHour.Add(time.Duration(h)*time.Hour+10*time.Minute))
	}

	r.run(t, stop(end))

	refusedSig := r.alerts.ofKind("usage_push_signature_refused")
	require.Len(t, refusedSig, 1, "told once, at the first refusal")
	require.Contains(t, refusedSig[0].Message, "MKT.0102")
	require.Contains(t, refusedSig[0].Message, "KOOGALLERY_ACCESS_KEY")
	_, refused := r.marketplace.pushes()
	require.NotEmpty(t, refused)
	summary, err := r.db.Metering.UsageSummaryOf(t.Context(), ppu)
	require.NoError(t, err)
	require.Zero(t, summary.Expired, "the refused periods were pushed later")
}
