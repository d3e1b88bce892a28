package worker_test

import (
	"slices"
	"testing"

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
	activities []string
}

func (r *registry) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	r.workflows = append(r.workflows, o.Name)
}

func (r *registry) RegisterActivityWithOptions(_ any, o activity.RegisterOptions) {
	r.activities = append(r.activities, o.Name)
}

// TestEveryActivityTheWorkflowCallsIsRegistered: the workflows call
// activities by name, so a missing registration would only show at run time.
func TestEveryActivityTheWorkflowCallsIsRegistered(t *testing.T) {
	var r registry
	worker.Register(&r, &activities.Activities{})
	require.Equal(t, []string{workflows.InstanceWorkflowName, workflows.MeteringWorkflowName}, r.workflows)
	slices.Sort(r.activities)
	want := slices.Clone(workflows.ActivityNames)
	slices.Sort(want)
	require.Equal(t, want, r.activities)
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
