package workflows

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// Year-long lives, one per billing mode, with the timing rules of contract §5:
// time skips, so a year of timers runs in milliseconds.

const (
	day   = 24 * time.Hour
	grace = 24 * time.Hour  // defaultPolicy.FreezeGrace
	keep  = 360 * time.Hour // defaultPolicy.Retention
)

func order(id, mode, orderType, periodType string, periods int, expire *time.Time) Order {
	ten := int64(10)
	return Order{OrderID: id, OrderLineID: id + "-000001", OrderType: orderType, ChargingMode: mode,
		SkuCode: "sku-" + id, ProductID: "prod-" + id, LinearValue: &ten, PeriodType: periodType, PeriodNumber: periods,
		ExpireTime: expire}
}

func renewal(seq int64, orderID, scene string, expire time.Time) Callback {
	return Callback{Key: fmt.Sprintf("refreshInstance:inst-1:%s:%s-000001", orderID, orderID), Seq: seq,
		Activity: ActivityRefreshInstance, OrderID: orderID, OrderLineID: orderID + "-000001", Scene: scene, ExpireTime: expire}
}

func TestMonthlySubscriptionRenewedTwelveTimes(t *testing.T) {
	app := newFakeApp()
	exp := time.Date(2026, 2, 10, 15, 59, 59, 0, time.UTC)
	in := app.withOrder(order("MONTHLY", "PERIOD", "NEW", "month", 1, &exp))
	env := newEnv(t, app)
	var afterRenewals []*Snapshot
	for i := range 12 {
		// Each month the buyer renews five days before the expiry.
		renewAt := exp.AddDate(0, i, 0).Add(-5 * day)
		next := exp.AddDate(0, i+1, 0)
		signalAt(env, since(renewAt), renewal(int64(i+2), fmt.Sprintf("RENEW-%02d", i+1), "RENEWAL", next))
		afterRenewals = append(afterRenewals, stateAt(t, env, since(renewAt)+time.Minute))
	}
	final := exp.AddDate(0, 12, 0) // 2027-02-10
	inGrace := stateAt(t, env, since(final)+time.Hour)
	signalAt(env, since(final)+2*time.Hour, statusCB(20, "FREEZE", 1))
	frozen := stateAt(t, env, since(final)+3*time.Hour)
	signalAt(env, since(final)+14*day, releaseCB(21))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	for i, s := range afterRenewals {
		next := exp.AddDate(0, i+1, 0)
		require.Equal(t, StateActive, s.State, "renewal %d", i+1)
		require.Equal(t, next, *s.ExpireTime, "renewal %d", i+1)
		requireDeadline(t, s, DeadlineExpiry, next)
		requireDeadline(t, s, DeadlineSelfFreeze, next.Add(grace))
	}
	require.Equal(t, StateGrace, inGrace.State)
	requireDeadline(t, inGrace, DeadlineSelfFreeze, final.Add(grace))
	require.Equal(t, StateFrozen, frozen.State)
	require.Equal(t, FrozenByMarketplace, frozen.FrozenBy)
	requireDeadline(t, frozen, DeadlineRetentionEnd, final.Add(keep))
	require.Equal(t, []string{"FetchOrder MONTHLY", "Provision", "Freeze", "Release"}, app.Calls(),
		"renewed on time, the tenant was never frozen by the server")
	require.Empty(t, eventsOfKind(app, "expired")[1:], "only the last expiry was reached")
	require.Len(t, eventsOfKind(app, "expiry"), 12)
	require.Empty(t, app.Alerts())
}

func TestPackageExpiryWithMarketplaceFreezeThenRelease(t *testing.T) {
	app := newFakeApp()
	in := app.withOrder(order("PKG", "ON_DEMAND_PKG", "NEW", "year", 1, &firstYear))
	env := newEnv(t, app)
	before := stateAt(t, env, since(firstYear)-time.Hour)
	inGrace := stateAt(t, env, since(firstYear)+30*time.Minute)
	signalAt(env, since(firstYear)+time.Hour, statusCB(2, "FREEZE", 1))
	frozen := stateAt(t, env, since(firstYear)+2*time.Hour)
	signalAt(env, since(firstYear)+15*day, releaseCB(3))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, StateActive, before.State)
	require.Equal(t, StateGrace, inGrace.State, "the tenant stays usable in the grace period")
	requireDeadline(t, inGrace, DeadlineSelfFreeze, firstYear.Add(grace))
	require.Equal(t, StateFrozen, frozen.State)
	require.Equal(t, "Frozen by the marketplace (FREEZE).", frozen.Reason)
	require.Equal(t, []Deadline{{Kind: DeadlineRetentionEnd, At: firstYear.Add(keep), Why: retentionWhy(ReleasePolicyHold)}}, frozen.Deadlines)
	require.Equal(t, []string{"FetchOrder PKG", "Provision", "RegisterPackage inst-1", "Freeze", "Release", "DeactivatePackage inst-1"}, app.Calls(),
		"a package's quota is registered once provisioned and deactivated on release")
	require.Equal(t, string(StateReleased), lastSave(t, app).State)
}

// A one-time purchase with a validity: the marketplace sends no FREEZE for
// one-time products, so the server freezes at the end of the grace, then
// holds the data when no release comes.
func TestOneTimeOrderSelfFreezesWhenNoFreezeComes(t *testing.T) {
	app := newFakeApp()
	in := app.withOrder(order("ONCE", "ONE_TIME", "NEW", "", 0, &firstYear))
	env := newEnv(t, app)
	inGrace := stateAt(t, env, since(firstYear)+23*time.Hour)
	selfFrozen := stateAt(t, env, since(firstYear)+grace+time.Minute)
	overdue := stateAt(t, env, since(firstYear)+keep+time.Minute)
	stillHeld := stateAt(t, env, since(firstYear)+200*day)
	signalAt(env, since(firstYear)+400*day, releaseCB(2))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, StateGrace, inGrace.State)
	require.Equal(t, StateFrozen, selfFrozen.State)
	require.Equal(t, FrozenByExpiry, selfFrozen.FrozenBy)
	require.Equal(t, "Expired at 2027-01-10T15:59:59Z; no FREEZE from the marketplace and no renewal by the end of the freeze grace (2027-01-11T15:59:59Z): frozen by the server.",
		selfFrozen.Reason)
	requireDeadline(t, selfFrozen, DeadlineRetentionEnd, firstYear.Add(keep))

	require.Equal(t, StateReleaseOverdue, overdue.State)
	require.Contains(t, overdue.Reason, "held (policy hold)")
	require.Empty(t, overdue.Deadlines, "held until someone acts")
	require.Equal(t, StateReleaseOverdue, stillHeld.State, "the data is never deleted without a release")
	require.Equal(t, []string{"FetchOrder ONCE", "Provision", "Freeze", "Release"}, app.Calls())
	require.Len(t, app.Alerts(), 1)
	require.Equal(t, "release_overdue", app.Alerts()[0].Kind)
}

// TestPerpetualExpiry: an expiry of 9999-12-31 (a perpetual purchase) is
// kept and shown as sent; its grace and retention would end in the year
// 10000, which no timestamp can hold, so they are simply never due, and
// every save of the read model goes through (a FREEZE and an UNFREEZE
// show).
func TestPerpetualExpiry(t *testing.T) {
	app := newFakeApp()
	forever := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	in := app.withOrder(order("FOREVER", "ONE_TIME", "NEW", "", 0, &forever))
	env := newEnv(t, app)
	active := stateAt(t, env, time.Hour)
	signalAt(env, 2*day, statusCB(2, "FREEZE", 1))
	frozen := stateAt(t, env, 3*day)
	signalAt(env, 4*day, statusCB(3, "UNFREEZE", 2))
	unfrozen := stateAt(t, env, 5*day)
	signalAt(env, 400*day, releaseCB(4))
	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, StateActive, active.State)
	require.Equal(t, forever, *active.ExpireTime)
	require.Equal(t, []Deadline{{Kind: DeadlineExpiry, At: forever, Why: "the subscription expires; the grace period begins"}}, active.Deadlines,
		"the self-freeze, in the year 10000, is never due")
	require.Equal(t, StateFrozen, frozen.State)
	require.Equal(t, StateActive, unfrozen.State)
	var states []State
	for _, save := range app.Saves() {
		states = append(states, State(save.Snapshot.State))
	}
	require.Subset(t, states, []State{StateActive, StateFrozen, StateReleased}, "every save went through")
	require.Equal(t, []string{"FetchOrder FOREVER", "Provision", "Freeze", "Unfreeze", "Release"}, app.Calls())
}

func TestReleasePolicies(t *testing.T) {
	t.Run("release: the server releases at the end of retention", func(t *testing.T) {
		app := newFakeApp()
		app.policy.ReleasePolicy = ReleasePolicyRelease
		env := newEnv(t, app)
		signalAt(env, since(firstYear)+time.Hour, statusCB(2, "FREEZE", 1))
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.True(t, env.IsWorkflowCompleted())
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Release"}, app.Calls())
		final := lastSave(t, app)
		require.Equal(t, string(StateReleased), final.State)
		require.Equal(t, "Retention ended at 2027-01-25T15:59:59Z without the marketplace's releaseInstance: released by the server (policy release).", final.Reason)
		require.Empty(t, app.Alerts())
	})
	t.Run("an operator switches a held instance to release", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		signalAt(env, since(firstYear)+time.Hour, statusCB(2, "FREEZE", 1))
		overdue := stateAt(t, env, since(firstYear)+keep+time.Hour)
		operator(env, since(firstYear)+keep+2*time.Hour, OperatorRequest{Name: OpSetPolicy, ReleasePolicy: ReleasePolicyRelease, Reason: "buyer confirmed"})
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateReleaseOverdue, overdue.State)
		require.True(t, env.IsWorkflowCompleted())
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Release"}, app.Calls())
		require.Equal(t, ReleasePolicyRelease, lastSave(t, app).Details.Policy.ReleasePolicy)
	})
}

func TestRenewalDuringRetention(t *testing.T) {
	renewed := firstYear.AddDate(1, 0, 0) // the marketplace counts from the old expiry

	t.Run("frozen by the marketplace: the UNFREEZE returns it to active", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		signalAt(env, since(firstYear)+time.Hour, statusCB(2, "FREEZE", 1))
		signalAt(env, since(firstYear)+10*day, renewal(3, "RENEW-LATE", "RENEWAL", renewed))
		waiting := stateAt(t, env, since(firstYear)+10*day+time.Minute)
		signalAt(env, since(firstYear)+10*day+time.Hour, statusCB(4, "UNFREEZE", 2))
		active := stateAt(t, env, since(firstYear)+11*day)
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateFrozen, waiting.State, "frozen until the marketplace's UNFREEZE")
		requireDeadline(t, waiting, DeadlineUnfreezeDue, firstYear.Add(10*day+grace))
		_, retention := deadline(waiting, DeadlineRetentionEnd)
		require.False(t, retention, "renewed: the retention no longer runs")
		require.Equal(t, StateActive, active.State)
		require.Equal(t, renewed, *active.ExpireTime)
		requireDeadline(t, active, DeadlineExpiry, renewed)
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze"}, app.Calls()[:4])
	})
	t.Run("frozen by the marketplace, no UNFREEZE: the server unfreezes", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		signalAt(env, since(firstYear)+time.Hour, statusCB(2, "FREEZE", 1))
		signalAt(env, since(firstYear)+10*day, renewal(3, "RENEW-LATE", "RENEWAL", renewed))
		active := stateAt(t, env, since(firstYear)+10*day+grace+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateActive, active.State)
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze"}, app.Calls()[:4])
		require.Contains(t, eventByKey(t, app, "deadline/unfreeze-due/2027-01-21T15:59:59Z").Message, "no UNFREEZE from the marketplace")
	})
	t.Run("frozen by V1's expireInstance: a V1 renewal unfreezes at once", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		expire := statusCB(2, "FREEZE", 1)
		expire.Key, expire.V1 = "v1:expireInstance:inst-1:1", true
		renew := renewal(3, "RENEW-V1", "RENEWAL", renewed)
		renew.Key, renew.V1 = "v1:refreshInstance:inst-1:RENEW-V1:RENEWAL", true
		signalAt(env, since(firstYear)+time.Hour, expire)
		signalAt(env, since(firstYear)+10*day, renew)
		active := stateAt(t, env, since(firstYear)+10*day+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateActive, active.State, "V1 sends no UNFREEZE")
		require.Nil(t, active.UnfreezeDueAt)
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze"}, app.Calls()[:4])
		require.Contains(t, eventByKey(t, app, "callback/"+renew.Key).Message, "Renewed through V1")
	})
	t.Run("frozen by the server: the renewal unfreezes at once", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		signalAt(env, since(firstYear)+5*day, renewal(2, "RENEW-LATE", "RENEWAL", renewed))
		active := stateAt(t, env, since(firstYear)+5*day+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateActive, active.State)
		require.Equal(t, renewed, *active.ExpireTime)
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze"}, app.Calls()[:4])
		require.Contains(t, eventByKey(t, app, "callback/refreshInstance:inst-1:RENEW-LATE:RENEW-LATE-000001").Message,
			"unfrozen by the server")
	})
	t.Run("an UNFREEZE after expiry is trusted: no self-freeze fight", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		signalAt(env, since(firstYear)+time.Hour, statusCB(2, "FREEZE", 1))
		signalAt(env, since(firstYear)+2*time.Hour, statusCB(3, "UNFREEZE", 2))
		later := stateAt(t, env, since(firstYear)+30*day)
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateGrace, later.State)
		require.Empty(t, later.Deadlines, "the marketplace wants it usable; the server does not freeze it again")
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze"}, app.Calls())
	})
}

func TestTrialToFormal(t *testing.T) {
	app := newFakeApp()
	trialEnd := t0.AddDate(0, 0, 7)
	in := app.withOrder(order("TRIAL", "PERIOD", "TRIAL", "day", 7, &trialEnd))
	env := newEnv(t, app)
	trial := stateAt(t, env, time.Hour)
	formalEnd := trialEnd.AddDate(1, 0, 0)
	signalAt(env, 5*day, renewal(2, "FORMAL", "TRIAL_TO_FORMAL", formalEnd))
	formal := stateAt(t, env, 5*day+time.Minute)
	signalAt(env, since(formalEnd)+time.Hour, statusCB(3, "FREEZE", 1))
	signalAt(env, since(formalEnd)+15*day, releaseCB(4))
	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, StateActive, trial.State)
	requireDeadline(t, trial, DeadlineExpiry, trialEnd)
	require.Equal(t, "TRIAL_TO_FORMAL", formal.Order.OrderType)
	require.Equal(t, formalEnd, *formal.ExpireTime)
	requireDeadline(t, formal, DeadlineExpiry, formalEnd)
	require.Equal(t, []string{"FetchOrder TRIAL", "Provision", "Freeze", "Release"}, app.Calls(),
		"converted before the trial ended: no freeze until the paid year ran out")
}

func TestUnsubscribeRenewalPeriod(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	signalAt(env, since(firstYear)-30*day, renewal(2, "RENEW", "RENEWAL", secondYear))
	renewed := stateAt(t, env, since(firstYear)-29*day)
	// The buyer refunds the renewal period: the expiry moves back.
	signalAt(env, since(firstYear)-20*day, renewal(3, "REFUND", "UNSUBSCRIBE_RENEWAL_PERIOD", firstYear))
	refunded := stateAt(t, env, since(firstYear)-19*day)
	inGrace := stateAt(t, env, since(firstYear)+time.Hour)
	signalAt(env, since(firstYear)+2*time.Hour, statusCB(4, "FREEZE", 1))
	signalAt(env, since(firstYear)+15*day, releaseCB(5))
	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.Equal(t, secondYear, *renewed.ExpireTime)
	requireDeadline(t, renewed, DeadlineExpiry, secondYear)
	require.Equal(t, firstYear, *refunded.ExpireTime)
	requireDeadline(t, refunded, DeadlineExpiry, firstYear)
	require.Equal(t, StateGrace, inGrace.State, "the refunded period is not served")
	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Release"}, app.Calls())
}

// TestRefundRecordedBeforeItsRenewal: two replicas spooled a renewal and
// its refund while the database was away and recorded them in the wrong
// order (the refund got the lower arrival number). The marketplace's send
// times put them right: the refunded expiry stands.
func TestRefundRecordedBeforeItsRenewal(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	sentRenewal := t0.Add(since(firstYear) - 30*day)
	refund := renewal(2, "REFUND", "UNSUBSCRIBE_RENEWAL_PERIOD", firstYear.AddDate(0, 0, 20))
	refund.SentAt = sentRenewal.Add(time.Minute)
	late := renewal(3, "RENEW", "RENEWAL", firstYear.AddDate(0, 0, 90))
	late.SentAt = sentRenewal
	signalAt(env, since(firstYear)-29*day, refund, late)
	after := stateAt(t, env, since(firstYear)-28*day)
	signalAt(env, since(firstYear)+200*day, releaseCB(4))
	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.Equal(t, firstYear.AddDate(0, 0, 20), *after.ExpireTime, "the refund, sent last, decides")
	require.Contains(t, eventByKey(t, app, "callback/"+late.Key).Message, "was sent before the expiry change already applied")
}

// Pay-per-use has no expiry: a year passes without timers; the marketplace
// freezes for arrears and unfreezes after payment.
func TestPayPerUseYearWithArrears(t *testing.T) {
	app := newFakeApp()
	in := app.withOrder(order("PPU", "ON_DEMAND", "NEW", "", 0, nil))
	env := newEnv(t, app)
	running := stateAt(t, env, 90*day)
	signalAt(env, 100*day, statusCB(2, "FREEZE", 1))
	arrears := stateAt(t, env, 101*day)
	signalAt(env, 103*day, statusCB(3, "UNFREEZE", 2))
	paid := stateAt(t, env, 104*day)
	yearOn := stateAt(t, env, 365*day)
	signalAt(env, 366*day, releaseCB(4))
	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.Equal(t, StateActive, running.State)
	require.Nil(t, running.ExpireTime)
	require.Empty(t, running.Deadlines)
	require.Equal(t, StateFrozen, arrears.State)
	require.Empty(t, arrears.Deadlines, "no expiry: no retention timer")
	require.Equal(t, StateActive, paid.State)
	require.Equal(t, StateActive, yearOn.State)
	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, []string{"FetchOrder PPU", "Provision", "Freeze", "Unfreeze", "Release"}, app.tenantCalls())
	require.True(t, running.Metered, "a pay-per-use instance is metered")
}

func TestSupervision(t *testing.T) {
	supervised := func() (*fakeApp, InstanceInput) {
		app := newFakeApp()
		app.policy.Supervised = true
		exp := t0.AddDate(0, 1, 0)
		return app, app.withOrder(order("SUP", "PERIOD", "NEW", "month", 1, &exp))
	}
	// requirementsAgreed: the buyer submits the requirements and the
	// merchant confirms them, from at on.
	requirementsAgreed := func(env *testsuite.TestWorkflowEnvironment, at time.Duration) {
		operator(env, at, OperatorRequest{ID: "submit", Name: OpSubmitRequirements, Actor: "koogallery-emulator"})
		operator(env, at+time.Hour, OperatorRequest{ID: "confirm-req", Name: OpConfirmRequirements})
	}

	t.Run("without a declared start the validity counts from the acceptance", func(t *testing.T) {
		app, in := supervised()
		env := newEnv(t, app)
		awaiting := stateAt(t, env, time.Hour)
		requirementsAgreed(env, day)
		operator(env, 3*day, OperatorRequest{ID: "deliver", Name: OpConfirmDelivery, Evidence: "https://docs.example.com/acceptance.pdf",
			Result: "tenant configured, 10 users imported"})
		delivered := stateAt(t, env, 3*day+time.Minute)
		acceptedAt := t0.Add(10 * day)
		operator(env, 10*day, OperatorRequest{ID: "accept", Name: OpAccept})
		accepted := stateAt(t, env, 10*day+time.Minute)
		completed := stateAt(t, env, 10*day+3*time.Hour+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, in)

		require.Equal(t, StateAwaitingRequirements, awaiting.State)
		require.Empty(t, awaiting.Deadlines, "the validity has not started")
		require.Equal(t, StateDelivered, delivered.State)
		require.Equal(t, "https://docs.example.com/acceptance.pdf", delivered.Supervision.Evidence)
		require.Equal(t, "tenant configured, 10 users imported", delivered.Supervision.Result)
		require.Contains(t, eventByKey(t, app, "operator/deliver").Message, "Result: tenant configured, 10 users imported.")
		require.Equal(t, StateAccepted, accepted.State)
		requireDeadline(t, accepted, DeadlineSupervisionSync, acceptedAt.Add(3*time.Hour))
		require.Equal(t, StateActive, completed.State)
		require.Equal(t, acceptedAt.Add(3*time.Hour), *completed.Supervision.CompletedAt)
		require.Equal(t, acceptedAt.AddDate(0, 1, 0), *completed.ExpireTime, "re-based on the acceptance")
		requireDeadline(t, completed, DeadlineExpiry, acceptedAt.AddDate(0, 1, 0))
	})
	t.Run("a declared start time is where the validity counts from", func(t *testing.T) {
		app, in := supervised()
		env := newEnv(t, app)
		start := t0.Add(2 * day)
		requirementsAgreed(env, day)
		operator(env, 3*day, OperatorRequest{Name: OpConfirmDelivery, Evidence: "report-42", Result: "done", StartTime: &start})
		operator(env, 10*day, OperatorRequest{Name: OpAccept})
		completed := stateAt(t, env, 11*day)
		env.ExecuteWorkflow(InstanceWorkflowName, in)

		require.Equal(t, StateActive, completed.State)
		require.Equal(t, start.AddDate(0, 1, 0), *completed.ExpireTime)
	})
	t.Run("rejections and appeals suspend the flow", func(t *testing.T) {
		app, in := supervised()
		env := newEnv(t, app)
		requirementsAgreed(env, 12*time.Hour)
		operator(env, 1*day, OperatorRequest{ID: "early-accept", Name: OpAccept})
		operator(env, 2*day, OperatorRequest{ID: "d1", Name: OpConfirmDelivery, Evidence: "v1", Result: "r1"})
		operator(env, 3*day, OperatorRequest{ID: "r1", Name: OpReject, Reason: "missing the data import"})
		rejected := stateAt(t, env, 3*day+time.Minute)
		operator(env, 4*day, OperatorRequest{ID: "d2", Name: OpConfirmDelivery, Evidence: "v2", Result: "r2"})
		// The buyer goes quiet for more than 5 days: the merchant appeals.
		operator(env, 10*day, OperatorRequest{ID: "appeal", Name: OpAppeal, Reason: "buyer silent for 6 days"})
		appealed := stateAt(t, env, 10*day+time.Minute)
		operator(env, 13*day, OperatorRequest{ID: "resolve", Name: OpResolveAppeal, Reason: "arbitrated"})
		resumed := stateAt(t, env, 13*day+time.Minute)
		operator(env, 14*day, OperatorRequest{ID: "accept", Name: OpAccept})
		// An appeal while accepted holds the completion back.
		operator(env, 14*day+time.Hour, OperatorRequest{ID: "appeal2", Name: OpAppeal, Reason: "invoice dispute"})
		held := stateAt(t, env, 14*day+4*time.Hour)
		operator(env, 16*day, OperatorRequest{ID: "resolve2", Name: OpResolveAppeal, Reason: "settled"})
		syncing := stateAt(t, env, 16*day+time.Minute)
		completed := stateAt(t, env, 16*day+3*time.Hour+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, in)

		require.Equal(t, "operator-rejected", eventByKey(t, app, "operator/early-accept").Kind, "nothing to accept before delivery")
		require.Equal(t, StateAwaitingDelivery, rejected.State)
		require.Equal(t, 1, rejected.Supervision.Rejections)
		require.Equal(t, StateAppealed, appealed.State)
		require.Equal(t, StateDelivered, appealed.Supervision.AppealedFrom)
		require.Empty(t, appealed.Deadlines)
		require.Equal(t, StateDelivered, resumed.State)
		require.Equal(t, StateAppealed, held.State, "the completion waits for the appeal")
		require.Equal(t, StateAccepted, syncing.State)
		requireDeadline(t, syncing, DeadlineSupervisionSync, t0.Add(16*day+3*time.Hour))
		require.Equal(t, StateActive, completed.State)
		require.Equal(t, t0.Add(14*day).AddDate(0, 1, 0), *completed.ExpireTime, "validity from the acceptance")
	})
	t.Run("the merchant confirms or rejects the requirements; steps out of turn are refused", func(t *testing.T) {
		app, in := supervised()
		env := newEnv(t, app)
		operator(env, 12*time.Hour, OperatorRequest{ID: "early-confirm", Name: OpConfirmRequirements})
		operator(env, day, OperatorRequest{ID: "submit1", Name: OpSubmitRequirements, Actor: "koogallery-emulator"})
		submitted := stateAt(t, env, day+time.Minute)
		operator(env, day+time.Hour, OperatorRequest{ID: "early-deliver", Name: OpConfirmDelivery, Evidence: "v0", Result: "r0"})
		operator(env, 2*day, OperatorRequest{ID: "reject-req", Name: OpRejectRequirements, Actor: "alice", Reason: "the attachment does not match the agreement"})
		rejected := stateAt(t, env, 2*day+time.Minute)
		operator(env, 2*day+time.Hour, OperatorRequest{ID: "reject-again", Name: OpRejectRequirements, Reason: "twice"})
		operator(env, 3*day, OperatorRequest{ID: "submit2", Name: OpSubmitRequirements})
		operator(env, 4*day, OperatorRequest{ID: "confirm-req", Name: OpConfirmRequirements, Actor: "alice", Reason: "agreed with the buyer"})
		confirmed := stateAt(t, env, 4*day+time.Minute)
		operator(env, 5*day, OperatorRequest{ID: "no-result", Name: OpConfirmDelivery, Evidence: "v1"})
		operator(env, 5*day+time.Hour, OperatorRequest{ID: "deliver", Name: OpConfirmDelivery, Evidence: "v1", Result: "r1"})
		delivered := stateAt(t, env, 5*day+2*time.Hour)
		env.ExecuteWorkflow(InstanceWorkflowName, in)

		require.Equal(t, StateRequirementsSubmitted, submitted.State)
		require.Equal(t, t0.Add(day), *submitted.Supervision.RequirementsAt)
		require.Equal(t, StateAwaitingRequirements, rejected.State)
		require.Equal(t, 1, rejected.Supervision.RequirementRejections)
		require.Nil(t, rejected.Supervision.RequirementsAt)
		require.Equal(t, "operator", eventByKey(t, app, "operator/reject-req").Kind)
		require.Contains(t, eventByKey(t, app, "operator/reject-req").Message, "reject-requirements by alice: the attachment does not match the agreement.")
		require.Equal(t, StateAwaitingDelivery, confirmed.State)
		require.Equal(t, t0.Add(4*day), *confirmed.Supervision.RequirementsConfirmedAt)
		require.Contains(t, eventByKey(t, app, "operator/confirm-req").Message, "confirm-requirements by alice: agreed with the buyer.")
		require.Equal(t, StateDelivered, delivered.State)
		for key, why := range map[string]string{
			"operator/early-confirm": "requirements can be confirmed only while requirements_submitted, not awaiting_requirements",
			"operator/early-deliver": "delivery can be confirmed only while awaiting_delivery, not requirements_submitted",
			"operator/reject-again":  "requirements can be rejected only while requirements_submitted, not awaiting_requirements",
			"operator/no-result":     "result (the description of the service's result) is required",
		} {
			e := eventByKey(t, app, key)
			require.Equal(t, "operator-rejected", e.Kind, key)
			require.Contains(t, e.Message, why, key)
		}
	})
	t.Run("Huawei Cloud reviews the delivery of a reviewed product before the buyer accepts", func(t *testing.T) {
		app, in := supervised()
		app.policy.SupervisionReviewed = true
		env := newEnv(t, app)
		requirementsAgreed(env, day)
		operator(env, 3*day, OperatorRequest{ID: "d1", Name: OpConfirmDelivery, Evidence: "v1", Result: "r1"})
		review := stateAt(t, env, 3*day+time.Minute)
		operator(env, 3*day+time.Hour, OperatorRequest{ID: "early-accept", Name: OpAccept})
		operator(env, 4*day, OperatorRequest{ID: "review-no", Name: OpRejectReview, Actor: "koogallery-emulator", Reason: "the evidence is not signed"})
		back := stateAt(t, env, 4*day+time.Minute)
		operator(env, 4*day+time.Hour, OperatorRequest{ID: "approve-early", Name: OpApproveReview})
		operator(env, 5*day, OperatorRequest{ID: "d2", Name: OpConfirmDelivery, Evidence: "v2", Result: "r2"})
		operator(env, 6*day, OperatorRequest{ID: "review-ok", Name: OpApproveReview, Actor: "koogallery-emulator"})
		approved := stateAt(t, env, 6*day+time.Minute)
		operator(env, 7*day, OperatorRequest{ID: "accept", Name: OpAccept})
		completed := stateAt(t, env, 7*day+3*time.Hour+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, in)

		require.Equal(t, StateUnderReview, review.State)
		require.Contains(t, eventByKey(t, app, "operator/d1").Message, "Awaiting Huawei Cloud's review")
		require.Equal(t, "operator-rejected", eventByKey(t, app, "operator/early-accept").Kind, "no acceptance before the review")
		require.Equal(t, StateAwaitingDelivery, back.State)
		require.Equal(t, 1, back.Supervision.ReviewRejections)
		require.Empty(t, back.Supervision.Evidence, "a rejected delivery's evidence is gone")
		require.Contains(t, eventByKey(t, app, "operator/review-no").Message, "review-reject by koogallery-emulator: the evidence is not signed.")
		require.Equal(t, "operator-rejected", eventByKey(t, app, "operator/approve-early").Kind)
		require.Contains(t, eventByKey(t, app, "operator/approve-early").Message, "only a delivery under_review can be approved, not awaiting_delivery")
		require.Equal(t, StateDelivered, approved.State)
		require.Equal(t, t0.Add(6*day), *approved.Supervision.ReviewedAt)
		require.Equal(t, "r2", approved.Supervision.Result)
		require.Equal(t, StateActive, completed.State)
		require.Equal(t, t0.Add(7*day).AddDate(0, 1, 0), *completed.ExpireTime)
	})
	t.Run("a stall on the merchant's side is alerted once per stall", func(t *testing.T) {
		app, in := supervised()
		app.policy.SupervisionStallAlert = 5 * day
		env := newEnv(t, app)
		operator(env, day, OperatorRequest{ID: "submit", Name: OpSubmitRequirements})
		waiting := stateAt(t, env, day+time.Minute)
		stalled := stateAt(t, env, 6*day+time.Minute)
		quiet := stateAt(t, env, 12*day)
		operator(env, 12*day+time.Hour, OperatorRequest{ID: "confirm-req", Name: OpConfirmRequirements})
		delivering := stateAt(t, env, 12*day+2*time.Hour)
		deliveryStalled := stateAt(t, env, 17*day+2*time.Hour)
		operator(env, 30*day, OperatorRequest{ID: "deliver", Name: OpConfirmDelivery, Evidence: "v", Result: "r"})
		delivered := stateAt(t, env, 30*day+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, in)

		requireDeadline(t, waiting, DeadlineSupervisionStall, t0.Add(6*day))
		require.Equal(t, StateRequirementsSubmitted, stalled.State)
		require.Equal(t, t0.Add(6*day), *stalled.Supervision.StallAlertedAt)
		require.Empty(t, quiet.Deadlines, "reminded once: no more stall timer")
		requireDeadline(t, delivering, DeadlineSupervisionStall, t0.Add(17*day+time.Hour))
		require.Equal(t, t0.Add(17*day+time.Hour), *deliveryStalled.Supervision.StallAlertedAt)
		require.Empty(t, delivered.Deadlines)
		var stalls []activities.AlertInput
		for _, a := range app.Alerts() {
			if a.Kind == "supervision_stalled" {
				stalls = append(stalls, a)
			}
		}
		require.Len(t, stalls, 2, "one alert per stall: the requirements, then the delivery")
		require.Contains(t, stalls[0].Message, "the buyer's requirements (确认需求) are awaited since")
		require.Contains(t, stalls[1].Message, "the delivery (确认服务完成) is awaited since")
		require.Len(t, eventsOfKind(app, "supervision-stalled"), 2)
	})
	t.Run("a purchase provisioned before the requirements step keeps its flow", func(t *testing.T) {
		app, in := supervised()
		app.policy.SupervisionStallAlert = 5 * day
		app.policy.SupervisionReviewed = true
		env := newEnv(t, app)
		env.OnGetVersion(supervisionFlowChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
		awaiting := stateAt(t, env, time.Hour)
		operator(env, 2*time.Hour, OperatorRequest{ID: "submit", Name: OpSubmitRequirements})
		operator(env, 3*day, OperatorRequest{ID: "deliver", Name: OpConfirmDelivery, Evidence: "v1"})
		delivered := stateAt(t, env, 3*day+time.Minute)
		operator(env, 4*day, OperatorRequest{ID: "reject", Name: OpReject})
		rejected := stateAt(t, env, 4*day+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, in)

		require.Equal(t, StateAwaitingDelivery, awaiting.State)
		require.Zero(t, awaiting.Supervision.Flow)
		require.Empty(t, awaiting.Deadlines, "no stall reminder in the old flow")
		require.Contains(t, eventByKey(t, app, "operator/submit").Message, "only while awaiting_requirements, not awaiting_delivery")
		require.Equal(t, StateDelivered, delivered.State, "no result required, no review in the old flow")
		require.Equal(t, StateAwaitingDelivery, rejected.State)
		require.Empty(t, rejected.Deadlines)
		require.Empty(t, app.Alerts())
	})
}

func TestOperatorActions(t *testing.T) {
	t.Run("extend-grace pushes the server's freeze back", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		operator(env, since(firstYear)+time.Hour, OperatorRequest{ID: "extend", Name: OpExtendGrace, Duration: 48 * time.Hour, Reason: "buyer's payment is on its way"})
		extended := stateAt(t, env, since(firstYear)+2*time.Hour)
		notYet := stateAt(t, env, since(firstYear)+grace+time.Hour)
		frozen := stateAt(t, env, since(firstYear)+grace+48*time.Hour+time.Minute)
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		requireDeadline(t, extended, DeadlineSelfFreeze, firstYear.Add(grace+48*time.Hour))
		require.Equal(t, 48*time.Hour, extended.GraceExtension)
		require.Equal(t, StateGrace, notYet.State)
		require.Equal(t, StateFrozen, frozen.State)
		require.Contains(t, eventByKey(t, app, "operator/extend").Message, "buyer's payment is on its way")
	})
	t.Run("force-freeze holds the tenant through a renewal until force-unfreeze", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		operator(env, 10*day, OperatorRequest{ID: "ff", Name: OpForceFreeze, Reason: "abuse report"})
		signalAt(env, 11*day, renewal(2, "RENEW", "RENEWAL", secondYear))
		held := stateAt(t, env, 12*day)
		operator(env, 20*day, OperatorRequest{ID: "fu", Name: OpForceUnfreeze, Reason: "report cleared"})
		active := stateAt(t, env, 21*day)
		operator(env, 30*day, OperatorRequest{ID: "fr", Name: OpForceRelease, Reason: "customer asked for deletion"})
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateFrozen, held.State)
		require.Equal(t, FrozenByOperator, held.FrozenBy)
		require.Equal(t, secondYear, *held.ExpireTime)
		require.Equal(t, StateActive, active.State)
		require.True(t, env.IsWorkflowCompleted())
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze", "Release"}, app.Calls())
		require.Equal(t, "Released by an operator: customer asked for deletion.", lastSave(t, app).Reason)
	})
	t.Run("actions that do not fit the state are refused and recorded", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		for i, op := range []OperatorRequest{
			{Name: OpRetry}, {Name: OpSkip}, {Name: OpForceUnfreeze}, {Name: OpConfirmDelivery, Evidence: "x"},
			{Name: OpAccept}, {Name: OpAppeal}, {Name: OpResolveAppeal}, {Name: OpExtendGrace},
			{Name: OpSetPolicy, ReleasePolicy: "sometimes"}, {Name: "reboot"},
		} {
			op.ID = fmt.Sprintf("bad-%d", i)
			operator(env, time.Hour, op)
		}
		state := stateAt(t, env, 2*time.Hour)
		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateActive, state.State)
		require.Len(t, eventsOfKind(app, "operator-rejected"), 10)
		require.Contains(t, eventByKey(t, app, "operator/bad-0").Message, "nothing is parked")
		require.Contains(t, eventByKey(t, app, "operator/bad-3").Message, "not under service supervision")
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision"}, app.Calls()[:2])
	})
}
