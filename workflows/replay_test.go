package workflows

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays complete purchase lives recorded
// from a real Temporal server (make histories) through the current code. A
// change that would make running purchases take another path fails here:
// such a change needs workflow.GetVersion, not a new recording.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/histories/*.json")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 6, "the recorded histories are missing; run make histories")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflowWithOptions(InstanceWorkflow, workflow.RegisterOptions{Name: InstanceWorkflowName})
			replayer.RegisterWorkflowWithOptions(MeteringWorkflow, workflow.RegisterOptions{Name: MeteringWorkflowName})
			replayer.RegisterWorkflowWithOptions(UsageCollectorWorkflow, workflow.RegisterOptions{Name: UsageCollectorWorkflowName})
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}
