package workflows

import (
	"errors"
	"fmt"
	"github.com/fulfillment-server/fulfillment/activities"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

func TestEveryCallbackThroughTheLifecycle(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	afterProvision := stateAt(t, env, time.Minute)
	signalAt(env, time.Hour, newInstanceCB(1), renewalCB(2, "ORDER-RENEW", secondYear))
	afterRenewal := stateAt(t, env, 2*time.Hour)
	signalAt(env, 3*time.Hour, statusCB(3, "FREEZE", 1))
	afterFreeze := stateAt(t, env, 4*time.Hour)
	signalAt(env, 5*time.Hour, statusCB(4, "UNFREEZE", 2))
	afterUnfreeze := stateAt(t, env, 6*time.Hour)
	signalAt(env, 7*time.Hour, upgradeCB(5))
	afterUpgrade := stateAt(t, env, 8*time.Hour)
	signalAt(env, 9*time.Hour, releaseCB(6))

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.True(t, env.IsWorkflowCompleted(), "release ends the workflow")
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{
		"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze",
		"FetchOrder ORDER-UPGRADE", "Upgrade", "Release",
	}, app.Calls())

	require.Equal(t, StateActive, afterProvision.State)
	require.Equal(t, firstYear, *afterProvision.ExpireTime)
	require.Equal(t, "https://app.example.com/t/inst-1", afterProvision.AppInfo.FrontEndURL)
	require.Equal(t, "sku-basic", afterProvision.Order.SkuCode)
	require.Equal(t, defaultPolicy, afterProvision.Policy, "the instance keeps the policy it started with")
	require.Equal(t, activities.ProvisionInput{InstanceID: "inst-1", Order: app.orders["ORDER-NEW"]}, app.provisioned[0])
	requireDeadline(t, afterProvision, DeadlineExpiry, firstYear)
	requireDeadline(t, afterProvision, DeadlineSelfFreeze, firstYear.Add(24*time.Hour))

	require.Equal(t, StateActive, afterRenewal.State)
	require.Equal(t, secondYear, *afterRenewal.ExpireTime, "renewal moves the expiry")
	requireDeadline(t, afterRenewal, DeadlineExpiry, secondYear)
	requireDeadline(t, afterRenewal, DeadlineSelfFreeze, secondYear.Add(24*time.Hour))

	require.Equal(t, StateFrozen, afterFreeze.State)
	require.Equal(t, FrozenByMarketplace, afterFreeze.FrozenBy)
	require.Empty(t, afterFreeze.Deadlines, "frozen before expiry: retention does not run")
	require.Equal(t, StateActive, afterUnfreeze.State)
	require.Empty(t, afterUnfreeze.Reason)

	require.Equal(t, "sku-pro", afterUpgrade.Order.SkuCode)
	require.Equal(t, int64(20), *afterUpgrade.Order.LinearValue)
	require.Equal(t, "ORDER-UPGRADE", app.upgrades[0].Order.OrderID)

	final := lastSave(t, app)
	require.Equal(t, string(StateReleased), final.State)
	require.Len(t, finalState(t, env).Applied, 6)
	require.Zero(t, finalState(t, env).Pending)
	for i, s := range app.Saves() {
		require.Equal(t, int64(i+1), s.Snapshot.Revision, "revisions grow with every save")
	}
	require.Equal(t, "released", eventByKey(t, app, "callback/releaseInstance:inst-1").Kind)
	require.Equal(t, "expiry", eventByKey(t, app, "callback/refreshInstance:inst-1:ORDER-RENEW").Kind)
}

func TestRedeliveredCallbacksAreAppliedOnce(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	freeze := statusCB(3, "FREEZE", 1)
	renewal := renewalCB(2, "ORDER-RENEW", secondYear)
	// The API and the relay may both signal the same recorded callback,
	// at once or later.
	signalAt(env, time.Hour, renewal, renewal, freeze, freeze)
	signalAt(env, 2*time.Hour, freeze, renewal)
	signalAt(env, 3*time.Hour, statusCB(4, "UNFREEZE", 2), statusCB(4, "UNFREEZE", 2))
	signalAt(env, 4*time.Hour, releaseCB(5), releaseCB(5))

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze", "Release"}, app.Calls())
	final := lastSave(t, app)
	require.Equal(t, string(StateReleased), final.State)
	require.Len(t, finalState(t, env).Applied, 4, "four distinct callbacks applied")
	renewals := 0
	for _, e := range savedEvents(app) {
		if e.Key == "callback/"+renewal.Key {
			renewals++
		}
	}
	require.Equal(t, 1, renewals, "the renewal is recorded once")
}

func TestOlderCallbacksNeverUndoNewerOnes(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	third := time.Date(2029, 1, 10, 15, 59, 59, 0, time.UTC)
	signalAt(env, time.Hour, statusCB(5, "FREEZE", 1))
	signalAt(env, 2*time.Hour, statusCB(7, "UNFREEZE", 2))
	// A FREEZE recorded before the UNFREEZE but delivered after it (the
	// relay caught up late) must not freeze the tenant again.
	signalAt(env, 3*time.Hour, statusCB(6, "FREEZE", 99))
	signalAt(env, 4*time.Hour, renewalCB(9, "ORDER-R2", third))
	signalAt(env, 5*time.Hour, renewalCB(8, "ORDER-R1", secondYear))
	state := stateAt(t, env, 6*time.Hour)

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.Equal(t, StateActive, state.State)
	require.Equal(t, third, *state.ExpireTime, "the newest expiry change wins")
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Freeze", "Unfreeze", "Freeze"}, app.Calls())
	// The second freeze is the server's, a day after the 2029 expiry.
	require.Equal(t, "frozen", eventByKey(t, app, "deadline/self-freeze/2029-01-11T15:59:59Z").Kind)
	require.Equal(t, "ignored", eventByKey(t, app, "callback/updateInstanceStatus:inst-1:FREEZE:99").Kind)
	require.Equal(t, "ignored", eventByKey(t, app, "callback/refreshInstance:inst-1:ORDER-R1").Kind)
}

func TestCallbacksDuringProvisioningWaitAndApplyInArrivalOrder(t *testing.T) {
	app := newFakeApp()
	// Provisioning fails twice (retried after 1 s and 2 s) so that
	// callbacks arrive while it is still going on.
	app.provisionErrs = []error{errors.New("application briefly down"), errors.New("application briefly down")}
	env := newEnv(t, app)
	// Signalled out of arrival order: the FREEZE (seq 3) before the
	// renewal (seq 2). Both wait for the tenant, then apply by seq.
	signalAt(env, 500*time.Millisecond, statusCB(3, "FREEZE", 1), renewalCB(2, "ORDER-RENEW", secondYear))
	during := stateAt(t, env, 800*time.Millisecond)
	done := stateAt(t, env, time.Hour)

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.Equal(t, StateProvisioning, during.State)
	require.Equal(t, 2, during.Pending, "both callbacks wait for provisioning")
	require.Equal(t, StateFrozen, done.State)
	require.Equal(t, secondYear, *done.ExpireTime)
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Provision", "Provision", "Freeze"}, app.Calls())
	var order []string
	for _, e := range savedEvents(app) {
		if strings.HasPrefix(e.Key, "callback/") {
			order = append(order, e.Key)
		}
	}
	require.Equal(t, []string{"callback/refreshInstance:inst-1:ORDER-RENEW", "callback/updateInstanceStatus:inst-1:FREEZE:1"}, order)
}

func TestParkedProvisioningFixedByRetry(t *testing.T) {
	app := newFakeApp()
	app.provisionErrs = []error{permanent("provision: tenant quota exhausted")}
	env := newEnv(t, app)
	parked := stateAt(t, env, time.Minute)
	// Operators fix the application, then retry. Meanwhile a freeze
	// request is refused: the tenant does not exist yet.
	operator(env, time.Hour, OperatorRequest{ID: "op-freeze", Name: OpForceFreeze})
	signalAt(env, time.Hour, renewalCB(2, "ORDER-RENEW", secondYear))
	stillParked := stateAt(t, env, 90*time.Minute)
	operator(env, 2*time.Hour, OperatorRequest{ID: "op-retry", Name: OpRetry, Reason: "quota raised", Actor: "alice"})
	fixed := stateAt(t, env, 3*time.Hour)

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	requireStillRunning(t, env)
	require.Equal(t, StateParked, parked.State)
	require.Equal(t, &Parked{Step: StepProvision, Error: "provision: tenant quota exhausted", Since: t0, ResumeState: StateProvisioning}, parked.Parked)
	require.Empty(t, parked.Deadlines, "nothing automatic happens to a parked instance")
	alerts := app.Alerts()
	require.Equal(t, activities.AlertInput{InstanceID: "inst-1", Kind: "parked", Message: alerts[0].Message}, alerts[0])
	require.Contains(t, alerts[0].Message, "tenant quota exhausted")
	// Left alone afterwards, the instance lives on to its expiry and
	// retention, which is alerted too.
	require.Equal(t, "release_overdue", alerts[len(alerts)-1].Kind)

	require.Equal(t, StateParked, stillParked.State)
	require.Equal(t, 1, stillParked.Pending, "the renewal waits for the parked step")
	require.Equal(t, "operator-rejected", eventByKey(t, app, "operator/op-freeze").Kind)

	require.Equal(t, StateActive, fixed.State)
	require.Nil(t, fixed.Parked)
	require.Equal(t, secondYear, *fixed.ExpireTime, "the waiting renewal applied after the retry")
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Provision", "Freeze"}, app.Calls(),
		"provisioned on the retry; frozen by the server after the 2028 expiry")
	retry := eventByKey(t, app, "operator/op-retry")
	require.Contains(t, retry.Message, "retry by alice: quota raised.")
}

func TestParkedStepSkippedOrAbandoned(t *testing.T) {
	t.Run("skipping a parked provisioning abandons it", func(t *testing.T) {
		app := newFakeApp()
		app.provisionErrs = []error{permanent("provision: plan unknown")}
		env := newEnv(t, app)
		operator(env, time.Hour, OperatorRequest{Name: OpSkip, Reason: "customer refunded by hand"})
		state := stateAt(t, env, 2*time.Hour)
		env.ExecuteWorkflow(InstanceWorkflowName, input)
		require.Equal(t, StateFailed, state.State)
		require.Equal(t, "Provisioning abandoned by an operator.", state.Reason)
	})
	t.Run("a release makes a parked provisioning moot", func(t *testing.T) {
		app := newFakeApp()
		app.provisionErrs = []error{permanent("provision: plan unknown")}
		env := newEnv(t, app)
		// KooGallery gave up after 3 h and unsubscribed the order.
		signalAt(env, 3*time.Hour, releaseCB(2))
		env.ExecuteWorkflow(InstanceWorkflowName, input)
		require.True(t, env.IsWorkflowCompleted())
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Release"}, app.Calls())
		require.Equal(t, string(StateReleased), lastSave(t, app).State)
	})
	t.Run("a parked freeze skipped counts as frozen by hand", func(t *testing.T) {
		app := newFakeApp()
		app.stepErr["Freeze"] = permanent("freeze: tenant locked by support")
		env := newEnv(t, app)
		signalAt(env, time.Hour, statusCB(2, "FREEZE", 1))
		parked := stateAt(t, env, 2*time.Hour)
		operator(env, 3*time.Hour, OperatorRequest{Name: OpSkip, Reason: "frozen by hand in the admin console"})
		skipped := stateAt(t, env, 4*time.Hour)
		env.ExecuteWorkflow(InstanceWorkflowName, input)
		require.Equal(t, StateParked, parked.State)
		require.Equal(t, StepFreeze, parked.Parked.Step)
		require.Equal(t, "freeze: tenant locked by support", parked.Parked.Error)
		require.Equal(t, StateActive, parked.Parked.ResumeState)
		require.Equal(t, StateFrozen, skipped.State)
		require.Equal(t, FrozenByMarketplace, skipped.FrozenBy)
	})
}

// TestEachTenantOperationHasItsOwnKey: FREEZE, UNFREEZE, FREEZE are three
// operations with three idempotency keys, so an application that
// deduplicates on the key does not skip the second freeze; only a retry
// of one operation (here an operator's, after it parked) reuses its key.
func TestEachTenantOperationHasItsOwnKey(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	signalAt(env, time.Hour, statusCB(2, "FREEZE", 1))
	signalAt(env, 2*time.Hour, statusCB(3, "UNFREEZE", 2))
	env.RegisterDelayedCallback(func() { app.setStepErr("Freeze", permanent("freeze: application busy")) }, 150*time.Minute)
	signalAt(env, 3*time.Hour, statusCB(4, "FREEZE", 3))
	env.RegisterDelayedCallback(func() { app.setStepErr("Freeze", nil) }, 4*time.Hour)
	operator(env, 5*time.Hour, OperatorRequest{Name: OpRetry, Reason: "application fixed"})
	signalAt(env, 6*time.Hour, releaseCB(5))
	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, []string{"freeze:inst-1:1", "unfreeze:inst-1:2", "freeze:inst-1:3", "freeze:inst-1:3", "release:inst-1:4"},
		app.Operations())
}

func TestQueryOrderFailureParksBeforeProvisioning(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	state := stateAt(t, env, time.Hour)

	env.ExecuteWorkflow(InstanceWorkflowName, InstanceInput{InstanceID: "inst-9", OrderID: "NO-SUCH-ORDER", OrderLineID: "x"})

	require.Equal(t, StateParked, state.State)
	require.Equal(t, StepFetchOrder, state.Parked.Step)
	require.Equal(t, "order NO-SUCH-ORDER not found", state.Parked.Error)
	require.Equal(t, []string{"FetchOrder NO-SUCH-ORDER"}, app.Calls())
}

func TestDebugInstances(t *testing.T) {
	t.Run("a debug purchase gets a disposable tenant, released after its TTL", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		state := stateAt(t, env, time.Hour)
		env.ExecuteWorkflow(InstanceWorkflowName, InstanceInput{InstanceID: "dbg-1", OrderID: "CS2211181819B4LVS", OrderLineID: "CS2211181819B4LVS-000001", Debug: true})

		require.Equal(t, StateActive, state.State)
		require.True(t, state.Debug)
		require.True(t, app.provisioned[0].Debug, "the provisioner is told the tenant is disposable")
		require.Equal(t, "order", eventByKey(t, app, "provisioning/debug-order").Kind)
		requireDeadline(t, state, DeadlineDebugTTL, t0.Add(72*time.Hour))
		require.Len(t, state.Deadlines, 1, "a debug instance has no lifecycle timers")
		require.True(t, env.IsWorkflowCompleted(), "the daily probing must not leave workflows behind")
		require.Equal(t, []string{"FetchOrder CS2211181819B4LVS", "Provision", "Release"}, app.Calls())
	})
	t.Run("debug callbacks never change a real instance", func(t *testing.T) {
		app := newFakeApp()
		env := newEnv(t, app)
		debugRenewal := renewalCB(2, "DEBUG-RENEW", secondYear)
		debugRenewal.Debug = true
		debugFreeze := statusCB(3, "FREEZE", 1)
		debugFreeze.Debug = true
		debugRelease := releaseCB(4)
		debugRelease.Debug = true
		signalAt(env, time.Hour, debugRenewal, debugFreeze, debugRelease)
		state := stateAt(t, env, 2*time.Hour)

		env.ExecuteWorkflow(InstanceWorkflowName, input)

		require.Equal(t, StateActive, state.State)
		require.Equal(t, firstYear, *state.ExpireTime)
		require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision"}, app.Calls()[:2])
		require.NotContains(t, app.Calls()[2:3], "Release")
	})
}

func TestChangeCheckAsksTheApplication(t *testing.T) {
	app := newFakeApp()
	app.verdict = ChangeCheckResult{Reason: "The tenant uses 12 seats; the target allows 5."}
	env := newEnv(t, app)
	five := int64(5)
	var result ChangeCheckResult
	var rejected error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(ChangeCheckUpdate, "check-1", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { t.Errorf("valid check rejected: %v", err) },
			OnAccept:   func() {},
			OnComplete: func(v any, err error) { require.NoError(t, err); result = v.(ChangeCheckResult) },
		}, ChangeCheckRequest{SkuCode: "sku-basic", LinearValue: &five})
		env.UpdateWorkflow(ChangeCheckUpdate, "check-2", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { rejected = err },
			OnAccept:   func() { t.Error("an empty target must be rejected") },
			OnComplete: func(any, error) {},
		}, ChangeCheckRequest{})
	}, time.Hour)

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.Equal(t, ChangeCheckResult{Reason: "The tenant uses 12 seats; the target allows 5."}, result)
	require.ErrorContains(t, rejected, "needs a target")
	require.Len(t, app.checks, 1)
	require.Equal(t, "sku-basic", app.checks[0].Current.SkuCode)
	require.Equal(t, int64(5), *app.checks[0].Target.LinearValue)
	require.Contains(t, eventByKey(t, app, "change-check/check-1").Message, "rejected: The tenant uses 12 seats")
}

func TestChangeCheckWhileParkedDoesNotAskTheApplication(t *testing.T) {
	app := newFakeApp()
	app.provisionErrs = []error{permanent("boom")}
	env := newEnv(t, app)
	var result ChangeCheckResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(ChangeCheckUpdate, "check-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("rejected: %v", err) }, OnAccept: func() {},
			OnComplete: func(v any, err error) { require.NoError(t, err); result = v.(ChangeCheckResult) },
		}, ChangeCheckRequest{SkuCode: "sku-pro"})
	}, time.Hour)

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.False(t, result.Allowed)
	require.Equal(t, "The instance is parked; its spec cannot be changed.", result.Reason)
	require.NotContains(t, app.Calls(), "CheckChange")
}

func TestCallbacksAfterReleaseAreIgnored(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	signalAt(env, time.Hour, releaseCB(2), statusCB(3, "FREEZE", 1), renewalCB(4, "ORDER-LATE", secondYear))
	operator(env, time.Hour, OperatorRequest{ID: "late-op", Name: OpForceFreeze})

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "Release"}, app.Calls())
	final := lastSave(t, app)
	require.Equal(t, string(StateReleased), final.State)
	require.Equal(t, firstYear, *final.ExpireTime, "nothing changes after release")
	require.Equal(t, "ignored", eventByKey(t, app, "callback/updateInstanceStatus:inst-1:FREEZE:1").Kind)
	require.Equal(t, "ignored", eventByKey(t, app, "callback/refreshInstance:inst-1:ORDER-LATE").Kind)
}

func TestLongHistoryContinuesAsNewCarryingEverything(t *testing.T) {
	defer func(old int) { callbacksPerRun = old }(callbacksPerRun)
	callbacksPerRun = 5

	app := newFakeApp()
	env := newEnv(t, app)
	expire := secondYear
	for i := range 12 {
		expire = expire.AddDate(0, 1, 0)
		signalAt(env, time.Duration(i+1)*time.Hour, renewalCB(int64(i+2), fmt.Sprintf("ORDER-R%02d", i), expire))
	}
	operator(env, 20*time.Hour, OperatorRequest{Name: OpSetPolicy, ReleasePolicy: ReleasePolicyRelease})
	env.ExecuteWorkflow(InstanceWorkflowName, input)

	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	require.Equal(t, InstanceWorkflowName, can.WorkflowType.Name)
	var next InstanceInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Carried)
	carried := *next.Carried
	require.Equal(t, StateActive, carried.State)
	require.Equal(t, "inst-1", carried.InstanceID)
	require.NotNil(t, carried.AppInfo)
	require.NotEmpty(t, carried.Applied)
	require.Equal(t, defaultPolicy, carried.Policy)
	require.Greater(t, carried.LastRefreshSeq, int64(1))

	// The next run starts where the last stopped: no new provisioning, the
	// applied keys still deduplicate, the timers follow the carried state.
	app2 := newFakeApp()
	env2 := newEnv(t, app2)
	lastApplied := carried.Applied[len(carried.Applied)-1]
	signalAt(env2, time.Hour, Callback{Key: lastApplied, Seq: carried.LastRefreshSeq, Activity: ActivityRefreshInstance,
		Scene: "RENEWAL", ExpireTime: t0})
	signalAt(env2, 2*time.Hour, statusCB(100, "FREEZE", 1))
	state := stateAt(t, env2, 3*time.Hour)
	env2.ExecuteWorkflow(InstanceWorkflowName, next)

	require.Equal(t, []string{"Freeze"}, app2.Calls())
	require.Equal(t, StateFrozen, state.State)
	require.Equal(t, *carried.ExpireTime, *state.ExpireTime, "the redelivered renewal was not applied again")
	require.Greater(t, lastSave(t, app2).Revision, carried.Revision, "revisions keep growing across runs")
}
