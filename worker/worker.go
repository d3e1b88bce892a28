// Package worker registers every workflow and activity of the server with a
// Temporal worker, in one visible list, prepares the namespace (the search
// attributes the workflows set), and exports the SDK's metrics to
// Prometheus.
package worker

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// New returns a worker for the task queue with every workflow and activity
// registered. Start it with Run or Start.
func New(c client.Client, taskQueue string, acts *activities.Activities, opts sdkworker.Options) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, opts)
	Register(w, acts)
	return w
}

// Options are the worker settings of the server: the SDK's defaults (two
// pollers of each kind). Pollers that scale with the backlog (the SDK's
// autoscaling behaviour) took workflow tasks faster but, on the benchmark's
// two cores shared with Temporal and PostgreSQL, stretched the answers' p99
// from about 35 ms to 50–58 ms and the storm's freeze from 147 s to 191 s
// (docs/benchmarks.md); where Temporal and the worker have machines of their
// own, measure again before changing this.
func Options() sdkworker.Options { return sdkworker.Options{} }

// Register registers the workflows and activities on any registry: a
// worker, or a test environment. Every exported method of *Activities is an
// activity, registered under its method name, which is the name the
// workflows' method values resolve to (acts.Freeze is "Freeze"). Running
// workflows' histories hold these names: a method is never renamed.
func Register(r interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}, acts *activities.Activities) {
	r.RegisterWorkflowWithOptions(workflows.InstanceWorkflow, workflow.RegisterOptions{Name: workflows.InstanceWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.MeteringWorkflow, workflow.RegisterOptions{Name: workflows.MeteringWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.UsageCollectorWorkflow, workflow.RegisterOptions{Name: workflows.UsageCollectorWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.LicenseCodeWorkflow, workflow.RegisterOptions{Name: workflows.LicenseCodeWorkflowName})
	r.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
}

// EnsureSearchAttributes registers the workflows' custom search attributes
// in the namespace when they are missing, so that a fresh server needs no
// manual set-up before the Temporal UI can filter by state.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	want := workflows.SearchAttributeTypes()
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	for name := range want {
		if _, ok := have.GetCustomAttributes()[name]; ok {
			delete(want, name)
		}
	}
	if len(want) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: want,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("add search attributes to namespace %s: %w", namespace, err)
	}
	return nil
}

// EnsureUsageCollector starts the usage collector (UsageCollectorWorkflow)
// of the deployment whose workers poll taskQueue unless it runs already:
// one per deployment, however many of its servers start it. A running
// collector is given this server's metering settings, which apply from its
// next pass.
func EnsureUsageCollector(ctx context.Context, c client.Client, taskQueue string, in workflows.UsageCollectorInput) error {
	_, err := c.SignalWithStartWorkflow(ctx, workflows.UsageCollectorWorkflowID(taskQueue), workflows.UsageCollectorSettingsSignal,
		workflows.UsageCollectorSettings{Period: in.Period, PushDelay: in.PushDelay},
		client.StartWorkflowOptions{
			ID:                    workflows.UsageCollectorWorkflowID(taskQueue),
			TaskQueue:             taskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		}, workflows.UsageCollectorWorkflowName, in)
	if err != nil {
		return fmt.Errorf("start the usage collector: %w", err)
	}
	return nil
}
