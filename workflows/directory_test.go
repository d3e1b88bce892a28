package workflows

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

func kitCB(seq int64, op string) Callback {
	return Callback{Key: fmt.Sprintf("kit:%s:inst-1:T1:%d", op, seq), Seq: seq, Activity: op}
}

// TestKitSyncsApplyInArrivalOrder: the 联营 kit's syncs reach the
// application through the instance's callbacks, in arrival order, each
// once; a debug sync on a real instance changes nothing; a release drops
// the directory with the tenant.
func TestKitSyncsApplyInArrivalOrder(t *testing.T) {
	app := newFakeApp()
	env := newEnv(t, app)
	// The inbox delivers an instance's callbacks in arrival order; the
	// authSync is delivered twice.
	signalAt(env, time.Minute, kitCB(2, string(koogallery.KitTenantSync)), kitCB(3, string(koogallery.KitApplicationSync)),
		kitCB(4, string(koogallery.KitAuthSync)), kitCB(4, string(koogallery.KitAuthSync)))
	probe := kitCB(5, string(koogallery.KitAllOrgSync))
	probe.Debug = true
	signalAt(env, 2*time.Minute, probe)
	signalAt(env, time.Hour, releaseCB(6))

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, []string{"FetchOrder ORDER-NEW", "Provision", "ApplyDirectorySync 2", "ApplyDirectorySync 3",
		"ApplyDirectorySync 4", "Release"}, app.Calls())
	require.Equal(t, []string{"inst-1"}, app.droppedDirectories, "the release drops the directory")
	require.Equal(t, "directory", eventByKey(t, app, "callback/"+kitCB(2, string(koogallery.KitTenantSync)).Key).Kind)
	require.Contains(t, eventByKey(t, app, "callback/"+kitCB(3, string(koogallery.KitApplicationSync)).Key).Message,
		"applicationSync: sync 3 applied.")
	require.Equal(t, "ignored", eventByKey(t, app, "callback/"+probe.Key).Kind)
}

// TestReleaseDropsADirectoryOnlyWhenThereIsOne: a purchase started now
// knows whether a kit sync ever reached it, and its release drops the
// directory only then; one started before (an older generation) drops it
// as its version says, whatever it holds.
func TestReleaseDropsADirectoryOnlyWhenThereIsOne(t *testing.T) {
	for _, tt := range []struct {
		name       string
		generation int
		dropped    []string
	}{
		{"started now", InstanceGeneration, nil},
		{"started before", GenerationKeptDeadlineTimer, []string{"inst-1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			app := newFakeApp()
			env := newEnv(t, app)
			signalAt(env, time.Hour, releaseCB(2))
			in := input
			in.Generation = tt.generation

			env.ExecuteWorkflow(InstanceWorkflowName, in)

			require.True(t, env.IsWorkflowCompleted())
			require.Equal(t, tt.dropped, app.droppedDirectories)
		})
	}
}

// TestFailedKitSyncParksUntilRetried: the marketplace never sends a sync
// again by itself, so one the application refuses waits for an operator.
func TestFailedKitSyncParksUntilRetried(t *testing.T) {
	app := newFakeApp()
	app.setStepErr("ApplyDirectorySync", permanent("directory/users: the application has no such app"))
	env := newEnv(t, app)
	signalAt(env, time.Minute, kitCB(2, string(koogallery.KitAuthSync)))
	parked := stateAt(t, env, 2*time.Minute)
	env.RegisterDelayedCallback(func() { app.setStepErr("ApplyDirectorySync", nil) }, 50*time.Minute)
	operator(env, time.Hour, OperatorRequest{ID: "op-retry", Name: OpRetry, Reason: "app registered", Actor: "bob"})
	fixed := stateAt(t, env, 2*time.Hour)

	env.ExecuteWorkflow(InstanceWorkflowName, input)

	require.Equal(t, StateParked, parked.State)
	require.Equal(t, StepDirectory, parked.Parked.Step)
	require.Contains(t, parked.Parked.Error, "no such app")
	require.Equal(t, StateActive, fixed.State)
	require.Equal(t, "directory", eventByKey(t, app, "callback/"+kitCB(2, string(koogallery.KitAuthSync)).Key).Kind)
}
