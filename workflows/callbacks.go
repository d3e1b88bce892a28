package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// apply carries out one marketplace callback and saves the result. The key
// counts as applied from the start, so that a redelivery arriving while the
// callback's steps run is recognised as a duplicate.
func (w *instanceWorkflow) apply(ctx workflow.Context, cb Callback) {
	w.s.markApplied(cb.Key)
	w.appliedThisRun++
	key := "callback/" + cb.Key
	switch {
	case cb.Debug && !w.s.Debug && cb.Activity != ActivityNewInstance:
		// The console's debugger and daily probing must never change a
		// real purchase.
		w.record(ctx, key, "ignored", fmt.Sprintf("Debug %s on a real instance; nothing changed.", cb.Activity))
	case cb.Activity == ActivityNewInstance:
		w.record(ctx, key, "callback", "newInstance received.")
	case cb.Activity == ActivityRefreshInstance:
		w.applyRefresh(ctx, key, cb)
	case cb.Activity == ActivityUpdateInstanceStatus:
		w.applyStatus(ctx, key, cb)
	case cb.Activity == ActivityReleaseInstance:
		w.applyRelease(ctx, key, cb)
	case cb.Activity == ActivityUpgradeInstance:
		w.applyUpgrade(ctx, key, cb)
	case activities.IsKitSync(cb.Activity):
		w.steps.directory(ctx, key, cb)
	case cb.Activity == ActivityGetLicenseAsync:
		w.steps.license(ctx, key, cb)
	default:
		w.record(ctx, key, "ignored", fmt.Sprintf("Callback %s is not for instance workflows; ignored.", cb.Activity))
	}
	w.save(ctx)
}

// applyRefresh moves the expiry: renewal (also during freeze or retention,
// where the marketplace counts from the old expiry), trial to formal, or a
// refunded renewal period. Only the newest expiry change counts: an older
// one delivered late is recorded and skipped. A tenant the server froze
// itself is unfrozen at once by a renewal (the marketplace, which never
// froze it, will send no UNFREEZE); one the marketplace froze waits for its
// UNFREEZE, for at most the freeze grace, unless the renewal came through
// V1, which has no UNFREEZE.
func (w *instanceWorkflow) applyRefresh(ctx workflow.Context, key string, cb Callback) {
	if w.refreshIsStale(ctx, cb) {
		w.record(ctx, key, "ignored", fmt.Sprintf(
			"refreshInstance %s (order %s) was sent before the expiry change already applied; ignored.", cb.Scene, cb.OrderID))
		return
	}
	w.s.LastRefreshSeq = cb.Seq
	if !cb.SentAt.IsZero() {
		w.s.LastRefreshSentAt = cb.SentAt
	}
	previous := "none"
	if w.s.ExpireTime != nil {
		previous = formatTime(*w.s.ExpireTime)
	}
	w.s.setExpiry(cb.ExpireTime)
	if o := w.s.Order; o != nil {
		if cb.ProductID != "" {
			o.ProductID = cb.ProductID
		}
		if cb.Scene == "TRIAL_TO_FORMAL" {
			o.OrderType = "TRIAL_TO_FORMAL"
		}
	}
	msg := fmt.Sprintf("refreshInstance %s (order %s): expiry %s → %s.", cb.Scene, cb.OrderID, previous, formatTime(cb.ExpireTime))
	switch w.s.State {
	case StateActive, StateGrace:
		w.s.State = w.s.serviceState(workflow.Now(ctx))
		w.record(ctx, key, "expiry", msg)
	case StateFrozen, StateReleaseOverdue:
		w.refreshFrozen(ctx, key, msg, cb)
	default:
		w.record(ctx, key, "expiry", msg)
	}
}

// refreshFrozen applies an expiry change to a frozen tenant: a renewal
// unfreezes what the server froze itself (or, through V1, what the
// marketplace froze); a marketplace freeze waits for its UNFREEZE.
func (w *instanceWorkflow) refreshFrozen(ctx workflow.Context, key, msg string, cb Callback) {
	now := workflow.Now(ctx)
	switch {
	case !cb.ExpireTime.After(now):
		w.record(ctx, key, "expiry", msg+" Still expired; the tenant stays frozen.")
	case w.s.FrozenBy == FrozenByExpiry:
		w.unfreezeRenewed(ctx, key, msg, "Renewed after the server froze the expired tenant: unfrozen by the server.")
	case w.s.FrozenBy == FrozenByOperator:
		w.s.State = StateFrozen
		w.record(ctx, key, "expiry", msg+" The tenant stays frozen: an operator froze it.")
	case cb.V1 && workflow.GetVersion(ctx, v1RenewalUnfreezeChange, workflow.DefaultVersion, 1) == 1:
		// V1 has no UNFREEZE to wait for (contract §1.12): the renewal
		// itself restores what expireInstance froze.
		w.unfreezeRenewed(ctx, key, msg, "Renewed through V1, which sends no UNFREEZE: unfrozen by the server.")
	default:
		due := now.Add(w.s.Policy.FreezeGrace)
		w.s.State, w.s.UnfreezeDueAt = StateFrozen, &due
		w.record(ctx, key, "expiry", fmt.Sprintf("%s The marketplace's UNFREEZE is expected by %s.", msg, formatTime(due)))
	}
}

// unfreezeRenewed unfreezes a renewed tenant and records why.
func (w *instanceWorkflow) unfreezeRenewed(ctx workflow.Context, key, msg, reason string) {
	if w.steps.tenant(ctx, StepUnfreeze, acts.Unfreeze, reason) == stepAborted {
		w.record(ctx, key, "expiry", msg)
		return
	}
	w.unfrozen(ctx)
	w.record(ctx, key, "expiry", msg+" "+reason)
}

// v1RenewalUnfreezeChange is the GetVersion change ID of a V1 renewal
// restoring an instance the marketplace froze. It is asked only for V1
// callbacks, which histories recorded before it never hold.
const v1RenewalUnfreezeChange = "v1-renewal-unfreezes"

// refreshOrderChange is the GetVersion change ID of ordering expiry changes
// by when the marketplace sent them rather than by when they were recorded.
const refreshOrderChange = "refresh-ordered-by-sent-at"

// refreshIsStale reports whether an expiry change is older than the one
// applied last. Callbacks spooled on different replicas while the database
// was away are recorded (and numbered) in whatever order the replicas drain
// their spools, so a renewal can be recorded after its own refund; the
// marketplace's signed send time says which came first. Without it (older
// callbacks, equal times) the arrival number decides.
//
// The version is asked only where the two orders disagree: a GetVersion
// costs the history a marker and a search-attribute upsert, and a run
// replayed from a history that recorded it at an earlier refresh still
// finds it (version markers are read ahead and never matched by position).
func (w *instanceWorkflow) refreshIsStale(ctx workflow.Context, cb Callback) bool {
	byArrival := cb.Seq < w.s.LastRefreshSeq
	last := w.s.LastRefreshSentAt
	if cb.SentAt.IsZero() || last.IsZero() || cb.SentAt.Equal(last) {
		return byArrival
	}
	bySending := cb.SentAt.Before(last)
	if bySending == byArrival ||
		workflow.GetVersion(ctx, refreshOrderChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return byArrival
	}
	return bySending
}

// applyStatus freezes or unfreezes the tenant. Freezing keeps its data.
func (w *instanceWorkflow) applyStatus(ctx workflow.Context, key string, cb Callback) {
	if cb.Seq < w.s.LastStatusSeq {
		w.record(ctx, key, "ignored", fmt.Sprintf("%s arrived after a newer status change; ignored.", cb.Status))
		return
	}
	w.s.LastStatusSeq = cb.Seq
	switch cb.Status {
	case "FREEZE":
		w.freeze(ctx, key, FrozenByMarketplace, "Frozen by the marketplace (FREEZE).")
	case "UNFREEZE":
		if w.s.State != StateFrozen && w.s.State != StateReleaseOverdue {
			w.record(ctx, key, "callback", fmt.Sprintf("UNFREEZE while %s: nothing to do.", w.s.State))
			return
		}
		if w.steps.tenant(ctx, StepUnfreeze, acts.Unfreeze, "marketplace UNFREEZE") == stepAborted {
			return
		}
		w.unfrozen(ctx)
		w.record(ctx, key, string(w.s.State), "Unfrozen by the marketplace (UNFREEZE).")
	default:
		w.record(ctx, key, "ignored", fmt.Sprintf("Unknown status %q; ignored.", cb.Status))
	}
}

// freeze makes a usable tenant unusable, or records who holds an already
// frozen one.
func (w *instanceWorkflow) freeze(ctx workflow.Context, key, by, reason string) {
	switch w.s.State {
	case StateFrozen, StateReleaseOverdue:
		w.s.FrozenBy, w.s.UnfreezeDueAt = by, nil
		w.record(ctx, key, "callback", reason+" It was already frozen.")
		return
	case StateProvisioning, StateFailed, StateReleased, StateParked:
		w.record(ctx, key, "callback", fmt.Sprintf("%s Nothing to freeze while %s.", reason, w.s.State))
		return
	}
	if w.steps.tenant(ctx, StepFreeze, acts.Freeze, reason) == stepAborted {
		return
	}
	w.s.State, w.s.FrozenBy, w.s.UnfreezeDueAt, w.s.Reason = StateFrozen, by, nil, reason
	w.payPerUse.meter(ctx, MeterPause)
	w.record(ctx, key, "frozen", reason+" Its data is kept.")
}

// applyRelease deletes the tenant: the only destructive step.
func (w *instanceWorkflow) applyRelease(ctx workflow.Context, key string, cb Callback) {
	why := "end of retention"
	if cb.OrderID != "" {
		why = "unsubscription order " + cb.OrderID
	}
	w.release(ctx, key, fmt.Sprintf("Released by the marketplace (%s).", why))
}

// release deletes the tenant, after the last partial usage period of a
// pay-per-use instance is pushed. It reports whether it did.
func (w *instanceWorkflow) release(ctx workflow.Context, key, reason string) bool {
	w.payPerUse.flush(ctx)
	if w.steps.tenant(ctx, StepRelease, acts.Release, reason) == stepAborted {
		return false
	}
	w.payPerUse.closePackage(ctx)
	if w.dropsDirectory(ctx) {
		// The directory the 联营 kit synchronised is the buyer's data too.
		_ = execute(ctx, saveOptions, acts.DropDirectory, w.s.InstanceID).Get(ctx, nil)
	}
	w.s.State, w.s.Reason, w.s.Parked = StateReleased, reason, nil
	w.record(ctx, key, "released", reason+" Its data is deleted.")
	return true
}

// dropsDirectory reports whether a release drops the instance's 联营
// directory: when it has one, if the workflow knows (DirectoryKnown);
// otherwise as the version of the run decides.
func (w *instanceWorkflow) dropsDirectory(ctx workflow.Context) bool {
	if w.s.DirectoryKnown {
		return w.s.HasDirectory
	}
	return workflow.GetVersion(ctx, dropDirectoryChange, workflow.DefaultVersion, 1) == 1
}

// dropDirectoryChange is the GetVersion change ID of dropping the
// instance's directory on release; instances released before it had none.
const dropDirectoryChange = "drop-directory-on-release"

// applyUpgrade reads the upgrade order and applies its spec to the tenant.
func (w *instanceWorkflow) applyUpgrade(ctx workflow.Context, key string, cb Callback) {
	switch w.s.State {
	case StateProvisioning, StateFailed, StateReleased:
		w.record(ctx, key, "ignored", fmt.Sprintf("upgradeInstance while %s; ignored.", w.s.State))
		return
	}
	var order Order
	switch w.steps.run(ctx, StepFetchOrder, orderOptions, acts.FetchOrder,
		activities.FetchOrderInput{OrderID: cb.OrderID, OrderLineID: cb.OrderLineID}, &order) {
	case stepSkipped:
		w.record(ctx, key, "ignored", fmt.Sprintf("Upgrade order %s could not be read; skipped by an operator.", cb.OrderID))
		return
	case stepAborted:
		return
	}
	outcome := w.steps.run(ctx, StepUpgrade, tenantOptions(w.s.Policy), acts.Upgrade,
		activities.UpgradeInput{InstanceID: w.s.InstanceID, Debug: w.s.Debug, Order: order}, nil)
	if outcome == stepAborted {
		return
	}
	if o := w.s.Order; o != nil {
		o.SkuCode, o.ProductID, o.LinearValue = order.SkuCode, order.ProductID, order.LinearValue
	}
	if order.ExpireTime != nil && (w.s.ExpireTime == nil || !order.ExpireTime.Equal(*w.s.ExpireTime)) {
		w.s.setExpiry(*order.ExpireTime)
	}
	msg := fmt.Sprintf("Upgraded by order %s: %s.", cb.OrderID, describeSpec(order))
	if outcome == stepSkipped {
		msg = fmt.Sprintf("Upgrade by order %s (%s) recorded as done by hand (skipped by an operator).", cb.OrderID, describeSpec(order))
	}
	w.record(ctx, key, "upgraded", msg)
}

// checkChange answers changeInstanceCheck (contract §1.8) by asking the
// merchant's application whether the target spec fits the tenant.
func (w *instanceWorkflow) checkChange(ctx workflow.Context, req ChangeCheckRequest) (ChangeCheckResult, error) {
	switch w.s.State {
	case StateActive, StateGrace, StateFrozen:
	default:
		return ChangeCheckResult{Reason: fmt.Sprintf("The instance is %s; its spec cannot be changed.", w.s.State)}, nil
	}
	current := Order{}
	if w.s.Order != nil {
		current = *w.s.Order
	}
	var res ChangeCheckResult
	err := execute(ctx, changeCheckOptions, acts.CheckChange, activities.CheckChangeInput{
		InstanceID: w.s.InstanceID, Debug: w.s.Debug, Current: current, Target: req,
	}).Get(ctx, &res)
	if err != nil {
		return ChangeCheckResult{}, err
	}
	verdict := "allowed"
	if !res.Allowed {
		verdict = "rejected: " + res.Reason
	}
	w.record(ctx, "change-check/"+workflow.GetCurrentUpdateInfo(ctx).ID, "change-check",
		fmt.Sprintf("Change check to %s: %s.", describeTarget(req), verdict))
	w.save(ctx)
	return res, nil
}

func validateChangeCheck(ctx workflow.Context, req ChangeCheckRequest) error {
	if req.SkuCode == "" && req.ProductID == "" && req.LinearValue == nil {
		return errors.New("change check needs a target skuCode, productId or linearValue")
	}
	return nil
}

func describeTarget(t ChangeCheckRequest) string {
	return describeSpec(Order{SkuCode: t.SkuCode, ProductID: t.ProductID, LinearValue: t.LinearValue})
}
