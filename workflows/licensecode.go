package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// LicenseCodeWorkflowName is the registered name of LicenseCodeWorkflow.
const LicenseCodeWorkflowName = "LicenseCodeWorkflow"

// LicenseCodeWorkflowID is the workflow ID of a license code: every
// callback about the code reaches the same workflow.
func LicenseCodeWorkflowID(license string) string { return "license-code/" + license }

// ActivityActivateLicenseCode is the callback the inbox records with a
// code's activation: it starts the workflow and applies nothing more.
const ActivityActivateLicenseCode = "activateLicenseCode"

// LicenseCodeRetention is how long a frozen code's data is kept before the
// marketplace releases it (contract §13.5: 15 days).
const LicenseCodeRetention = 15 * 24 * time.Hour

// The workflow continues as new past licenseCodeHistoryLimit events or
// after licenseCodeChangesPerRun changes. A code sees a few callbacks a
// year, so this is reached only by a pathological stream of them.
// Variables so that tests can reach them quickly.
var (
	licenseCodeHistoryLimit  = 4000
	licenseCodeChangesPerRun = 200
)

// LicenseCodeInput starts a code's workflow with the code as activated,
// or continues one (Carried).
type LicenseCodeInput struct {
	License   string
	ProductID string     `json:",omitempty"`
	OrderID   string     `json:",omitempty"`
	ExpireAt  *time.Time `json:",omitempty"`
	// Status is the code's status at its activation, when the marketplace
	// reported it expired or released; empty: by its expiry.
	Status string `json:",omitempty"`
	// Carried is the state a continued run starts from.
	Carried *LicenseCodeSnapshot `json:",omitempty"`
}

// LicenseCodeSnapshot is a code workflow's state: what the state query
// returns and what continue-as-new carries.
type LicenseCodeSnapshot struct {
	License   string
	ProductID string `json:",omitempty"`
	OrderID   string `json:",omitempty"`
	// Status is active, expired, frozen or released (activities.LicenseCode*).
	Status      string
	ExpireAt    *time.Time `json:",omitempty"`
	FrozenAt    *time.Time `json:",omitempty"`
	ReleasedAt  *time.Time `json:",omitempty"`
	RetainUntil *time.Time `json:",omitempty"`
	// ExpirySentAt and StatusSentAt are the marketplace's send times of
	// the expiry and status changes applied last: an older one arriving
	// later changes nothing.
	ExpirySentAt time.Time `json:",omitzero"`
	StatusSentAt time.Time `json:",omitzero"`
	// Revision counts the changes; it keys each notification. Saves
	// counts the saves, which the read model keeps in order.
	Revision int64
	Saves    int64
	// Parked says why the application could not be told of the last
	// change; the workflow waits for an operator's retry or skip.
	Parked  string     `json:",omitempty"`
	Applied []string   `json:",omitempty"`
	Pending []Callback `json:",omitempty"`
}

// licenseCodeWorkflow is one code's lifecycle.
type licenseCodeWorkflow struct {
	s LicenseCodeSnapshot
	// changesThisRun counts the changes of this run (historyIsLong).
	changesThisRun int
	callbacks      workflow.ReceiveChannel
	operators      workflow.ReceiveChannel
}

// LicenseCodeWorkflow owns the lifecycle of one activated license code
// (contract §13.5): it tells the merchant's application of the
// activation, applies the marketplace's callbacks (renewal, refund of a
// renewal, FREEZE, UNFREEZE, release) once each and in arrival order,
// marks the code expired when its validity ends, and saves the code's
// state for the software's daily check. It ends when the code is released.
func LicenseCodeWorkflow(ctx workflow.Context, in LicenseCodeInput) error {
	w := &licenseCodeWorkflow{
		callbacks: workflow.GetSignalChannel(ctx, CallbackSignal),
		operators: workflow.GetSignalChannel(ctx, OperatorSignal),
	}
	if in.Carried != nil {
		w.s = *in.Carried
	} else {
		w.s = LicenseCodeSnapshot{License: in.License, ProductID: in.ProductID, OrderID: in.OrderID,
			Status: activities.LicenseCodeActive, ExpireAt: in.ExpireAt}
	}
	if err := workflow.SetQueryHandler(ctx, StateQuery, func() (LicenseCodeSnapshot, error) { return w.s, nil }); err != nil {
		return err
	}
	if in.Carried == nil {
		w.s.Status = w.statusAt(workflow.Now(ctx))
		if in.Status == activities.LicenseCodeExpired || in.Status == activities.LicenseCodeReleased {
			// Activated after its end: the application hears it as it is.
			w.s.Status = in.Status
		}
		w.change(ctx, activities.EventLicenseCodeActivated, in.OrderID, "the merchant's software activated the code")
	}
	for w.s.Status != activities.LicenseCodeReleased {
		if len(w.s.Pending) > 0 {
			cb := w.s.Pending[0]
			w.s.Pending = w.s.Pending[1:]
			w.apply(ctx, cb)
			continue
		}
		if w.historyIsLong(ctx) {
			w.drainCallbacks()
			carried := w.s
			return workflow.NewContinueAsNewError(ctx, LicenseCodeWorkflowName, LicenseCodeInput{License: w.s.License, Carried: &carried})
		}
		w.waitForWork(ctx)
	}
	// Released: what still arrives changes nothing; the inbox records it as
	// delivered to a closed workflow.
	return nil
}

// historyIsLong reports whether the run should continue as new.
func (w *licenseCodeWorkflow) historyIsLong(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > licenseCodeHistoryLimit ||
		w.changesThisRun >= licenseCodeChangesPerRun
}

// statusAt is the code's status at now when nothing froze or released it:
// active until its expiry, expired after.
func (w *licenseCodeWorkflow) statusAt(now time.Time) string {
	if w.s.ExpireAt != nil && !now.Before(*w.s.ExpireAt) {
		return activities.LicenseCodeExpired
	}
	return activities.LicenseCodeActive
}

// waitForWork waits for a callback or, for an active code, its expiry.
func (w *licenseCodeWorkflow) waitForWork(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(w.callbacks, func(c workflow.ReceiveChannel, _ bool) {
		var cb Callback
		c.Receive(ctx, &cb)
		w.queue(cb)
	})
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	if w.s.Status == activities.LicenseCodeActive && w.s.ExpireAt != nil {
		expired := false
		sel.AddFuture(workflow.NewTimer(timerCtx, w.s.ExpireAt.Sub(workflow.Now(ctx))), func(f workflow.Future) {
			expired = f.Get(ctx, nil) == nil
		})
		sel.Select(ctx)
		if expired && w.s.Status == activities.LicenseCodeActive {
			w.s.Status = activities.LicenseCodeExpired
			w.change(ctx, activities.EventLicenseCodeExpired, "", "the code's validity ended; the marketplace's grace period runs")
		}
		return
	}
	sel.Select(ctx)
}

// queue keeps a callback for applying, unless it was applied (or queued)
// already: the API and the relay may signal the same callback twice.
func (w *licenseCodeWorkflow) queue(cb Callback) {
	if slices.Contains(w.s.Applied, cb.Key) || slices.ContainsFunc(w.s.Pending, func(p Callback) bool { return p.Key == cb.Key }) {
		return
	}
	w.s.Pending = append(w.s.Pending, cb)
}

// drainCallbacks queues the callbacks signalled and not yet received, so
// that continue-as-new carries them.
func (w *licenseCodeWorkflow) drainCallbacks() {
	for {
		var cb Callback
		if !w.callbacks.ReceiveAsync(&cb) {
			return
		}
		w.queue(cb)
	}
}

// apply applies one callback (contract §13.5).
func (w *licenseCodeWorkflow) apply(ctx workflow.Context, cb Callback) {
	defer w.markApplied(cb.Key)
	switch koogallery.Activity(cb.Activity) {
	case koogallery.ActivityRefreshLicenseCode:
		w.applyRefresh(ctx, cb)
	case koogallery.ActivityUpdateLicenseCodeStatus:
		w.applyStatus(ctx, cb)
	case koogallery.ActivityReleaseLicenseCode:
		now := workflow.Now(ctx)
		w.s.Status, w.s.ReleasedAt, w.s.RetainUntil = activities.LicenseCodeReleased, &now, nil
		w.change(ctx, activities.EventLicenseCodeReleased, cb.OrderID, "the marketplace released the code: delete what it kept")
	case ActivityActivateLicenseCode:
		// The start told the application of the activation.
	default:
		workflow.GetLogger(ctx).Error("Callback not for a license code ignored", "activity", cb.Activity, "seq", cb.Seq)
	}
}

// applyRefresh moves the expiry: a renewal later, a refunded renewal
// earlier. A frozen code stays frozen until the marketplace's UNFREEZE.
func (w *licenseCodeWorkflow) applyRefresh(ctx workflow.Context, cb Callback) {
	if !cb.SentAt.IsZero() && cb.SentAt.Before(w.s.ExpirySentAt) {
		workflow.GetLogger(ctx).Info("Older expiry change ignored", "key", cb.Key)
		return
	}
	expireAt := cb.ExpireTime
	w.s.ExpireAt, w.s.ExpirySentAt = &expireAt, cb.SentAt
	if w.s.Status != activities.LicenseCodeFrozen {
		w.s.Status = w.statusAt(workflow.Now(ctx))
	}
	event, reason := activities.EventLicenseCodeRenewed, "renewed by order "+cb.OrderID
	if cb.Scene == string(koogallery.SceneUnsubscribeRenewalPeriod) {
		event, reason = activities.EventLicenseCodeRenewalRefunded, "a renewal period was refunded by order "+cb.OrderID
	}
	w.change(ctx, event, cb.OrderID, reason)
}

// applyStatus freezes or unfreezes the code. A change to the status the
// code already has, or older than the last one applied, changes nothing.
func (w *licenseCodeWorkflow) applyStatus(ctx workflow.Context, cb Callback) {
	if !cb.SentAt.IsZero() && cb.SentAt.Before(w.s.StatusSentAt) {
		workflow.GetLogger(ctx).Info("Older status change ignored", "key", cb.Key)
		return
	}
	w.s.StatusSentAt = cb.SentAt
	now := workflow.Now(ctx)
	switch frozen := w.s.Status == activities.LicenseCodeFrozen; {
	case cb.Status == string(koogallery.StatusFreeze) && !frozen:
		retainUntil := now.Add(LicenseCodeRetention)
		w.s.Status, w.s.FrozenAt, w.s.RetainUntil = activities.LicenseCodeFrozen, &now, &retainUntil
		w.change(ctx, activities.EventLicenseCodeFrozen, "", "the marketplace froze the code; its data is kept until it is released")
	case cb.Status == string(koogallery.StatusUnfreeze) && frozen:
		w.s.Status, w.s.FrozenAt, w.s.RetainUntil = w.statusAt(now), nil, nil
		w.change(ctx, activities.EventLicenseCodeUnfrozen, "", "the marketplace unfroze the code")
	}
}

func (w *licenseCodeWorkflow) markApplied(key string) {
	w.s.Applied = append(w.s.Applied, key)
	if len(w.s.Applied) > maxAppliedKeys {
		w.s.Applied = w.s.Applied[len(w.s.Applied)-maxAppliedKeys:]
	}
}

// Activity options of a code's steps: the application is told for as long
// as it takes (its outages are retried, its refusals wait for an
// operator); the state is saved locally.
var licenseCodeNotifyOptions = activityPolicy{startToClose: 2 * time.Minute, maxInterval: 5 * time.Minute}

// change tells the application of the code's new state, under a key of its
// own, and saves the state. A refusal parks the change until an operator
// retries it (after fixing the application) or skips it.
func (w *licenseCodeWorkflow) change(ctx workflow.Context, event, orderID, reason string) {
	w.s.Revision++
	w.changesThisRun++
	req := activities.LicenseCodeChange{
		License: w.s.License, OperationID: fmt.Sprintf("license-code:%s:%d", w.s.License, w.s.Revision),
		Event: event, Status: w.s.Status, ExpireTime: w.s.ExpireAt, ProductID: w.s.ProductID,
		OrderID: orderID, Reason: reason,
	}
	for {
		err := execute(ctx, licenseCodeNotifyOptions, acts.NotifyLicenseCode, req).Get(ctx, nil)
		if err == nil {
			w.s.Parked = ""
			break
		}
		w.s.Parked = fmt.Sprintf("the application refused the %s change: %v", event, err)
		w.save(ctx)
		if !w.awaitOperator(ctx) {
			w.s.Parked = ""
			break
		}
	}
	w.save(ctx)
}

// awaitOperator waits for an operator's retry (true) or skip (false) of a
// parked change, queueing the callbacks that arrive meanwhile.
func (w *licenseCodeWorkflow) awaitOperator(ctx workflow.Context) (retry bool) {
	for {
		var op OperatorRequest
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(w.operators, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &op) })
		sel.AddReceive(w.callbacks, func(c workflow.ReceiveChannel, _ bool) {
			var cb Callback
			c.Receive(ctx, &cb)
			w.queue(cb)
		})
		sel.Select(ctx)
		switch op.Name {
		case OpRetry:
			return true
		case OpSkip:
			return false
		}
	}
}

// save writes the code's state for the software's checks.
func (w *licenseCodeWorkflow) save(ctx workflow.Context) {
	w.s.Saves++
	st := activities.LicenseCodeState{
		License: w.s.License, Status: w.s.Status, ExpireTime: w.s.ExpireAt, FrozenAt: w.s.FrozenAt,
		ReleasedAt: w.s.ReleasedAt, RetainUntil: w.s.RetainUntil, LastError: w.s.Parked, Revision: w.s.Saves,
	}
	if err := execute(ctx, saveOptions, acts.SaveLicenseCode, st).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("License code state not saved", "license", w.s.License, "error", err)
	}
}
