package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// Pay-per-use in the instance workflow: it starts the instance's metering,
// pauses it while frozen, flushes it before release, stops the service when
// a package that stops when used up runs out, and registers packages.

// flushTimeout bounds how long a release waits for the final usage flush
// (its five attempts are 15 minutes apart at most for hourly periods).
const flushTimeout = 20 * time.Minute

// receiveInternal queues a message from another workflow; the final-flush
// notice is only a flag the release waits on.
func (p payPerUse) receive(in Internal) {
	w := p.w
	if in.Kind == InternalMeteringFlushed {
		w.meteringFlushed = true
		return
	}
	w.internal = append(w.internal, in)
}

// handleInternal stops or resumes the service for a package's quota.
func (p payPerUse) handle(ctx workflow.Context, in Internal) {
	w := p.w
	w.appliedThisRun++
	key := fmt.Sprintf("internal/%s/%d", in.Kind, w.s.Revision+1)
	switch in.Kind {
	case InternalQuotaExhausted:
		switch w.s.State {
		case StateActive, StateGrace:
			w.freeze(ctx, key, FrozenByQuota, fmt.Sprintf(
				"Package %s is used up: the service stops until a new package is bought (用完即停); the data is kept.", in.Package))
			w.save(ctx)
		}
	case InternalQuotaRestored:
		if (w.s.State == StateFrozen) && w.s.FrozenBy == FrozenByQuota {
			why, msg := "a new package was bought", "A new package covers the instance: the service resumes."
			if in.Reset != "" {
				why = "the package's quota was reset"
				msg = fmt.Sprintf("Package %s's content reset (%s): its quota is back and the service resumes.", in.Package, in.Reset)
			}
			if w.steps.tenant(ctx, StepUnfreeze, acts.Unfreeze, why) == stepAborted {
				return
			}
			w.unfrozen(ctx)
			w.record(ctx, key, string(w.s.State), msg)
			w.save(ctx)
		}
	}
}

// startPayPerUse starts the metering of a pay-per-use instance, or registers
// a package's quota, once the tenant exists. Debug instances are neither
// metered nor registered: nothing real must reach the marketplace's bills.
func (p payPerUse) start(ctx workflow.Context, order Order) {
	w := p.w
	if w.s.Debug {
		return
	}
	switch order.ChargingMode {
	case "ON_DEMAND":
		period := w.s.Policy.MeteringPeriod
		if period <= 0 {
			period = time.Hour
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: MeteringWorkflowID(w.s.InstanceID),
			// The metering outlives this run (continue-as-new) and ends
			// itself after the final flush.
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		})
		child := workflow.ExecuteChildWorkflow(cctx, MeteringWorkflowName, MeteringInput{
			InstanceID: w.s.InstanceID, Period: period, PushDelay: w.s.Policy.MeteringPushDelay, From: workflow.Now(ctx),
		})
		if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("Metering not started", "error", err)
			w.record(ctx, "metering/not-started", "metering", "The usage metering could not start: "+errorMessage(err))
			return
		}
		w.s.Metered = true
		w.record(ctx, "metering/started", "metering", fmt.Sprintf(
			"Usage metering started: periods of %s, pushed %s after each period ends.", period, w.s.Policy.MeteringPushDelay))
	case "ON_DEMAND_PKG":
		quota := int64(0)
		if order.LinearValue != nil {
			quota = *order.LinearValue
		}
		var covered []string
		err := execute(ctx, saveOptions, acts.RegisterPackage, activities.RegisterPackageInput{
			PackageInstanceID: w.s.InstanceID, CustomerID: order.CustomerID, SkuCode: order.SkuCode, Quota: quota,
		}).Get(ctx, &covered)
		if err != nil {
			w.record(ctx, "package/not-registered", "package", "The package could not be registered: "+errorMessage(err))
			return
		}
		w.s.Package = true
		w.record(ctx, "package/registered", "package", fmt.Sprintf(
			"Package of %d units registered for customer %s, sku %s; it covers %d pay-per-use instance(s).",
			quota, order.CustomerID, order.SkuCode, len(covered)))
		p.startCycles(ctx)
		// An instance stopped for quota resumes; the others ignore it.
		p.tellCovered(ctx, covered, "")
	}
}

// meter sends a control to the instance's metering.
func (p payPerUse) meter(ctx workflow.Context, kind string) {
	w := p.w
	if !w.s.Metered {
		return
	}
	err := workflow.SignalExternalWorkflow(ctx, MeteringWorkflowID(w.s.InstanceID), "", MeteringSignal,
		MeteringControl{Kind: kind, At: workflow.Now(ctx)}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("Metering not told", "kind", kind, "error", err)
	}
}

// flushUsage has the metering push the last partial period before the
// tenant is released, and waits for it (at most flushTimeout).
func (p payPerUse) flush(ctx workflow.Context) {
	w := p.w
	if !w.s.Metered {
		return
	}
	w.payPerUse.meter(ctx, MeterStop)
	ok, err := workflow.AwaitWithTimeout(ctx, flushTimeout, func() bool { return w.meteringFlushed })
	if err == nil && !ok {
		w.record(ctx, fmt.Sprintf("metering/flush-timeout/%d", w.s.Revision+1), "metering",
			"The final usage flush did not finish in time; releasing anyway. Check the usage for pending periods.")
	}
	w.s.Metered = false
}

// closePackage stops a released package from covering instances.
func (p payPerUse) closePackage(ctx workflow.Context) {
	w := p.w
	if !w.s.Package {
		return
	}
	if err := execute(ctx, saveOptions, acts.DeactivatePackage, w.s.InstanceID).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("Package not deactivated", "error", err)
	}
	w.s.Package = false
}
