package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// The marketplace's timing rules (contract §5) as deadlines computed from the
// state: nothing is scheduled that the state does not explain, and any
// change of state (a renewal, an operator's extension) reschedules
// everything at once. A deadline already past fires at once, so a workflow
// that was parked or away catches up in order.

// serviceState is the state of a usable (not frozen) instance: its
// supervision stage while supervision is under way, else active before its
// expiry and grace after it.
func (s *Snapshot) serviceState(now time.Time) State {
	if sup := s.Supervision; sup != nil && sup.CompletedAt == nil {
		switch {
		case sup.AppealedFrom != "":
			return StateAppealed
		case sup.AcceptedAt != nil:
			return StateAccepted
		case sup.DeliveredAt != nil && s.reviewed() && sup.ReviewedAt == nil:
			return StateUnderReview
		case sup.DeliveredAt != nil:
			return StateDelivered
		case sup.Flow >= SupervisionFlowRequirements && sup.RequirementsConfirmedAt == nil && sup.RequirementsAt != nil:
			return StateRequirementsSubmitted
		case sup.Flow >= SupervisionFlowRequirements && sup.RequirementsConfirmedAt == nil:
			return StateAwaitingRequirements
		default:
			return StateAwaitingDelivery
		}
	}
	if s.ExpireTime != nil && !now.Before(*s.ExpireTime) {
		return StateGrace
	}
	return StateActive
}

// deadlines lists the coming timers, earliest first.
func (s *Snapshot) deadlines(now time.Time) []Deadline {
	var out []Deadline
	add := func(kind string, at time.Time, why string) {
		out = append(out, Deadline{Kind: kind, At: at.UTC(), Why: why})
	}
	defer slices.SortStableFunc(out, func(a, b Deadline) int { return a.At.Compare(b.At) })

	if s.Debug {
		if s.Policy.DebugTTL > 0 && !s.LastCallbackAt.IsZero() &&
			s.State != StateReleased && s.State != StateParked && s.State != StateProvisioning {
			add(DeadlineDebugTTL, s.LastCallbackAt.Add(s.Policy.DebugTTL),
				"debug instance: its disposable tenant is released this long after its last callback")
		}
		return out
	}
	if s.State == StateAccepted && s.Supervision != nil && s.Supervision.AcceptedAt != nil {
		add(DeadlineSupervisionSync, s.syncFrom().Add(s.Policy.SupervisionSyncDelay),
			"the marketplace shows the supervised order completed this long after the buyer's acceptance")
	}
	if sup := s.Supervision; sup != nil && sup.WaitingSince != nil && sup.StallAlertedAt == nil && s.Policy.SupervisionStallAlert > 0 &&
		(s.State == StateRequirementsSubmitted || s.State == StateAwaitingDelivery) {
		add(DeadlineSupervisionStall, sup.WaitingSince.Add(s.Policy.SupervisionStallAlert),
			"the supervised order has waited this long on the merchant (requirements or delivery to confirm): operators are reminded once")
	}
	if c := s.PackageCycle; c != nil && s.Package && s.State == StateActive {
		// Not past the expiry: a package that is not renewed ends there.
		if end := c.End(); s.ExpireTime == nil || end.Before(*s.ExpireTime) {
			add(DeadlinePackageReset, end, fmt.Sprintf(
				"the package's content resets %s: its quota comes back for cycle %d, and instances stopped for quota resume", c.Reset, c.Number+1))
		}
	}
	if s.ExpireTime == nil {
		return out
	}
	exp := *s.ExpireTime
	freezeAt := exp.Add(s.Policy.FreezeGrace + s.GraceExtension)
	retentionEnd := exp.Add(s.Policy.Retention + s.GraceExtension)
	waived := s.SelfFreezeWaived != nil && s.SelfFreezeWaived.Equal(exp)
	switch s.State {
	case StateActive:
		add(DeadlineExpiry, exp, "the subscription expires; the grace period begins")
		if !waived {
			add(DeadlineSelfFreeze, freezeAt, "unless the marketplace's FREEZE or a renewal comes first, the server freezes the tenant")
		}
	case StateGrace:
		if !waived {
			add(DeadlineSelfFreeze, freezeAt, "expired: unless the marketplace's FREEZE or a renewal comes first, the server freezes the tenant")
		}
	case StateFrozen:
		if s.UnfreezeDueAt != nil {
			add(DeadlineUnfreezeDue, *s.UnfreezeDueAt,
				"renewed while frozen: unless the marketplace's UNFREEZE comes first, the server unfreezes the tenant")
			break
		}
		if now.Before(exp) {
			// Frozen before its expiry (arrears, violation, an operator):
			// retention does not run until the subscription has expired.
			break
		}
		add(DeadlineRetentionEnd, retentionEnd, retentionWhy(s.Policy.ReleasePolicy))
	case StateReleaseOverdue:
		if s.Policy.ReleasePolicy == ReleasePolicyRelease {
			add(DeadlineRetentionEnd, retentionEnd, retentionWhy(s.Policy.ReleasePolicy))
		}
	}
	return out
}

func retentionWhy(policy string) string {
	if policy == ReleasePolicyRelease {
		return "retention ends: unless the marketplace's releaseInstance comes first, the server releases the tenant (policy release)"
	}
	return "retention ends: unless the marketplace's releaseInstance comes first, the instance is held as release_overdue and operators are alerted (policy hold)"
}

// syncFrom is when the supervision sync delay started counting: the
// acceptance, or the end of an appeal that suspended it.
func (s *Snapshot) syncFrom() time.Time {
	if s.Supervision == nil || s.Supervision.AcceptedAt == nil {
		return time.Time{}
	}
	if s.Supervision.ResumedAt != nil {
		return *s.Supervision.ResumedAt
	}
	return *s.Supervision.AcceptedAt
}

// nextDeadline is the earliest coming deadline.
func (s *Snapshot) nextDeadline(now time.Time) (Deadline, bool) {
	ds := s.deadlines(now)
	if len(ds) == 0 {
		return Deadline{}, false
	}
	// Compare, not UnixNano: a perpetual purchase's expiry may lie past
	// the year 2262, where nanoseconds overflow.
	return slices.MinFunc(ds, func(a, b Deadline) int { return a.At.Compare(b.At) }), true
}

// representable reports whether a deadline can be shown and stored: a
// perpetual purchase may expire on 9999-12-31 (legitimately), and its
// grace or retention then ends in the year 10000, which JSON timestamps
// (RFC 3339) cannot hold. Such a deadline is simply never due.
func representable(t time.Time) bool { return t.Year() <= 9999 }

// shownDeadlines are the deadlines that can be shown and stored.
func shownDeadlines(ds []Deadline) []Deadline {
	return slices.DeleteFunc(ds, func(d Deadline) bool { return !representable(d.At) })
}

// fireDueDeadlines carries out every deadline that is due, earliest first.
// It returns false when a step was abandoned for a pending release, which
// the main loop must apply first.
func (w *instanceWorkflow) fireDueDeadlines(ctx workflow.Context) bool {
	for i := 0; ; i++ {
		now := workflow.Now(ctx)
		d, ok := w.s.nextDeadline(now)
		if !ok || d.At.After(now) {
			return true
		}
		if i > 20 {
			// Every deadline changes the state that produced it; a loop
			// here is a bug, not a reason to spin.
			workflow.GetLogger(ctx).Error("Deadlines keep firing; waiting for new input", "deadline", d.Kind)
			return true
		}
		if !w.fire(ctx, d) {
			return false
		}
	}
}

// fire carries out one deadline.
func (w *instanceWorkflow) fire(ctx workflow.Context, d Deadline) bool {
	w.appliedThisRun++
	key := fmt.Sprintf("deadline/%s/%s", d.Kind, d.At.Format(time.RFC3339))
	exp := "none"
	if w.s.ExpireTime != nil {
		exp = formatTime(*w.s.ExpireTime)
	}
	switch d.Kind {
	case DeadlineExpiry:
		w.s.State = StateGrace
		w.record(ctx, key, "expired", fmt.Sprintf(
			"Expired at %s. The tenant stays usable during the grace period; the marketplace's FREEZE or a renewal is expected.", exp))
		w.save(ctx)
		return true

	case DeadlineSelfFreeze:
		reason := fmt.Sprintf("Expired at %s; no FREEZE from the marketplace and no renewal by the end of the freeze grace (%s): frozen by the server.",
			exp, formatTime(d.At))
		switch w.steps.tenant(ctx, StepFreeze, acts.Freeze, reason) {
		case stepAborted:
			return false
		}
		w.s.State, w.s.FrozenBy, w.s.Reason = StateFrozen, FrozenByExpiry, reason
		w.record(ctx, key, "frozen", reason+" Its data is kept.")
		w.save(ctx)
		return true

	case DeadlineRetentionEnd:
		if w.s.Policy.ReleasePolicy == ReleasePolicyRelease {
			reason := fmt.Sprintf("Retention ended at %s without the marketplace's releaseInstance: released by the server (policy release).", formatTime(d.At))
			if !w.release(ctx, key, reason) {
				return false
			}
			w.save(ctx)
			return true
		}
		reason := fmt.Sprintf("Retention ended at %s without the marketplace's releaseInstance. The frozen tenant and its data are held (policy hold) until the marketplace releases it or an operator acts.", formatTime(d.At))
		w.s.State, w.s.Reason = StateReleaseOverdue, reason
		w.record(ctx, key, "release_overdue", reason)
		w.save(ctx)
		w.alert(ctx, "release_overdue", reason)
		return true

	case DeadlineUnfreezeDue:
		reason := fmt.Sprintf("Renewed to %s while frozen; no UNFREEZE from the marketplace by %s: unfrozen by the server.", exp, formatTime(d.At))
		if w.steps.tenant(ctx, StepUnfreeze, acts.Unfreeze, reason) == stepAborted {
			return false
		}
		w.unfrozen(ctx)
		w.record(ctx, key, string(w.s.State), reason)
		w.save(ctx)
		return true

	case DeadlineSupervisionSync:
		w.supervision.complete(ctx, key)
		return true

	case DeadlineSupervisionStall:
		w.supervision.stalled(ctx, key)
		return true

	case DeadlinePackageReset:
		w.payPerUse.reset(ctx, key)
		return true

	case DeadlineDebugTTL:
		if !w.release(ctx, key, "Debug instance: no callback for a while; its disposable tenant is released.") {
			return false
		}
		w.save(ctx)
		return true
	}
	workflow.GetLogger(ctx).Error("Unknown deadline", "kind", d.Kind)
	return true
}

// unfrozen sets the state after a successful unfreeze. When the instance
// is past its expiry the server must not freeze it again on its own for
// that expiry: whoever unfroze it knew.
func (w *instanceWorkflow) unfrozen(ctx workflow.Context) {
	now := workflow.Now(ctx)
	w.s.FrozenBy, w.s.UnfreezeDueAt, w.s.Reason = "", nil, ""
	w.s.State = w.s.serviceState(now)
	w.payPerUse.meter(ctx, MeterResume)
	if w.s.State == StateGrace {
		exp := *w.s.ExpireTime
		w.s.SelfFreezeWaived = &exp
	}
}

// setExpiry moves the expiry; every deadline follows. An operator's grace
// extension belonged to the old expiry and ends with it.
func (s *Snapshot) setExpiry(t time.Time) {
	t = t.UTC()
	s.ExpireTime = &t
	s.GraceExtension = 0
	if s.Order != nil {
		s.Order.ExpireTime = &t
	}
}

// addPeriod adds an order's period to t; ok is false for an unknown period.
func addPeriod(t time.Time, periodType string, n int) (time.Time, bool) {
	if n <= 0 {
		return t, false
	}
	switch periodType {
	case "year":
		return t.AddDate(n, 0, 0), true
	case "month":
		return t.AddDate(0, n, 0), true
	case "week":
		return t.AddDate(0, 0, 7*n), true
	case "day":
		return t.AddDate(0, 0, n), true
	case "hour":
		return t.Add(time.Duration(n) * time.Hour), true
	}
	return t, false
}
