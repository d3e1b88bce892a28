package workflows

import (
	"errors"
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
		if msg, err := w.s.extendGrace(op.Duration, now); err != nil {
			w.supervision.reject(ctx, op, err.Error())
		} else {
			w.supervision.accept(ctx, op, msg)
		}

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

// extendGrace moves the freeze and release deadlines of the current expiry
// later by d (an operator's extend-grace), and says so. An instance overdue
// for release whose retention runs again is frozen, no longer overdue.
func (s *Snapshot) extendGrace(d time.Duration, now time.Time) (string, error) {
	frozen := s.State == StateFrozen || s.State == StateReleaseOverdue
	if d <= 0 {
		return "", errors.New("duration must be positive")
	}
	if s.ExpireTime == nil || !(s.State == StateActive || s.State == StateGrace || frozen || s.State == StateParked) {
		return "", fmt.Errorf("the instance is %s without an expiry to extend", s.State)
	}
	s.GraceExtension += d
	msg := fmt.Sprintf("Freeze and release deadlines of expiry %s extended by %s (%s in all).",
		formatTime(*s.ExpireTime), d, s.GraceExtension)
	if s.State == StateReleaseOverdue && now.Before(s.ExpireTime.Add(s.Policy.Retention+s.GraceExtension)) {
		s.State = StateFrozen
		msg += " Retention runs again: the instance is frozen, no longer overdue."
	}
	return msg, nil
}

// supervise moves the service-supervision flow (contract §5.3).
func (f supervisionFlow) step(ctx workflow.Context, op OperatorRequest, now time.Time) {
	w := f.w
	if sup := w.s.Supervision; sup == nil || sup.CompletedAt != nil {
		w.supervision.reject(ctx, op, "the order is not under service supervision")
		return
	}
	if msg, err := w.s.supervise(op, now); err != nil {
		w.supervision.reject(ctx, op, err.Error())
	} else {
		w.supervision.accept(ctx, op, msg)
	}
}

// supervise applies a step of the supervision flow to the state, or says
// why it cannot be taken now.
func (s *Snapshot) supervise(op OperatorRequest, now time.Time) (string, error) {
	state := s.State
	sup := s.Supervision
	switch op.Name {
	case OpConfirmDelivery:
		if state != StateAwaitingDelivery {
			return "", fmt.Errorf("delivery can be confirmed only while awaiting_delivery, not %s", state)
		}
		if op.Evidence == "" {
			return "", errors.New("evidence (the delivery document) is required")
		}
		at := now
		sup.DeliveredAt, sup.Evidence, sup.DeclaredStart = &at, op.Evidence, op.StartTime
		msg := "Delivery confirmed by the merchant; evidence: " + op.Evidence + "."
		if op.StartTime != nil {
			msg += " Declared service start: " + formatTime(*op.StartTime) + "."
		}
		s.State = StateDelivered
		return msg + " Awaiting the buyer's acceptance.", nil

	case OpAccept:
		if state != StateDelivered {
			return "", fmt.Errorf("the buyer can accept only a delivered order, not %s", state)
		}
		at := now
		if op.AcceptedAt != nil {
			at = op.AcceptedAt.UTC()
		}
		sup.AcceptedAt, sup.ResumedAt = &at, nil
		s.State = StateAccepted
		return fmt.Sprintf("Accepted by the buyer at %s; the order completes by %s.",
			formatTime(at), formatTime(at.Add(s.Policy.SupervisionSyncDelay))), nil

	case OpReject:
		if state != StateDelivered {
			return "", fmt.Errorf("the buyer can reject only a delivered order, not %s", state)
		}
		sup.Rejections++
		sup.DeliveredAt, sup.Evidence, sup.DeclaredStart = nil, "", nil
		s.State = StateAwaitingDelivery
		msg := fmt.Sprintf("Delivery rejected by the buyer (%d so far); awaiting a new delivery.", sup.Rejections)
		if sup.Rejections > 3 {
			msg += " More than 3 rejections: the merchant may appeal."
		}
		return msg, nil

	case OpAppeal:
		if state != StateAwaitingDelivery && state != StateDelivered && state != StateAccepted {
			return "", fmt.Errorf("nothing to appeal while %s", state)
		}
		sup.AppealedFrom, sup.AppealReason = state, op.Reason
		s.State = StateAppealed
		return fmt.Sprintf("Appeal filed while %s; the flow is suspended until it is resolved.", state), nil

	case OpResolveAppeal:
		if state != StateAppealed {
			return "", fmt.Errorf("no appeal to resolve while %s", state)
		}
		back := sup.AppealedFrom
		sup.AppealedFrom, sup.AppealReason = "", ""
		s.State = back
		msg := fmt.Sprintf("Appeal resolved; back to %s.", back)
		if back == StateAccepted {
			at := now
			sup.ResumedAt = &at
			msg += fmt.Sprintf(" The order completes by %s.", formatTime(at.Add(s.Policy.SupervisionSyncDelay)))
		}
		return msg, nil
	}
	return "", fmt.Errorf("%s is not a step of the supervision flow", op.Name)
}

// completeSupervision ends supervision when the marketplace has shown the
// order completed. Validity starts at the declared start time, or else at
// the buyer's acceptance: the expiry moves accordingly (contract §5.3).
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
