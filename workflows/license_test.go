package workflows

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func licenseCB(seq int64, event string) Callback {
	return Callback{Key: fmt.Sprintf("getLicenseAsync:inst-1:%s:abcdef", event), Seq: seq, Activity: ActivityGetLicenseAsync}
}

// TestLicenseRequestsApplyOnce: a device's licence request is applied in
// arrival order after provisioning, each once however often it is
// delivered, with the order's quantity as the quota; a debug request on a
// real instance changes nothing.
func TestLicenseRequestsApplyOnce(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	signalAt(env, time.Minute, licenseCB(2, "E1"), licenseCB(2, "E1"), licenseCB(3, "E2"))
	probe := licenseCB(4, "E3")
	probe.Debug = true
	signalAt(env, 2*time.Minute, probe, licenseCB(2, "E1"))
	signalAt(env, time.Hour, releaseCB(5))

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "IssueLicense 2 quota 10", "IssueLicense 3 quota 10", "Release"},
		app.Calls())
	ev := eventByKey(t, app, "callback/"+licenseCB(2, "E1").Key)
	require.Equal(t, "license", ev.Kind)
	require.Contains(t, ev.Message, "licence 2 uploaded.")
	require.Equal(t, "ignored", eventByKey(t, app, "callback/"+probe.Key).Kind)
}

// TestLicenseRefusedByTheActivityIsRecorded: a request the activity
// refuses (the quota used up meanwhile) is recorded, and the instance
// goes on.
func TestLicenseRefusedByTheActivityIsRecorded(t *testing.T) {
	app := newFakeApp()
	app.licenseRefusal = "the order allows 10 device(s), and 10 other device(s) hold a licence"
	env := newEnv(t, app)
	signalAt(env, time.Minute, licenseCB(2, "E1"))
	after := stateAt(t, env, 2*time.Minute)
	signalAt(env, time.Hour, releaseCB(3))

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.Equal(t, StateActive, after.State)
	ev := eventByKey(t, app, "callback/"+licenseCB(2, "E1").Key)
	require.Equal(t, "ignored", ev.Kind)
	require.Contains(t, ev.Message, "no licence issued: the order allows 10 device(s)")
}

// TestLicenseGeneratorFailureParksUntilRetried: the marketplace waits for
// the upload and never reminds, so a licence the generator refuses waits
// for an operator; the retry issues it.
func TestLicenseGeneratorFailureParksUntilRetried(t *testing.T) {
	app := newFakeApp()
	app.setStepErr("IssueLicense", permanent("license: the demo application is down for maintenance"))
	env := newEnv(t, app)
	signalAt(env, time.Minute, licenseCB(2, "E1"))
	parked := stateAt(t, env, 2*time.Minute)
	env.RegisterDelayedCallback(func() { app.setStepErr("IssueLicense", nil) }, 50*time.Minute)
	operator(env, time.Hour, OperatorRequest{ID: "op-retry", Name: OpRetry, Reason: "generator back", Actor: "bob"})
	fixed := stateAt(t, env, 2*time.Hour)

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.Equal(t, StateParked, parked.State)
	require.Equal(t, StepLicense, parked.Parked.Step)
	require.Contains(t, parked.Parked.Error, "maintenance")
	require.Equal(t, StateActive, fixed.State)
	require.Equal(t, "license", eventByKey(t, app, "callback/"+licenseCB(2, "E1").Key).Kind)
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "IssueLicense 2 quota 10", "IssueLicense 2 quota 10"}, app.Calls()[:4])
}

func TestLicenseQuota(t *testing.T) {
	one := int64(0)
	require.Equal(t, int64(0), (&Snapshot{}).licenseQuota())
	require.Equal(t, int64(1), (&Snapshot{Order: &Order{ProductID: "p"}}).licenseQuota())
	require.Equal(t, int64(1), (&Snapshot{Order: &Order{ProductID: "p", LinearValue: &one}}).licenseQuota())
	require.Equal(t, int64(0), (&Snapshot{Debug: true, Order: &Order{}}).licenseQuota())
}
