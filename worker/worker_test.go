package worker_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/worker"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// registry records what Register registers.
type registry struct {
	workflows  []string
	activities []any
}

func (r *registry) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	r.workflows = append(r.workflows, o.Name)
}

func (r *registry) RegisterActivityWithOptions(a any, o activity.RegisterOptions) {
	r.activities = append(r.activities, a)
}

// activityNames are the names running workflows' histories hold: the
// activities must keep them, whatever else changes.
var activityNames = []string{
	"Alert", "ApplyDirectorySync", "CheckChange", "CloseUsagePeriods", "CollectUsage", "DeactivatePackage", "DropDirectory",
	"ExcludeFrozenUsage", "FetchOrder", "Freeze", "IssueLicense", "NotifyLicenseCode", "PauseMetering", "Policy", "Provision",
	"PushUsage", "RegisterMetering", "RegisterPackage", "Release", "ResetPackage", "ResumeMetering", "SaveInstance",
	"SaveLicenseCode", "StopMetering", "Unfreeze", "Upgrade",
}

// TestActivitiesKeepTheirNames: the worker registers *Activities as a
// whole, so each exported method is an activity under its own name; they
// are exactly the names recorded in histories.
func TestActivitiesKeepTheirNames(t *testing.T) {
	var r registry
	acts := &activities.Activities{}
	worker.Register(&r, acts)
	require.Equal(t, []string{workflows.InstanceWorkflowName, workflows.MeteringWorkflowName, workflows.UsageCollectorWorkflowName,
		workflows.LicenseCodeWorkflowName}, r.workflows)
	require.Equal(t, []any{acts}, r.activities)
	typ := reflect.TypeOf(acts)
	var names []string
	for i := range typ.NumMethod() {
		names = append(names, typ.Method(i).Name)
	}
	slices.Sort(names)
	require.Equal(t, activityNames, names)
}

// TestEnsureUsageCollector starts one collector, however many servers
// start it.
func TestEnsureUsageCollector(t *testing.T) {
	srv := testenv.StartTemporal(t)
	c := srv.Client(t)
	in := workflows.UsageCollectorInput{Period: time.Hour, PushDelay: 5 * time.Minute}
	require.NoError(t, worker.EnsureUsageCollector(t.Context(), c, "collector-test", in))
	first, err := c.DescribeWorkflowExecution(t.Context(), workflows.UsageCollectorWorkflowID("collector-test"), "")
	require.NoError(t, err)
	require.NoError(t, worker.EnsureUsageCollector(t.Context(), c, "collector-test", in))
	second, err := c.DescribeWorkflowExecution(t.Context(), workflows.UsageCollectorWorkflowID("collector-test"), "")
	require.NoError(t, err)
	require.Equal(t, first.GetWorkflowExecutionInfo().GetExecution().GetRunId(), second.GetWorkflowExecutionInfo().GetExecution().GetRunId(),
		"the running collector is kept")

	// Another deployment on the same namespace (a rehearsal beside the
	// real one, on its own task queue and database) has its own collector.
	require.NoError(t, worker.EnsureUsageCollector(t.Context(), c, "collector-other", in))
	other, err := c.DescribeWorkflowExecution(t.Context(), workflows.UsageCollectorWorkflowID("collector-other"), "")
	require.NoError(t, err)
	require.Equal(t, "collector-other", other.GetExecutionConfig().GetTaskQueue().GetName())
	require.NotEqual(t, first.GetWorkflowExecutionInfo().GetExecution().GetRunId(), other.GetWorkflowExecutionInfo().GetExecution().GetRunId())

	// A server started with other settings gives them to the running
	// collector (a worker runs it here, with no metered instance).
	w := worker.New(c, "collector-test", &activities.Activities{Store: testenv.NewStore(t)}, worker.Options())
	require.NoError(t, w.Start())
	defer w.Stop()
	daily := workflows.UsageCollectorInput{Period: 24 * time.Hour, PushDelay: 10 * time.Minute}
	require.NoError(t, worker.EnsureUsageCollector(t.Context(), c, "collector-test", daily))
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(t.Context(), workflows.UsageCollectorWorkflowID("collector-test"), "", workflows.UsageCollectorQuery)
		if err != nil {
			return false
		}
		var st workflows.CollectorState
		return v.Get(&st) == nil && st.Settings == workflows.UsageCollectorSettings{Period: 24 * time.Hour, PushDelay: 10 * time.Minute}
	}, 20*time.Second, 100*time.Millisecond)
}

// TestEnsureSearchAttributes registers the attributes on a fresh server and
// is a no-op the second time.
func TestEnsureSearchAttributes(t *testing.T) {
	srv := testenv.StartTemporal(t)
	c := srv.Client(t)
	require.NoError(t, worker.EnsureSearchAttributes(t.Context(), c, "default"))
	require.NoError(t, worker.EnsureSearchAttributes(t.Context(), c, "default"))
	have, err := c.OperatorService().ListSearchAttributes(t.Context(),
		&operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	require.NoError(t, err)
	for name, typ := range workflows.SearchAttributeTypes() {
		require.Equal(t, typ, have.GetCustomAttributes()[name], name)
	}
}
