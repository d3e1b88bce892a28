package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// Steps that can park, as shown in Parked.Step.
const (
	StepFetchOrder = "fetch-order"
	StepProvision  = "provision"
	StepFreeze     = "freeze"
	StepUnfreeze   = "unfreeze"
	StepUpgrade    = "upgrade"
	StepRelease    = "release"
	StepDirectory  = "directory"
	StepLicense    = "license"
)

// stepOutcome is how a step ended.
type stepOutcome int

const (
	stepDone    stepOutcome = iota // the activity succeeded
	stepSkipped                    // an operator skipped it: done by hand, or abandoned
	stepAborted                    // a release took over; the caller changes nothing
)

// runStep runs an activity until it succeeds. When it fails for good (a
// non-retryable error, or its retries used up) the instance parks: it shows
// state parked with the error, raises an alert, and waits for an operator's
// retry or skip, or for a release that makes the step moot.
func (r stepRunner) run(ctx workflow.Context, step string, p activityPolicy, activity, input, result any) stepOutcome {
	w := r.w
	for {
		err := execute(ctx, p, activity, input).Get(ctx, result)
		if err == nil {
			return stepDone
		}
		switch w.steps.park(ctx, step, err) {
		case resumeRetry:
			continue
		case resumeSkip:
			return stepSkipped
		default:
			return stepAborted
		}
	}
}

type resumption int

const (
	resumeRetry resumption = iota
	resumeSkip
	resumeAbort
)

// park shows the failed step and waits for its resolution. Actions that do
// not need the tenant (extend-grace, set-policy) are carried out meanwhile;
// the others are refused until the step is resolved. Timers wait too:
// nothing automatic happens to a parked instance.
func (r stepRunner) park(ctx workflow.Context, step string, err error) resumption {
	w := r.w
	resume := w.s.State
	w.s.Parked = &Parked{Step: step, Error: errorMessage(err), Since: workflow.Now(ctx), ResumeState: resume}
	w.s.State = StateParked
	msg := fmt.Sprintf("Step %s failed and is parked until an operator retries or skips it: %s", step, w.s.Parked.Error)
	w.record(ctx, fmt.Sprintf("parked/%d", w.s.Revision+1), "parked", msg)
	w.save(ctx)
	w.alert(ctx, "parked", msg)

	unpark := func() {
		w.s.State = resume
		w.s.Parked = nil
	}
	for {
		if err := workflow.Await(ctx, func() bool { return len(w.ops) > 0 || (step != StepRelease && w.releasePending()) }); err != nil {
			unpark()
			return resumeAbort
		}
		if step != StepRelease && w.releasePending() {
			w.record(ctx, fmt.Sprintf("unparked/%d", w.s.Revision+1), "unparked",
				fmt.Sprintf("Parked step %s abandoned: the marketplace released the instance.", step))
			unpark()
			return resumeAbort
		}
		op := w.ops[0]
		w.ops = w.ops[1:]
		w.appliedThisRun++
		switch op.Name {
		case OpRetry:
			w.supervision.accept(ctx, op, fmt.Sprintf("Retrying step %s.", step))
			unpark()
			w.save(ctx)
			return resumeRetry
		case OpSkip:
			w.supervision.accept(ctx, op, fmt.Sprintf("Step %s skipped.", step))
			unpark()
			return resumeSkip
		case OpForceRelease:
			if step == StepRelease {
				w.supervision.accept(ctx, op, "Retrying the release.")
				unpark()
				w.save(ctx)
				return resumeRetry
			}
			// The release runs once the step is abandoned.
			w.ops = slices.Insert(w.ops, 0, op)
			w.appliedThisRun--
			unpark()
			return resumeAbort
		case OpExtendGrace, OpSetPolicy:
			w.handleOperator(ctx, op)
		default:
			w.supervision.reject(ctx, op, fmt.Sprintf("the instance is parked on step %s; retry or skip it first", step))
			w.save(ctx)
		}
	}
}

// releasePending reports whether a releaseInstance that would be applied is
// waiting.
func (w *instanceWorkflow) releasePending() bool {
	return slices.ContainsFunc(w.pending, func(cb Callback) bool {
		return cb.Activity == ActivityReleaseInstance && (!cb.Debug || w.s.Debug)
	})
}

// alert tells operators about something that needs them. An alert that
// cannot be sent is logged by the activity and does not stop the workflow.
func (w *instanceWorkflow) alert(ctx workflow.Context, kind, message string) {
	err := execute(ctx, alertOptions, acts.Alert, activities.AlertInput{
		InstanceID: w.s.InstanceID, Kind: kind, Message: message,
	}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("Alert not sent", "kind", kind, "error", err)
	}
}

// provision fetches the order, settles the policy and creates the tenant.
func (r stepRunner) provision(ctx workflow.Context) {
	w := r.w
	if w.s.LastCallbackAt.IsZero() {
		w.s.LastCallbackAt = workflow.Now(ctx)
	}
	w.record(ctx, "provisioning/started", "provisioning", fmt.Sprintf(
		"Provisioning started for order %s line %s.", w.s.OrderID, w.s.OrderLineID))
	w.save(ctx)

	order, ok := w.steps.fetchOrder(ctx)
	if !ok {
		return
	}
	w.s.Order = &order
	w.s.ExpireTime = order.ExpireTime
	w.record(ctx, "provisioning/order", "order", describeOrder(order))

	if err := execute(ctx, policyOptions, acts.Policy,
		activities.PolicyInput{Order: order, Debug: w.s.Debug}).Get(ctx, &w.s.Policy); err != nil {
		// Only cancellation ends the unlimited retry of a local read.
		workflow.GetLogger(ctx).Error("Policy not read", "error", err)
	}

	var app AppInfo
	switch w.steps.run(ctx, StepProvision, tenantOptions(w.s.Policy), acts.Provision, activities.ProvisionInput{
		InstanceID: w.s.InstanceID, Order: order, Debug: w.s.Debug,
	}, &app) {
	case stepSkipped:
		w.steps.abandon(ctx, "Provisioning abandoned by an operator.")
		return
	case stepAborted:
		w.steps.abandon(ctx, "Provisioning abandoned: the instance is being released.")
		return
	}
	w.s.AppInfo = &app
	w.s.Reason = ""
	w.payPerUse.start(ctx, order)
	now := workflow.Now(ctx)
	if w.s.Policy.Supervised && !w.s.Debug {
		if workflow.GetVersion(ctx, supervisionFlowChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			w.s.Supervision = &Supervision{}
			w.s.State = StateAwaitingDelivery
			w.record(ctx, "provisioning/done", "provisioned",
				"Tenant provisioned. The product is supervised: awaiting the merchant's confirmation of delivery.")
		} else {
			w.s.Supervision = &Supervision{Flow: SupervisionFlowRequirements}
			w.s.State = StateAwaitingRequirements
			msg := "Tenant provisioned. The product is supervised: awaiting the buyer's requirements, then the merchant's confirmation of them and of the delivery"
			if w.s.reviewed() {
				msg += ", which Huawei Cloud reviews"
			}
			w.record(ctx, "provisioning/done", "provisioned", msg+".")
		}
	} else {
		w.s.State = w.s.serviceState(now)
		w.record(ctx, "provisioning/done", "provisioned", "Tenant provisioned; the instance is "+string(w.s.State)+".")
	}
	w.save(ctx)
}

// fetchOrder reads the order line through Query Order, parking when it
// cannot. A debug call's order may not exist at all (the console debugger
// invents order IDs), so a debug instance goes on with what it has.
func (r stepRunner) fetchOrder(ctx workflow.Context) (Order, bool) {
	w := r.w
	var order Order
	input := activities.FetchOrderInput{OrderID: w.s.OrderID, OrderLineID: w.s.OrderLineID}
	if w.s.Debug {
		err := execute(ctx, debugOrderOptions, acts.FetchOrder, input).Get(ctx, &order)
		if err != nil {
			w.record(ctx, "provisioning/debug-order", "order", fmt.Sprintf(
				"Debug call: Query Order failed (%s); provisioning a disposable tenant without order details.", errorMessage(err)))
			order = Order{OrderID: w.s.OrderID, OrderLineID: w.s.OrderLineID}
		}
		return order, true
	}
	input.ClaimFor = w.s.InstanceID
	switch w.steps.run(ctx, StepFetchOrder, orderOptions, acts.FetchOrder, input, &order) {
	case stepSkipped:
		w.steps.abandon(ctx, "Provisioning abandoned by an operator: the order could not be read.")
		return Order{}, false
	case stepAborted:
		w.steps.abandon(ctx, "Provisioning abandoned: the instance is being released.")
		return Order{}, false
	}
	return order, true
}

// abandon ends provisioning without a tenant.
func (r stepRunner) abandon(ctx workflow.Context, reason string) {
	w := r.w
	w.s.State = StateFailed
	w.s.Reason = reason
	w.record(ctx, fmt.Sprintf("failed/%d", w.s.Revision+1), "failed", reason)
	w.save(ctx)
}

// tenantStep runs a freeze, unfreeze or release of the tenant.
//
// Each call is a distinct operation with its own idempotency key (FREEZE,
// UNFREEZE, FREEZE: two freezes, two keys); only the retries of one call,
// automatic or by an operator, share its key, so an application that
// deduplicates on the key never skips a real operation.
func (r stepRunner) tenant(ctx workflow.Context, step string, activity func(context.Context, activities.TenantInput) error, reason string) stepOutcome {
	w := r.w
	w.s.TenantOps++
	return w.steps.run(ctx, step, withRetryLimit(tenantSwitchOptions, w.s.Policy), activity, activities.TenantInput{
		InstanceID: w.s.InstanceID, Debug: w.s.Debug, Reason: reason,
		OperationID: fmt.Sprintf("%s:%s:%d", step, w.s.InstanceID, w.s.TenantOps),
	}, nil)
}

// Activity options, chosen per kind of step.
type activityPolicy struct {
	startToClose    time.Duration
	scheduleToClose time.Duration // 0: retry without limit
	maxInterval     time.Duration
	// heartbeat, when set, is how long Temporal waits without a heartbeat
	// before it retries the activity on another worker; the activity must
	// heartbeat while it runs.
	heartbeat time.Duration
	// local runs the activity inside the workflow task (a local activity):
	// no activity task travels through Temporal, so a callback's steps and
	// its save cost one workflow task instead of three tasks each. For
	// calls that take seconds, not minutes. A worker that dies during one
	// is noticed by the workflow task's timeout, and another worker runs
	// the step again; every activity is idempotent.
	local bool
}

var (
	// Query Order: quick calls; keep trying for a while when the open API
	// is down, since nothing can be provisioned without the order.
	orderOptions = activityPolicy{startToClose: 30 * time.Second, scheduleToClose: 30 * time.Minute, maxInterval: time.Minute, local: true}
	// A debug call's order may not exist: give up quickly.
	debugOrderOptions = activityPolicy{startToClose: 30 * time.Second, scheduleToClose: 2 * time.Minute, maxInterval: 30 * time.Second, local: true}
	// The merchant's application may be slow or briefly down; an hour of
	// retries (Policy.TenantRetryLimit) covers a deploy or an outage without
	// hiding a broken one. Creating a tenant (or changing its spec) may take
	// minutes, so it is an activity of its own, and a worker that dies
	// during one is noticed by the heartbeat, not the start-to-close
	// timeout: the call resumes on another worker in seconds.
	provisionerOptions = activityPolicy{startToClose: 2 * time.Minute, scheduleToClose: time.Hour,
		maxInterval: 5 * time.Minute, heartbeat: 15 * time.Second}
	// Freezing, unfreezing and deleting a tenant are quick switches in the
	// merchant's application (docs/provisioner.md), and an expiry storm
	// brings thousands at once: they run as local activities, with the
	// same retries.
	tenantSwitchOptions = activityPolicy{startToClose: 2 * time.Minute, scheduleToClose: time.Hour,
		maxInterval: 5 * time.Minute, local: true}
	// A 联营 kit sync tells the merchant's application about an enterprise,
	// its app credential, users or departments: a call like provisioning,
	// as long as a list of users may take, retried as long.
	directoryOptions = activityPolicy{startToClose: 2 * time.Minute, scheduleToClose: time.Hour,
		maxInterval: 5 * time.Minute, heartbeat: 15 * time.Second}
	// An online licence: the merchant's generator issues it and the open
	// API takes the upload; both are quick, retried like a kit sync.
	licenseOptions = activityPolicy{startToClose: 2 * time.Minute, scheduleToClose: time.Hour,
		maxInterval: 5 * time.Minute, heartbeat: 15 * time.Second}
	// changeInstanceCheck is answered synchronously: the marketplace waits
	// about 20 s (contract §1.0).
	changeCheckOptions = activityPolicy{startToClose: 10 * time.Second, scheduleToClose: 15 * time.Second, maxInterval: 2 * time.Second}
	// The read model and the policy are local and must eventually be read
	// or written, whatever the wait.
	saveOptions   = activityPolicy{startToClose: 15 * time.Second, maxInterval: 30 * time.Second, local: true}
	policyOptions = activityPolicy{startToClose: 10 * time.Second, maxInterval: 30 * time.Second, local: true}
	// An alert is worth a few tries, not a stuck workflow.
	alertOptions = activityPolicy{startToClose: 15 * time.Second, scheduleToClose: 2 * time.Minute, maxInterval: 30 * time.Second}
)

// withRetryLimit is p retried for as long as the instance's policy says
// (an hour for instances whose policy predates the setting).
func withRetryLimit(p activityPolicy, policy Policy) activityPolicy {
	if limit := policy.TenantRetryLimit; limit > 0 {
		p.scheduleToClose = limit
	}
	return p
}

// tenantOptions are the options of provisioning and upgrades.
func tenantOptions(policy Policy) activityPolicy {
	return withRetryLimit(provisionerOptions, policy)
}

// unlimited stands for "no limit" where a local activity needs one: a local
// activity without a schedule-to-close timeout would get one attempt.
const unlimited = 100 * 365 * 24 * time.Hour

// execute starts an activity, named by its method on *activities.Activities
// (acts.Freeze), under policy p: as a local activity when p says so.
func execute(ctx workflow.Context, p activityPolicy, activity, input any) workflow.Future {
	retry := &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    p.maxInterval,
	}
	if p.local {
		scheduleToClose := p.scheduleToClose
		if scheduleToClose == 0 {
			scheduleToClose = unlimited
		}
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout:    p.startToClose,
			ScheduleToCloseTimeout: scheduleToClose,
			RetryPolicy:            retry,
		}), activity, input)
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    p.startToClose,
		ScheduleToCloseTimeout: p.scheduleToClose,
		HeartbeatTimeout:       p.heartbeat,
		RetryPolicy:            retry,
	}), activity, input)
}

// errorMessage is the innermost application error's message: what the
// activity said, without Temporal's wrapping.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "timed out (" + timeoutErr.TimeoutType().String() + ")"
	}
	return err.Error()
}

func describeOrder(o Order) string {
	s := fmt.Sprintf("Order %s line %s: %s %s, %s", o.OrderID, o.OrderLineID, o.OrderType, o.ChargingMode, describeSpec(o))
	if o.PeriodType != "" {
		s += fmt.Sprintf(", %d %s", o.PeriodNumber, o.PeriodType)
	}
	if o.ExpireTime != nil {
		s += ", expires " + formatTime(*o.ExpireTime)
	}
	return s + "."
}

func describeSpec(o Order) string {
	s := fmt.Sprintf("sku %s product %s", o.SkuCode, o.ProductID)
	if o.LinearValue != nil {
		s += fmt.Sprintf(" quantity %d", *o.LinearValue)
	}
	return s
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
