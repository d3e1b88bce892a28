package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// handleOperator carries out an operator's action, or records why it was
// refused. Every action is recorded in the timeline with its reason.
func (w *instanceWorkflow) handleOperator(ctx workflow.Context, op OperatorRequest) {
	w.appliedThisRun++
	defer w.save(ctx)
	now := workflow.Now(ctx)
	state := w.s.State
	usable := slices.Contains([]State{StateActive, StateGrace, StateAwaitingDelivery, StateDelivered, StateAccepted, StateAppealed}, state)
	frozen := state == StateFrozen || state == StateReleaseOverdue

	switch op.Name {
	case OpRetry, OpSkip:
		w.supervision.reject(ctx, op, "nothing is parked")

	case OpExtendGrace:
		if op.Duration <= 0 {
			w.supervision.reject(ctx, op, "duration must be positive")
			return
		}
		if w.s.ExpireTime == nil || !(state == StateActive || state == StateGrace || frozen || state == StateParked) {
			w.supervision.reject(ctx, op, fmt.Sprintf("the instance is %s without an expiry to extend", state))
			return
		}
		w.s.GraceExtension += op.Duration
		msg := fmt.Sprintf("Freeze and release deadlines of expiry %s extended by %s (%s in all).",
			formatTime(*w.s.ExpireTime), op.Duration, w.s.GraceExtension)
		if state == StateReleaseOverdue && now.Before(w.s.ExpireTime.Add(w.s.Policy.Retention+w.s.GraceExtension)) {
			w.s.State = StateFrozen
			msg += " Retention runs again: the instance is frozen, no longer overdue."
		}
		w.supervision.accept(ctx, op, msg)

	case OpSetPolicy:
		if op.ReleasePolicy != ReleasePolicyHold && op.ReleasePolicy != ReleasePolicyRelease {
			w.supervision.reject(ctx, op, "releasePolicy must be hold or release")
			return
		}
		old := w.s.Policy.ReleasePolicy
		w.s.Policy.ReleasePolicy = op.ReleasePolicy
		w.supervision.accept(ctx, op, fmt.Sprintf("Release policy %s → %s.", old, op.ReleasePolicy))

	case OpForceFreeze:
		if frozen {
			w.s.FrozenBy, w.s.UnfreezeDueAt = FrozenByOperator, nil
			w.supervision.accept(ctx, op, "Already frozen; now held by the operator.")
			return
		}
		if !usable {
			w.supervision.reject(ctx, op, fmt.Sprintf("nothing to freeze while %s", state))
			return
		}
		w.supervision.accept(ctx, op, "Freezing the tenant.")
		w.freeze(ctx, "operator/"+op.ID+"/done", FrozenByOperator, "Frozen by an operator: "+op.Reason)

	case OpForceUnfreeze:
		if !frozen {
			w.supervision.reject(ctx, op, fmt.Sprintf("nothing to unfreeze while %s", state))
			return
		}
		w.supervision.accept(ctx, op, "Unfreezing the tenant.")
		if w.steps.tenant(ctx, StepUnfreeze, acts.Unfreeze, "operator: "+op.Reason) == stepAborted {
			return
		}
		w.unfrozen(ctx)
		w.record(ctx, "operator/"+op.ID+"/done", string(w.s.State), "Unfrozen by an operator: "+op.Reason)

	case OpForceRelease:
		if state == StateReleased {
			w.supervision.reject(ctx, op, "already released")
			return
		}
		w.supervision.accept(ctx, op, "Releasing the tenant; its data will be deleted.")
		w.release(ctx, "operator/"+op.ID+"/done", "Released by an operator: "+op.Reason+".")

	case OpRetryPush:
		if !w.s.Metered {
			w.supervision.reject(ctx, op, "the instance is not metered (not pay-per-use, or released)")
			return
		}
		w.supervision.accept(ctx, op, "Pushing the pending usage periods now.")
		w.payPerUse.meter(ctx, MeterRetryPush)

	case OpConfirmDelivery, OpAccept, OpReject, OpAppeal, OpResolveAppeal:
		w.supervision.step(ctx, op, now)

	default:
		w.supervision.reject(ctx, op, "unknown action")
	}
}

// supervise moves the service-supervision flow (SPEC §5.3).
func (f supervisionFlow) step(ctx workflow.Context, op OperatorRequest, now time.Time) {
	w := f.w
	sup := w.s.Supervision
	if sup == nil || sup.CompletedAt != nil {
		w.supervision.reject(ctx, op, "the order is not under service supervision")
		return
	}
	state := w.s.State
	switch op.Name {
	case OpConfirmDelivery:
		if state != StateAwaitingDelivery {
			w.supervision.reject(ctx, op, fmt.Sprintf("delivery can be confirmed only while awaiting_delivery, not %s", state))
			return
		}
		if op.Evidence == "" {
			w.supervision.reject(ctx, op, "evidence (the delivery document) is required")
			return
		}
		at := now
		sup.DeliveredAt, sup.Evidence, sup.DeclaredStart = &at, op.Evidence, op.StartTime
		msg := "Delivery confirmed by the merchant; evidence: " + op.Evidence + "."
		if op.StartTime != nil {
			msg += " Declared service start: " + formatTime(*op.StartTime) + "."
		}
		w.s.State = StateDelivered
		w.supervision.accept(ctx, op, msg+" Awaiting the buyer's acceptance.")

	case OpAccept:
		if state != StateDelivered {
			w.supervision.reject(ctx, op, fmt.Sprintf("the buyer can accept only a delivered order, not %s", state))
			return
		}
		at := now
		if op.AcceptedAt != nil {
			at = op.AcceptedAt.UTC()
		}
		sup.AcceptedAt, sup.ResumedAt = &at, nil
		w.s.State = StateAccepted
		w.supervision.accept(ctx, op, fmt.Sprintf("Accepted by the buyer at %s; the order completes by %s.",
			formatTime(at), formatTime(at.Add(w.s.Policy.SupervisionSyncDelay))))

	case OpReject:
		if state != StateDelivered {
			w.supervision.reject(ctx, op, fmt.Sprintf("the buyer can reject only a delivered order, not %s", state))
			return
		}
		sup.Rejections++
		sup.DeliveredAt, sup.Evidence, sup.DeclaredStart = nil, "", nil
		w.s.State = StateAwaitingDelivery
		msg := fmt.Sprintf("Delivery rejected by the buyer (%d so far); awaiting a new delivery.", sup.Rejections)
		if sup.Rejections > 3 {
			msg += " More than 3 rejections: the merchant may appeal."
		}
		w.supervision.accept(ctx, op, msg)

	case OpAppeal:
		if state != StateAwaitingDelivery && state != StateDelivered && state != StateAccepted {
			w.supervision.reject(ctx, op, fmt.Sprintf("nothing to appeal while %s", state))
			return
		}
		sup.AppealedFrom, sup.AppealReason = state, op.Reason
		w.s.State = StateAppealed
		w.supervision.accept(ctx, op, fmt.Sprintf("Appeal filed while %s; the flow is suspended until it is resolved.", state))

	case OpResolveAppeal:
		if state != StateAppealed {
			w.supervision.reject(ctx, op, fmt.Sprintf("no appeal to resolve while %s", state))
			return
		}
		back := sup.AppealedFrom
		sup.AppealedFrom, sup.AppealReason = "", ""
		w.s.State = back
		msg := fmt.Sprintf("Appeal resolved; back to %s.", back)
		if back == StateAccepted {
			at := now
			sup.ResumedAt = &at
			msg += fmt.Sprintf(" The order completes by %s.", formatTime(at.Add(w.s.Policy.SupervisionSyncDelay)))
		}
		w.supervision.accept(ctx, op, msg)
	}
}

// completeSupervision ends supervision when the marketplace has shown the
// order completed. Validity starts at the declared start time, or else at
// the buyer's acceptance: the expiry moves accordingly (SPEC §5.3).
func (f supervisionFlow) complete(ctx workflow.Context, key string) {
	w := f.w
	sup := w.s.Supervision
	now := workflow.Now(ctx)
	sup.CompletedAt = &now
	base, basis := *sup.AcceptedAt, "the buyer's acceptance"
	if sup.DeclaredStart != nil {
		base, basis = *sup.DeclaredStart, "the declared service start"
	}
	msg := "Supervision completed: the order shows as completed."
	if o := w.s.Order; o != nil {
		if exp, ok := addPeriod(base, o.PeriodType, o.PeriodNumber); ok {
			w.s.setExpiry(exp)
			msg += fmt.Sprintf(" Validity counts from %s (%s): %s to %s.", basis, formatTime(base), formatTime(base), formatTime(exp))
		}
	}
	w.s.State = w.s.serviceState(now)
	w.record(ctx, key, "supervision-completed", msg)
	w.save(ctx)
}

// accept records an operator's action as carried out.
func (f supervisionFlow) accept(ctx workflow.Context, op OperatorRequest, what string) {
	w := f.w
	w.record(ctx, "operator/"+op.ID, "operator", fmt.Sprintf("%s by %s: %s %s", op.Name, actor(op), op.Reason+".", what))
}

// reject records an operator's action as refused, with why.
func (f supervisionFlow) reject(ctx workflow.Context, op OperatorRequest, why string) {
	w := f.w
	w.record(ctx, "operator/"+op.ID, "operator-rejected", fmt.Sprintf("%s by %s refused: %s (reason given: %s).", op.Name, actor(op), why, op.Reason))
}

func actor(op OperatorRequest) string {
	if op.Actor == "" {
		return "operator"
	}
	return op.Actor
}
