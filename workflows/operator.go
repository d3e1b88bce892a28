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
	usable := slices.Contains([]State{StateActive, StateGrace, StateAwaitingRequirements, StateRequirementsSubmitted,
		StateAwaitingDelivery, StateUnderReview, StateDelivered, StateAccepted, StateAppealed}, state)
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

	case OpSubmitRequirements, OpConfirmRequirements, OpRejectRequirements, OpConfirmDelivery,
		OpApproveReview, OpRejectReview, OpAccept, OpReject, OpAppeal, OpResolveAppeal:
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

// supervisionFlowChange is the GetVersion change ID of the supervision
// flow with the requirements step (the merchant confirms or rejects the
// buyer's requirements), Huawei Cloud's review and the stall reminder.
// Purchases provisioned before it keep the flow they started with.
const supervisionFlowChange = "supervision-requirements-review"

// SupervisionFlowRequirements is Supervision.Flow for purchases
// provisioned with the requirements step (contract §5.3, steps 1 and 2).
const SupervisionFlowRequirements = 1

// merchantDue starts a new wait on the merchant (requirements to confirm,
// or delivery): the stall reminder counts from now, once again.
func (sup *Supervision) merchantDue(now time.Time) {
	if sup.Flow < SupervisionFlowRequirements {
		return
	}
	at := now
	sup.WaitingSince, sup.StallAlertedAt = &at, nil
}

// reviewed reports whether Huawei Cloud reviews this purchase's deliveries.
func (s *Snapshot) reviewed() bool {
	return s.Policy.SupervisionReviewed && s.Supervision != nil && s.Supervision.Flow >= SupervisionFlowRequirements
}

// supervisionSteps are the steps of the supervision flow, by operator
// signal.
var supervisionSteps = map[string]func(s *Snapshot, op OperatorRequest, now time.Time) (string, error){
	OpSubmitRequirements: (*Snapshot).submitRequirements, OpConfirmRequirements: (*Snapshot).confirmRequirements,
	OpRejectRequirements: (*Snapshot).rejectRequirements, OpConfirmDelivery: (*Snapshot).confirmDelivery,
	OpApproveReview: (*Snapshot).approveReview, OpRejectReview: (*Snapshot).rejectReview,
	OpAccept: (*Snapshot).accept, OpReject: (*Snapshot).reject,
	OpAppeal: (*Snapshot).appeal, OpResolveAppeal: (*Snapshot).resolveAppeal,
}

// supervise applies a step of the supervision flow to the state, or says
// why it cannot be taken now.
func (s *Snapshot) supervise(op OperatorRequest, now time.Time) (string, error) {
	step, ok := supervisionSteps[op.Name]
	if !ok {
		return "", fmt.Errorf("%s is not a step of the supervision flow", op.Name)
	}
	return step(s, op, now)
}

// submitRequirements: the buyer submits requirements (relayed).
func (s *Snapshot) submitRequirements(op OperatorRequest, now time.Time) (string, error) {
	state, sup, at := s.State, s.Supervision, now
	if state != StateAwaitingRequirements {
		return "", fmt.Errorf("requirements can be submitted only while awaiting_requirements, not %s", state)
	}
	sup.RequirementsAt = &at
	sup.merchantDue(now)
	s.State = StateRequirementsSubmitted
	return "Requirements submitted by the buyer; awaiting the merchant's confirmation (确认需求) or rejection (驳回).", nil
}

// confirmRequirements: the merchant confirms the requirements (确认需求).
func (s *Snapshot) confirmRequirements(op OperatorRequest, now time.Time) (string, error) {
	state, sup, at := s.State, s.Supervision, now
	if state != StateRequirementsSubmitted {
		return "", fmt.Errorf("requirements can be confirmed only while requirements_submitted, not %s", state)
	}
	sup.RequirementsConfirmedAt = &at
	sup.merchantDue(now)
	s.State = StateAwaitingDelivery
	return "Requirements confirmed by the merchant; awaiting the merchant's delivery.", nil
}

// rejectRequirements: the merchant rejects the requirements (驳回): the buyer submits again.
func (s *Snapshot) rejectRequirements(op OperatorRequest, now time.Time) (string, error) {
	state, sup := s.State, s.Supervision
	if state != StateRequirementsSubmitted {
		return "", fmt.Errorf("requirements can be rejected only while requirements_submitted, not %s", state)
	}
	sup.RequirementRejections++
	sup.RequirementsAt, sup.WaitingSince, sup.StallAlertedAt = nil, nil, nil
	s.State = StateAwaitingRequirements
	return fmt.Sprintf("Requirements rejected by the merchant (%d so far); awaiting the buyer's new requirements.", sup.RequirementRejections), nil
}

// confirmDelivery: the merchant delivered, with evidence and a result description (服务结果描述).
func (s *Snapshot) confirmDelivery(op OperatorRequest, now time.Time) (string, error) {
	state, sup, at := s.State, s.Supervision, now
	if state != StateAwaitingDelivery {
		return "", fmt.Errorf("delivery can be confirmed only while awaiting_delivery, not %s", state)
	}
	if op.Evidence == "" {
		return "", errors.New("evidence (the delivery document) is required")
	}
	if op.Result == "" && sup.Flow >= SupervisionFlowRequirements {
		return "", errors.New("result (the description of the service's result) is required")
	}
	sup.DeliveredAt, sup.Evidence, sup.Result, sup.DeclaredStart = &at, op.Evidence, op.Result, op.StartTime
	sup.ReviewedAt, sup.WaitingSince, sup.StallAlertedAt = nil, nil, nil
	msg := "Delivery confirmed by the merchant; evidence: " + op.Evidence + "."
	if op.Result != "" {
		msg += " Result: " + op.Result + "."
	}
	if op.StartTime != nil {
		msg += " Declared service start: " + formatTime(*op.StartTime) + "."
	}
	if s.reviewed() {
		s.State = StateUnderReview
		return msg + " Awaiting Huawei Cloud's review (华为云复核).", nil
	}
	s.State = StateDelivered
	return msg + " Awaiting the buyer's acceptance.", nil
}

// approveReview: Huawei Cloud's review (华为云复核) approves the delivery.
func (s *Snapshot) approveReview(op OperatorRequest, now time.Time) (string, error) {
	state, sup, at := s.State, s.Supervision, now
	if state != StateUnderReview {
		return "", fmt.Errorf("only a delivery under_review can be approved, not %s", state)
	}
	sup.ReviewedAt = &at
	s.State = StateDelivered
	return "Delivery approved by Huawei Cloud's review; awaiting the buyer's acceptance.", nil
}

// rejectReview: Huawei Cloud's review rejects the delivery: back to delivery.
func (s *Snapshot) rejectReview(op OperatorRequest, now time.Time) (string, error) {
	state, sup := s.State, s.Supervision
	if state != StateUnderReview {
		return "", fmt.Errorf("only a delivery under_review can be rejected by the review, not %s", state)
	}
	sup.ReviewRejections++
	sup.DeliveredAt, sup.Evidence, sup.Result, sup.DeclaredStart = nil, "", "", nil
	sup.merchantDue(now)
	s.State = StateAwaitingDelivery
	return fmt.Sprintf("Delivery rejected by Huawei Cloud's review (%d so far); awaiting a new delivery.", sup.ReviewRejections), nil
}

// accept: the buyer accepts: the order completes after SUPERVISION_SYNC_DELAY.
func (s *Snapshot) accept(op OperatorRequest, now time.Time) (string, error) {
	state, sup, at := s.State, s.Supervision, now
	if state != StateDelivered {
		return "", fmt.Errorf("the buyer can accept only a delivered order, not %s", state)
	}
	if op.AcceptedAt != nil {
		at = op.AcceptedAt.UTC()
	}
	sup.AcceptedAt, sup.ResumedAt = &at, nil
	s.State = StateAccepted
	return fmt.Sprintf("Accepted by the buyer at %s; the order completes by %s.",
		formatTime(at), formatTime(at.Add(s.Policy.SupervisionSyncDelay))), nil
}

// reject: the buyer rejects the delivery: back to delivery.
func (s *Snapshot) reject(op OperatorRequest, now time.Time) (string, error) {
	state, sup := s.State, s.Supervision
	if state != StateDelivered {
		return "", fmt.Errorf("the buyer can reject only a delivered order, not %s", state)
	}
	sup.Rejections++
	sup.DeliveredAt, sup.Evidence, sup.Result, sup.DeclaredStart, sup.ReviewedAt = nil, "", "", nil, nil
	sup.merchantDue(now)
	s.State = StateAwaitingDelivery
	msg := fmt.Sprintf("Delivery rejected by the buyer (%d so far); awaiting a new delivery.", sup.Rejections)
	if sup.Rejections > 3 {
		msg += " More than 3 rejections: the merchant may appeal."
	}
	return msg, nil
}

// appeal: an appeal suspends the flow.
func (s *Snapshot) appeal(op OperatorRequest, now time.Time) (string, error) {
	state, sup := s.State, s.Supervision
	if !slices.Contains([]State{StateAwaitingRequirements, StateRequirementsSubmitted, StateAwaitingDelivery,
		StateUnderReview, StateDelivered, StateAccepted}, state) {
		return "", fmt.Errorf("nothing to appeal while %s", state)
	}
	sup.AppealedFrom, sup.AppealReason = state, op.Reason
	s.State = StateAppealed
	return fmt.Sprintf("Appeal filed while %s; the flow is suspended until it is resolved.", state), nil
}

// resolveAppeal: the appeal is resolved: the flow resumes where it was.
func (s *Snapshot) resolveAppeal(op OperatorRequest, now time.Time) (string, error) {
	state, sup, at := s.State, s.Supervision, now
	if state != StateAppealed {
		return "", fmt.Errorf("no appeal to resolve while %s", state)
	}
	back := sup.AppealedFrom
	sup.AppealedFrom, sup.AppealReason = "", ""
	s.State = back
	msg := fmt.Sprintf("Appeal resolved; back to %s.", back)
	switch back {
	case StateAccepted:
		sup.ResumedAt = &at
		msg += fmt.Sprintf(" The order completes by %s.", formatTime(at.Add(s.Policy.SupervisionSyncDelay)))
	case StateRequirementsSubmitted, StateAwaitingDelivery:
		// The merchant's step counts again from the resolution.
		sup.merchantDue(now)
	}
	return msg, nil
}

// stalled reminds operators, once, that the merchant's step has waited
// longer than SUPERVISION_STALL_ALERT (contract §5.3: a stalled order
// holds the settlement back).
func (f supervisionFlow) stalled(ctx workflow.Context, key string) {
	w := f.w
	sup := w.s.Supervision
	now := workflow.Now(ctx)
	sup.StallAlertedAt = &now
	step := "the delivery (确认服务完成) is"
	if w.s.State == StateRequirementsSubmitted {
		step = "the buyer's requirements (确认需求) are"
	}
	msg := fmt.Sprintf("Supervised order stalled on the merchant's side: %s awaited since %s, more than %s.",
		step, formatTime(*sup.WaitingSince), w.s.Policy.SupervisionStallAlert)
	w.record(ctx, key, "supervision-stalled", msg+" Operators are reminded once.")
	w.save(ctx)
	w.alert(ctx, "supervision_stalled", msg)
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
