package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// fakeLicenseApp stands in for a code's two activities: it records what
// the application was told and what was saved.
type fakeLicenseApp struct {
	mu      sync.Mutex
	told    []activities.LicenseCodeChange
	saved   []activities.LicenseCodeState
	refuses int // the next refuses notifications are refused permanently
}

func (f *fakeLicenseApp) NotifyLicenseCode(_ context.Context, in activities.LicenseCodeChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuses > 0 {
		f.refuses--
		return temporal.NewNonRetryableApplicationError("the application refused the change", "ProvisionerRejected", nil)
	}
	f.told = append(f.told, in)
	return nil
}

func (f *fakeLicenseApp) SaveLicenseCode(_ context.Context, in activities.LicenseCodeState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saved = append(f.saved, in)
	return nil
}

// events are what the application was told, as "event status expiry".
func (f *fakeLicenseApp) events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.told {
		expire := "-"
		if c.ExpireTime != nil {
			expire = c.ExpireTime.Format("2006-01-02")
		}
		out = append(out, fmt.Sprintf("%s %s %s", c.Event, c.Status, expire))
	}
	return out
}

func newLicenseCodeEnv(t *testing.T, app *fakeLicenseApp) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	env.SetStartTime(t0)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: LicenseCodeWorkflowID("PL1")})
	env.RegisterWorkflowWithOptions(LicenseCodeWorkflow, workflow.RegisterOptions{Name: LicenseCodeWorkflowName})
	env.RegisterActivityWithOptions(app.NotifyLicenseCode, activity.RegisterOptions{Name: "NotifyLicenseCode"})
	env.RegisterActivityWithOptions(app.SaveLicenseCode, activity.RegisterOptions{Name: "SaveLicenseCode"})
	return env
}

func codeRenewalCB(seq int64, order string, scene string, expire time.Time, sentAt time.Time) Callback {
	return Callback{Key: fmt.Sprintf("refreshLicenseCode:%q:%s:%s-1", "PL1", order, order), Seq: seq,
		Activity: "refreshLicenseCode", OrderID: order, OrderLineID: order + "-1", Scene: scene, ExpireTime: expire, SentAt: sentAt}
}

func codeStatusCB(seq int64, status string, episode int, sentAt time.Time) Callback {
	return Callback{Key: fmt.Sprintf("updateLicenseCodeStatus:%q:%s:%d", "PL1", status, episode), Seq: seq,
		Activity: "updateLicenseCodeStatus", Status: status, SentAt: sentAt}
}

func codeReleaseCB(seq int64) Callback {
	return Callback{Key: fmt.Sprintf("releaseLicenseCode:%q", "PL1"), Seq: seq, Activity: "releaseLicenseCode", OrderID: "U1"}
}

// TestLicenseCodeYear plays a year of a monthly code: activation, two
// renewals (one sent twice), the refund of the second, expiry, the
// marketplace's FREEZE, a late renewal with its UNFREEZE, a stale refund,
// expiry again, FREEZE and release. The application hears each
// change once, under its own key, and the saved state follows.
func TestLicenseCodeYear(t *testing.T) {
	app := &fakeLicenseApp{}
	env := newLicenseCodeEnv(t, app)
	day := 24 * time.Hour
	month1 := t0.Add(30 * day)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	signalAt(env, 10*day, codeRenewalCB(1, "R1", "RENEWAL", t0.Add(60*day), at(10*day)))
	signalAt(env, 11*day, codeRenewalCB(1, "R1", "RENEWAL", t0.Add(60*day), at(10*day))) // the same callback again
	signalAt(env, 20*day, codeRenewalCB(2, "R2", "RENEWAL", t0.Add(90*day), at(20*day)))
	signalAt(env, 21*day, codeRenewalCB(3, "R3", "UNSUBSCRIBE_RENEWAL_PERIOD", t0.Add(60*day), at(21*day)))
	// Expired at day 60; frozen after the grace.
	signalAt(env, 75*day, codeStatusCB(4, "FREEZE", 1, at(75*day)))
	var frozen LicenseCodeSnapshot
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(StateQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(&frozen))
	}, 76*day)
	signalAt(env, 80*day, codeRenewalCB(5, "R4", "RENEWAL", t0.Add(120*day), at(80*day)),
		codeStatusCB(6, "UNFREEZE", 2, at(80*day)))
	// A refund signed before the last renewal arrives late: it changes
	// nothing.
	signalAt(env, 81*day, codeRenewalCB(7, "R5", "UNSUBSCRIBE_RENEWAL_PERIOD", t0.Add(60*day), at(79*day)))
	signalAt(env, 135*day, codeStatusCB(8, "FREEZE", 3, at(135*day)))
	signalAt(env, 150*day, codeReleaseCB(9))

	exp := t0.Add(30 * day)
	env.ExecuteWorkflow(LicenseCodeWorkflowName, LicenseCodeInput{License: "PL1", ProductID: "P1", OrderID: "O1", ExpireAt: &exp})

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{
		"activated active " + month1.Format("2006-01-02"),
		"renewed active " + t0.Add(60*day).Format("2006-01-02"),
		"renewed active " + t0.Add(90*day).Format("2006-01-02"),
		"renewal-refunded active " + t0.Add(60*day).Format("2006-01-02"),
		"expired expired " + t0.Add(60*day).Format("2006-01-02"),
		"frozen frozen " + t0.Add(60*day).Format("2006-01-02"),
		"renewed frozen " + t0.Add(120*day).Format("2006-01-02"),
		"unfrozen active " + t0.Add(120*day).Format("2006-01-02"),
		"expired expired " + t0.Add(120*day).Format("2006-01-02"),
		"frozen frozen " + t0.Add(120*day).Format("2006-01-02"),
		"released released " + t0.Add(120*day).Format("2006-01-02"),
	}, app.events())

	// Each change has its own key; the saves are in order and end released.
	keys := map[string]bool{}
	for _, c := range app.told {
		require.False(t, keys[c.OperationID], "key %s used twice", c.OperationID)
		keys[c.OperationID] = true
	}
	require.Equal(t, "R4", app.told[6].OrderID)
	last := app.saved[len(app.saved)-1]
	require.Equal(t, activities.LicenseCodeReleased, last.Status)
	require.NotNil(t, last.ReleasedAt)
	for i := 1; i < len(app.saved); i++ {
		require.Greater(t, app.saved[i].Revision, app.saved[i-1].Revision)
	}
	require.Equal(t, activities.LicenseCodeFrozen, frozen.Status)
	require.Equal(t, at(75*day).Add(LicenseCodeRetention), *frozen.RetainUntil)
}

// TestLicenseCodeRefusedChangeWaitsForAnOperator: a change the application
// refuses is shown (saved with the reason) and waits; callbacks queue
// behind it; the operator's retry tells the application, then the rest
// applies in order.
func TestLicenseCodeRefusedChangeWaitsForAnOperator(t *testing.T) {
	app := &fakeLicenseApp{refuses: 1}
	env := newLicenseCodeEnv(t, app)
	signalAt(env, time.Hour, codeStatusCB(1, "FREEZE", 1, t0.Add(time.Hour)))
	env.RegisterDelayedCallback(func() {
		app.mu.Lock()
		defer app.mu.Unlock()
		require.Empty(t, app.told, "nothing applied before the operator's retry")
		require.Contains(t, app.saved[len(app.saved)-1].LastError, "refused the activated change")
		env.SignalWorkflow(OperatorSignal, OperatorRequest{ID: "op-1", Name: OpRetry, Reason: "application fixed"})
	}, 2*time.Hour)
	signalAt(env, 3*time.Hour, codeReleaseCB(2))

	env.ExecuteWorkflow(LicenseCodeWorkflowName, LicenseCodeInput{License: "PL1"})

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, []string{"activated active -", "frozen frozen -", "released released -"}, app.events())
	require.Empty(t, app.saved[len(app.saved)-1].LastError)
}

// TestLicenseCodeContinuesAsNewWithItsState: a long history continues as
// new, carrying the state and the callbacks not yet applied.
func TestLicenseCodeContinuesAsNewWithItsState(t *testing.T) {
	defer func(limit int) { licenseCodeChangesPerRun = limit }(licenseCodeChangesPerRun)
	licenseCodeChangesPerRun = 1
	app := &fakeLicenseApp{}
	env := newLicenseCodeEnv(t, app)
	signalAt(env, 0, codeStatusCB(1, "FREEZE", 1, t0))

	env.ExecuteWorkflow(LicenseCodeWorkflowName, LicenseCodeInput{License: "PL1"})

	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can))
	var next LicenseCodeInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Carried)
	require.Equal(t, activities.LicenseCodeActive, next.Carried.Status)
	require.Equal(t, int64(1), next.Carried.Revision)
	require.Len(t, next.Carried.Pending, 1, "the FREEZE not yet applied travels with the state")
	require.Equal(t, []string{"activated active -"}, app.events())
}

// TestLicenseCodeActivatedAfterItsRelease: a code the marketplace reports
// released at its activation is told to the application as released, and
// its workflow ends.
func TestLicenseCodeActivatedAfterItsRelease(t *testing.T) {
	app := &fakeLicenseApp{}
	env := newLicenseCodeEnv(t, app)
	env.ExecuteWorkflow(LicenseCodeWorkflowName, LicenseCodeInput{License: "PL1", Status: activities.LicenseCodeReleased})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"activated released -"}, app.events())
}
