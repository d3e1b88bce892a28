package emulator

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// A license code's life after it is issued (contract §13.5), on the
// emulated clock, as the purchase's workflow plays it: the same actions as
// a SaaS purchase's (renew, refund-renewal, unsubscribe, restart) and the
// same deadlines, counted from the activation. Like the emulator's SaaS
// purchases, a code is frozen at its expiry (no grace period) and
// released EMULATOR_RETENTION (15 days) later unless renewed.

// listenForActivation queues each activation the open API signals among
// the purchase's actions, so that it is taken in turn with them.
func (w *purchaseWorkflow) listenForActivation(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, LicenseActivatedSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var at time.Time
			ch.Receive(ctx, &at)
			w.p.Actions = append(w.p.Actions, Action{Kind: actLicenseActivated, ActivatedAt: &at})
		}
	})
}

// validateCode says whether an action is possible on a license-code
// purchase now (in checks the purchase's state).
func (p *purchase) validateCode(a Action, in func(states ...string) error) error {
	switch a.Kind {
	case actLicenseActivated:
		if a.ActivatedAt == nil {
			return fmt.Errorf("%s needs the activation time", a.Kind)
		}
		return nil
	case ActRenew:
		if a.Periods < 0 || a.Periods > 60 {
			return fmt.Errorf("periods must be from 1 to 60")
		}
		return in(StateLicenseIssued, StateInService, StateFrozen)
	case ActRefundRenewal:
		if len(p.Renewals) == 0 {
			return fmt.Errorf("there is no renewal period to refund")
		}
		return in(StateLicenseIssued, StateInService, StateFrozen)
	case ActUnsubscribe:
		return in(StateLicenseIssued, StateInService, StateFrozen)
	case ActRestart:
		return p.validateRestart(a)
	}
	return fmt.Errorf("%s is not possible for a license code (renew, refund-renewal and unsubscribe are)", a.Kind)
}

// actOnCode carries out a validated action on a license-code purchase.
func (w *purchaseWorkflow) actOnCode(ctx workflow.Context, a Action) {
	if !w.p.Code.Activated && a.Kind != actLicenseActivated {
		w.catchUpActivation(ctx)
	}
	switch a.Kind {
	case actLicenseActivated:
		w.codeActivated(ctx, *a.ActivatedAt)
	case ActRenew:
		w.renewCode(ctx, max(a.Periods, 1))
	case ActRefundRenewal:
		w.refundCodeRenewal(ctx)
	case ActUnsubscribe:
		w.unsubscribeCode(ctx)
	case ActRestart:
		if slices.ContainsFunc(w.p.Failed, func(f failedCall) bool { return f.MessageID == a.MessageID }) {
			w.restart(ctx, a.MessageID)
			w.noteCodeRestart(ctx, a.MessageID)
		}
	}
}

// catchUpActivation reads whether the code was activated, in case the
// open API could not signal it (Temporal unreachable at that moment): an
// action must not treat an activated code as one the merchant cannot know.
func (w *purchaseWorkflow) catchUpActivation(ctx workflow.Context) {
	var at *time.Time
	if err := workflow.ExecuteActivity(localOptions(ctx), LicenseCodeActivationActivity, w.p.Code.License).Get(ctx, &at); err != nil {
		workflow.GetLogger(ctx).Error("License code's activation not read", "error", err)
		return
	}
	if at != nil {
		w.codeActivated(ctx, *at)
	}
}

// codeActivated starts the code's clock at its first activation: the
// validity counts from then.
func (w *purchaseWorkflow) codeActivated(ctx workflow.Context, at time.Time) {
	p, c := w.p, w.p.Code
	if c.Activated {
		return
	}
	c.Activated = true
	if c.Released {
		w.record(ctx, "license-activated", fmt.Sprintf("License code %s activated after its release: the open API answers RELEASED.", c.License))
		w.save(ctx)
		return
	}
	c.Base = at
	exp := p.Clock.EmulatedAt(c.expiry()).UTC()
	p.State, p.ExpireAt = StateInService, &exp
	w.record(ctx, "license-activated", fmt.Sprintf("License code %s activated by the merchant's software (激活授权码): valid until %s "+
		"(%s UTC real). Unrenewed, the marketplace then freezes it (updateLicenseCodeStatus FREEZE) and releases it %g days later.",
		c.License, fmtTime(exp), c.expiry().UTC().Format(time.DateTime), p.Retention.Hours()/24))
	w.save(ctx)
}

// setCodeExpiry moves the code's validity to end at exp (emulated),
// counted from its base, to the millisecond the database keeps.
func (w *purchaseWorkflow) setCodeExpiry(exp time.Time) {
	p, c := w.p, w.p.Code
	c.ValidFor = p.Clock.RealAt(exp).Sub(c.Base).Truncate(time.Millisecond)
	if c.Activated {
		e := p.Clock.EmulatedAt(c.expiry()).UTC()
		p.ExpireAt = &e
	}
}

// codeExpiry is the code's expiry (emulated); before the activation, the
// one it would have had if activated at the order.
func (w *purchaseWorkflow) codeExpiry() time.Time {
	return w.p.Clock.EmulatedAt(w.p.Code.expiry()).UTC()
}

// codeValidity says how long the code is valid, in emulated days and in
// real time.
func (w *purchaseWorkflow) codeValidity() string {
	clock, valid := w.p.Clock, w.p.Code.ValidFor
	days := clock.EmulatedAt(clock.Origin.Add(valid)).Sub(clock.Origin).Hours() / 24
	return fmt.Sprintf("%.4g days (%s real)", days, valid)
}

// renewCode sells a renewal of periods, counted from the old expiry, sends
// refreshLicenseCode RENEWAL and unfreezes a frozen code.
func (w *purchaseWorkflow) renewCode(ctx workflow.Context, periods int) {
	p, c := w.p, w.p.Code
	o, exp := w.moveCodeExpiry(ctx, "RENEW", periods)
	p.Renewals = append(p.Renewals, periods)
	if !c.Activated {
		w.record(ctx, "renewed", fmt.Sprintf("Renewed by order %s for %d more period(s): the code, not activated yet, is valid %s "+
			"from its activation. No refreshLicenseCode: the merchant learns the code when it is activated, with its validity.",
			o.OrderID, periods, w.codeValidity()))
		w.save(ctx)
		return
	}
	wasFrozen := p.State == StateFrozen
	p.ReleaseAt, p.State = nil, StateInService
	w.record(ctx, "renewed", fmt.Sprintf("Renewed by order %s for %d more period(s), counted from the old expiry: expires %s.",
		o.OrderID, periods, fmtTime(exp)))
	w.save(ctx)
	w.refreshCode(ctx, o, koogallery.SceneRenewal)
	if wasFrozen {
		w.codeStatus(ctx, koogallery.StatusUnfreeze)
	}
}

// moveCodeExpiry moves the code's expiry by periods (negative: back) and
// sells the order of orderType that does it, which carries the new expiry
// once the code is activated (before, its validity counts from the
// activation). It returns the order and the new expiry.
func (w *purchaseWorkflow) moveCodeExpiry(ctx workflow.Context, orderType string, periods int) (Order, time.Time) {
	p, c := w.p, w.p.Code
	exp, _ := addPeriod(w.codeExpiry(), p.Buy.PeriodType, p.Buy.PeriodNumber*periods)
	w.setCodeExpiry(exp)
	o := w.newOrder(ctx, orderType)
	o.ExpireTime = nil
	if c.Activated {
		o.ExpireTime = ptr(c.expiry())
	}
	w.saveOrder(ctx, &o)
	return o, exp
}

// refundCodeRenewal refunds the last renewal: the expiry moves back by its
// periods, and refreshLicenseCode UNSUBSCRIBE_RENEWAL_PERIOD says so.
func (w *purchaseWorkflow) refundCodeRenewal(ctx workflow.Context) {
	p, c := w.p, w.p.Code
	last := p.Renewals[len(p.Renewals)-1]
	p.Renewals = p.Renewals[:len(p.Renewals)-1]
	o, exp := w.moveCodeExpiry(ctx, "UNSUBSCRIBE", -last)
	if !c.Activated {
		w.record(ctx, "refunded", fmt.Sprintf("Renewal period refunded by order %s: the code, not activated yet, is valid %s from its activation. "+
			"No refreshLicenseCode.", o.OrderID, w.codeValidity()))
		w.save(ctx)
		return
	}
	w.record(ctx, "refunded", fmt.Sprintf("Renewal period refunded by order %s: expires %s.", o.OrderID, fmtTime(exp)))
	w.save(ctx)
	w.refreshCode(ctx, o, koogallery.SceneUnsubscribeRenewalPeriod)
}

// unsubscribeCode sells the unsubscription order and releases the code
// with it.
func (w *purchaseWorkflow) unsubscribeCode(ctx workflow.Context) {
	p, c := w.p, w.p.Code
	o := w.newOrder(ctx, "UNSUBSCRIBE")
	w.saveOrder(ctx, &o)
	p.State, c.Released = StateUnsubscribed, true
	if !c.Activated {
		w.record(ctx, "unsubscribed", fmt.Sprintf("Unsubscribed by order %s: the code is released before its activation "+
			"(the open API answers RELEASED). No releaseLicenseCode: the merchant does not know the code.", o.OrderID))
		w.save(ctx)
		return
	}
	w.record(ctx, "unsubscribed", fmt.Sprintf("Unsubscribed by order %s: the marketplace releases the code.", o.OrderID))
	w.save(ctx)
	w.codeCall(ctx, koogallery.ActivityReleaseLicenseCode, map[string]any{"orderId": o.OrderID, "orderLineId": o.OrderLineID},
		"by order "+o.OrderID)
}

// fireCode meets a deadline of an activated code: the freeze at expiry,
// the release at the end of the retention.
func (w *purchaseWorkflow) fireCode(ctx workflow.Context, kind string) {
	p, c := w.p, w.p.Code
	switch kind {
	case deadlineExpiry:
		release := p.ExpireAt.Add(p.Retention)
		p.State, p.ReleaseAt = StateFrozen, &release
		w.record(ctx, "expired", fmt.Sprintf("Expired: the marketplace freezes the code (the open API answers EXPIRED). Renewable until %s.",
			fmtTime(release)))
		w.save(ctx)
		w.codeStatus(ctx, koogallery.StatusFreeze)
	case deadlineRelease:
		p.State, c.Released = StateReleased, true
		w.record(ctx, "retention-ended", "Retention ended without renewal: the marketplace releases the code (the open API answers RELEASED).")
		w.save(ctx)
		w.codeCall(ctx, koogallery.ActivityReleaseLicenseCode, map[string]any{}, "at the end of the retention")
	}
}

// refreshCode sends refreshLicenseCode with the renewal or refund order
// and the code's new expiry.
func (w *purchaseWorkflow) refreshCode(ctx workflow.Context, o Order, scene koogallery.Scene) {
	expireTime := koogallery.FormatTime(w.p.Code.expiry())
	w.codeCall(ctx, koogallery.ActivityRefreshLicenseCode, map[string]any{
		"scene": string(scene), "orderId": o.OrderID, "orderLineId": o.OrderLineID, "productId": o.ProductID, "expireTime": expireTime,
	}, fmt.Sprintf("%s expireTime %s", scene, expireTime))
}

// codeStatus sends updateLicenseCodeStatus.
func (w *purchaseWorkflow) codeStatus(ctx workflow.Context, status koogallery.InstanceStatus) {
	w.codeCall(ctx, koogallery.ActivityUpdateLicenseCodeStatus, map[string]any{"status": string(status)}, string(status))
}

// codeCall sends a license-code callback with its delivery mode (every 2
// minutes until answered 000000, 60 times) and lists it with its answer
// on the code.
func (w *purchaseWorkflow) codeCall(ctx workflow.Context, activity koogallery.Activity, body map[string]any, detail string) {
	p, c := w.p, w.p.Code
	body["activity"], body["license"] = string(activity), c.License
	c.Calls = append(c.Calls, LicenseCodeCall{MessageID: messageID(p.ID, p.Calls+1, activity), Activity: string(activity),
		Detail: detail, SentAt: workflow.Now(ctx).UTC()})
	i := len(c.Calls) - 1
	// Listed at once: the console shows the call while it is retried.
	w.save(ctx)
	res, ok := w.call(ctx, activity, body)
	if !ok {
		c.Calls[i].Result = CallFailedForGood
		w.save(ctx)
		return
	}
	c.Calls[i].Result = res.ResultCode
	w.record(ctx, "license-call", fmt.Sprintf("%s %s answered %s.", activity, detail, res.ResultCode))
	w.save(ctx)
}

// noteCodeRestart marks a restarted call answered when its restart
// succeeded (a license-code call succeeds only with 000000).
func (w *purchaseWorkflow) noteCodeRestart(ctx workflow.Context, id string) {
	p, c := w.p, w.p.Code
	if slices.ContainsFunc(p.Failed, func(f failedCall) bool { return f.MessageID == id }) {
		return
	}
	for i := range c.Calls {
		if c.Calls[i].MessageID == id {
			c.Calls[i].Result = string(koogallery.ResultSuccess)
			w.save(ctx)
		}
	}
}
