package workflows

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// payPerUseApp is a fake application selling a pay-per-use product metered
// hourly, closed 5 minutes after each hour.
func payPerUseApp() (*fakeApp, InstanceInput) {
	app := newFakeApp()
	app.policy.MeteringPeriod = time.Hour
	app.policy.MeteringPushDelay = 5 * time.Minute
	return app, app.withOrder(order("PPU", "ON_DEMAND", "NEW", "", 0, nil))
}

// requireContiguous checks that the closed periods tile [from, to) without
// gap or overlap, each within one clock hour.
func requireContiguous(t *testing.T, spans []closedSpan, from, to time.Time) {
	t.Helper()
	require.NotEmpty(t, spans)
	require.Equal(t, from, spans[0].Start, "the first period starts when the metering starts")
	for i, s := range spans {
		require.True(t, s.Start.Before(s.End), "period %d is empty: %v", i, s)
		require.Equal(t, s.Start.Truncate(time.Hour), s.End.Add(-time.Nanosecond).Truncate(time.Hour), "period %d crosses an hour: %v", i, s)
		if i > 0 {
			require.Equal(t, spans[i-1].End, s.Start, "period %d does not follow the previous one", i)
		}
	}
	require.Equal(t, to, spans[len(spans)-1].End)
}

// A release in the middle of an hour: the partial hour is closed and pushed
// before the tenant is released, so the last usage is billed.
func TestPayPerUseFlushesThePartialHourBeforeRelease(t *testing.T) {
	app, in := payPerUseApp()
	env := newEnv(t, app)
	releaseAt := t0.Add(2*day + 10*time.Hour + 40*time.Minute)
	signalAt(env, since(releaseAt), releaseCB(2))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	spans := app.closedSpans()
	requireContiguous(t, spans, t0, releaseAt)
	require.Equal(t, Span{Start: releaseAt.Truncate(time.Hour), End: releaseAt}, spans[len(spans)-1].Span, "the partial hour")
	require.Len(t, spans, 2*24+10+1)
	calls := app.Calls()
	release := slices.Index(calls, "Release")
	require.Positive(t, release)
	require.Equal(t, []string{"CloseUsagePeriods 1", "PushUsage", "Release"}, calls[release-2:release+1],
		"the partial hour is closed and pushed before the tenant is released")
	require.Equal(t, []string{"FetchOrder PPU", "Provision", "Release"}, app.tenantCalls())
	require.Len(t, eventsOfKind(app, "metering"), 1, "metering started, once")
}

// A frozen instance (arrears) is not metered: the partial hour before the
// FREEZE is closed, the frozen stretch is excluded from billing, and the
// metering resumes at the UNFREEZE.
func TestPayPerUseArrearsPausesMetering(t *testing.T) {
	app, in := payPerUseApp()
	env := newEnv(t, app)
	frozenAt := t0.Add(day + 2*time.Hour + 30*time.Minute)
	unfrozenAt := t0.Add(2*day + time.Hour + 15*time.Minute)
	releaseAt := t0.Add(3 * day)
	signalAt(env, since(frozenAt), statusCB(2, "FREEZE", 1))
	signalAt(env, since(unfrozenAt), statusCB(3, "UNFREEZE", 2))
	signalAt(env, since(releaseAt), releaseCB(4))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	spans := app.closedSpans()
	frozen := slices.IndexFunc(spans, func(s closedSpan) bool { return s.End.Equal(frozenAt) })
	require.Positive(t, frozen, "the partial hour before the freeze is closed at once")
	requireContiguous(t, spans[:frozen+1], t0, frozenAt)
	requireContiguous(t, spans[frozen+1:], unfrozenAt, releaseAt)
	for _, s := range spans {
		require.True(t, s.Billable)
	}
	require.Equal(t, []Span{{Start: frozenAt, End: unfrozenAt}}, app.excluded, "usage while frozen is not billed")
	require.Equal(t, []string{"FetchOrder PPU", "Provision", "Freeze", "Unfreeze", "Release"}, app.tenantCalls())
}

// A package that stops when used up (用完即停): once the closing of a period
// uses up the customer's last quota, the instance is frozen with the reason,
// metering pauses, and a new package brings it back.
func TestPackageUsedUpStopsTheInstance(t *testing.T) {
	app, in := payPerUseApp()
	usedUp := t0.Add(day + 30*time.Minute)
	app.setQuotaUsedUpAt(&usedUp)
	env := newEnv(t, app)
	stopped := stateAt(t, env, day+2*time.Hour)
	newPackageAt := t0.Add(3*day + 20*time.Minute)
	env.RegisterDelayedCallback(func() {
		app.setQuotaUsedUpAt(nil)
		env.SignalWorkflow(InternalSignal, Internal{Kind: InternalQuotaRestored, Package: "pkg-2"})
	}, since(newPackageAt))
	resumed := stateAt(t, env, 3*day+time.Hour)
	// A package covering a running instance changes nothing.
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(InternalSignal, Internal{Kind: InternalQuotaRestored, Package: "pkg-3"})
	}, 4*day)
	signalAt(env, 5*day, releaseCB(2))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, StateFrozen, stopped.State)
	require.Equal(t, FrozenByQuota, stopped.FrozenBy)
	require.Contains(t, stopped.Reason, "Package pkg-1 is used up")
	require.Equal(t, StateActive, resumed.State)
	require.Equal(t, []string{"FetchOrder PPU", "Provision", "Freeze", "Unfreeze", "Release"}, app.tenantCalls())
	spans := app.closedSpans()
	// The period that used the quota up ended at 09:00 on day 2 and was
	// closed at 09:05: the instance stopped then.
	stoppedAt := t0.Add(day + time.Hour + 5*time.Minute)
	last := slices.IndexFunc(spans, func(s closedSpan) bool { return s.End.Equal(stoppedAt) })
	require.Positive(t, last, "the stop closes the partial period: %v", spans)
	requireContiguous(t, spans[:last+1], t0, stoppedAt)
	requireContiguous(t, spans[last+1:], newPackageAt, t0.Add(5*day))
	require.Equal(t, []Span{{Start: stoppedAt, End: newPackageAt}}, app.excluded)
}

// A marketplace freeze (arrears) of an instance stopped for quota: the
// marketplace's UNFREEZE does not restart a tenant that has no quota.
func TestQuotaRestoredDoesNotUnfreezeAnArrearsFreeze(t *testing.T) {
	app, in := payPerUseApp()
	env := newEnv(t, app)
	signalAt(env, day, statusCB(2, "FREEZE", 1))
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(InternalSignal, Internal{Kind: InternalQuotaRestored, Package: "pkg-2"})
	}, 2*day)
	stillFrozen := stateAt(t, env, 2*day+time.Hour)
	signalAt(env, 3*day, releaseCB(3))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.Equal(t, StateFrozen, stillFrozen.State)
	require.Equal(t, FrozenByMarketplace, stillFrozen.FrozenBy)
	require.Equal(t, []string{"FetchOrder PPU", "Provision", "Freeze", "Release"}, app.tenantCalls())
}

// The operator's retry-push reaches the metering.
func TestRetryPushSignal(t *testing.T) {
	app, in := payPerUseApp()
	env := newEnv(t, app)
	operator(env, 90*time.Minute+time.Second, OperatorRequest{ID: "op-1", Name: OpRetryPush, Reason: "endpoint fixed"})
	signalAt(env, 2*time.Hour, releaseCB(2))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	calls := app.Calls()
	// At 09:05 the first hour is closed and pushed; at 09:30 the operator's
	// push; at 10:00 the release's flush.
	require.Equal(t, 3, countOf(calls, "PushUsage"), "%v", calls)
	require.Len(t, eventsOfKind(app, "operator"), 1)
}

func countOf(list []string, v string) int {
	n := 0
	for _, s := range list {
		if s == v {
			n++
		}
	}
	return n
}
