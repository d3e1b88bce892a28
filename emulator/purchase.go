package emulator

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Purchase states, as the marketplace shows them.
const (
	StateOrdering             = "ordering"               // newInstance being delivered
	StateProvisioning         = "provisioning"           // polling queryInstance for the access information
	StateAwaitingRequirements = "awaiting_requirements"  // supervision: the buyer submits requirements
	StateRequirementsSent     = "requirements_submitted" // supervision: the merchant confirms or rejects them
	StateDelivering           = "delivering"             // supervision: the merchant implements
	StateUnderReview          = "under_review"           // supervision: Huawei Cloud reviews the delivery
	StateAwaitingAcceptance   = "awaiting_acceptance"    // supervision: the buyer accepts or rejects
	StateCompleting           = "completing"             // supervision: accepted; completed within 3 h
	StateInService            = "in_service"             // in use, before expiry
	StateFrozen               = "frozen"                 // expired: frozen, data kept, renewable until retention ends
	StateArrears              = "arrears"                // pay-per-use account in arrears: frozen
	StateReleased             = "released"               // retention ended: released
	StateUnsubscribed         = "unsubscribed"           // released by unsubscription
	StateCancelled            = "cancelled"              // newInstance failed for its whole window: unsubscribed and refunded
)

// PurchaseInput starts a purchase's workflow.
type PurchaseInput struct {
	PurchaseID string
	Buy        BuyRequest
	Clock      Clock
	// Emulated durations of the marketplace's rules.
	Retention        time.Duration // after expiry, until release (15 days)
	SupervisionDelay time.Duration // after acceptance, until completed (3 h)
	Carried          *purchase     `json:",omitempty"`
}

// purchase is the whole state of a purchase workflow; continue-as-new
// carries it.
type purchase struct {
	ID          string
	Buy         BuyRequest
	Clock       Clock
	Retention   time.Duration
	SupDelay    time.Duration
	State       string
	InstanceID  string
	Spec        Spec
	ExpireAt    *time.Time // emulated
	ReleaseAt   *time.Time // emulated: end of retention
	Trial       bool
	Renewals    []int // periods of each renewal not refunded, for refunds
	Orders      int   // orders sold for this purchase, for IDs
	Calls       int   // production calls made, for message IDs
	NextPollAt  time.Time
	PollEvery   time.Duration
	Supervision string // the supervision stage shown
	AcceptedAt  *time.Time
	StartAt     *time.Time   // declared service start (supervision)
	Failed      []failedCall // calls that failed for good, restartable
	InFlight    string       // the call being retried now, restartable at once
	Revision    int64
	Actions     []Action `json:",omitempty"`
	// Kit is the enterprise the app is bound to (联营 listings).
	Kit *kitState `json:",omitempty"`
	// Licenses are the licence requests of an online licence purchase.
	Licenses []LicenseRequestView `json:",omitempty"`
	// Code is the code of a license-code purchase.
	Code *codeState `json:",omitempty"`
}

// failedCall is a call an operator may restart from the console.
type failedCall struct {
	MessageID string
	Activity  string
	Body      string
}

// PurchaseWorkflow plays the marketplace's side of one purchase.
func PurchaseWorkflow(ctx workflow.Context, in PurchaseInput) error {
	p := in.Carried
	if p == nil {
		p = &purchase{
			ID: in.PurchaseID, Buy: in.Buy, Clock: in.Clock, Retention: in.Retention, SupDelay: in.SupervisionDelay,
			State: StateOrdering, Trial: in.Buy.TrialDays > 0,
			Spec: Spec{ProductID: in.Buy.ProductID, SkuCode: in.Buy.SkuCode, Quantity: in.Buy.Quantity},
		}
	}
	w := &purchaseWorkflow{p: p}
	if err := w.register(ctx); err != nil {
		return err
	}
	if in.Carried == nil {
		if !w.order(ctx) {
			return nil
		}
	}
	return w.run(ctx)
}

type purchaseWorkflow struct {
	p      *purchase
	events []Event
	steps  int // handled in this run, for continue-as-new
}

func (w *purchaseWorkflow) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, PurchaseQuery, func() (PurchaseState, error) { return w.p.state(), nil }); err != nil {
		return err
	}
	if w.p.Buy.LicenseCode {
		w.listenForActivation(ctx)
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, ActionSignal,
		func(ctx workflow.Context, a Action) (string, error) {
			w.p.Actions = append(w.p.Actions, a)
			return "accepted", nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, a Action) error { return w.p.validate(a) }},
	)
}

// state is what the purchase query shows.
func (p *purchase) state() PurchaseState {
	s := PurchaseState{
		PurchaseID: p.ID, State: p.State, InstanceID: p.InstanceID, ChargingMode: p.Buy.BillingMode,
		Supervised: p.Buy.Supervised, Debug: p.Buy.Debug, ExpireAt: p.ExpireAt, Supervision: p.Supervision,
		Spec: p.Spec, Pending: len(p.Actions), OnlineLicense: p.Buy.OnlineLicense, Licenses: p.Licenses,
	}
	if p.ExpireAt != nil {
		real := p.Clock.RealAt(*p.ExpireAt)
		s.RealExpireAt = &real
	}
	if k := p.Kit; k != nil {
		s.Kit = &KitView{TenantID: k.TenantID, TenantCode: k.TenantCode, Name: k.Name, DomainName: k.DomainName,
			AppID: k.AppID, ClientID: k.ClientID, SecretSHA256: k.SecretSHA256,
			Users: slices.Clone(k.Users), Orgs: slices.Clone(k.Orgs)}
	}
	return s
}

// order sells the first order and delivers newInstance with its delivery
// mode: hourly for 3 hours (emulated), then the order is cancelled and
// refunded. It reports whether the purchase goes on.
func (w *purchaseWorkflow) order(ctx workflow.Context) bool {
	p := w.p
	// The order is placed at a whole real second, so that on a clock whose
	// day is a whole number of real seconds (1d=10s) the expiry is one too:
	// the merchant is told expiry times to the second, and a fraction cut
	// off there would make its month end up to a real second (2.4 emulated
	// hours at 1d=10s) before the marketplace's.
	placed := workflow.Now(ctx)
	// Purchases ordered before this wait keep their history.
	aligned := workflow.GetVersion(ctx, "order-at-whole-second", workflow.DefaultVersion, 1) == 1
	if whole := placed.Truncate(time.Second); aligned && whole.Before(placed) {
		placed = whole.Add(time.Second)
		if err := workflow.Sleep(ctx, placed.Sub(workflow.Now(ctx))); err != nil {
			return false
		}
	}
	// Its validity counts from here, and the timeline says so, though
	// saving the order takes a moment (minutes of emulated time).
	now := p.Clock.EmulatedAt(placed).UTC()
	orderType := "NEW"
	if p.Trial {
		orderType = "TRIAL"
		exp := now.AddDate(0, 0, p.Buy.TrialDays)
		p.ExpireAt = &exp
	} else if exp, ok := addPeriod(now, p.Buy.PeriodType, p.Buy.PeriodNumber); ok {
		p.ExpireAt = &exp
	}
	first := w.newOrder(ctx, orderType)
	w.saveOrder(ctx, &first)
	w.recordAt(placed, "ordered", fmt.Sprintf("Order %s placed: %s %s %s, %d seats%s.", first.OrderID, p.Buy.BillingMode,
		describePeriod(p.Buy), p.Buy.SkuCode, p.Buy.Quantity, flags(p.Buy)))
	w.save(ctx)
	if p.Buy.LicenseCode {
		// No instance: the buyer receives a code (contract §13.5).
		w.issueLicenseCode(ctx, first, now)
		// Codes issued before the emulator played their life ended here.
		return workflow.GetVersion(ctx, licenseCodeLifeChange, workflow.DefaultVersion, 1) == 1
	}

	res, ok := w.call(ctx, koogallery.ActivityNewInstance, map[string]any{
		"activity": "newInstance", "orderId": first.OrderID, "orderLineId": first.OrderLineID, "businessId": p.ID,
	})
	if !ok {
		p.State = StateCancelled
		w.record(ctx, "cancelled", "newInstance failed for its whole retry window: the order is unsubscribed and refunded. The merchant should contact the buyer.")
		w.save(ctx)
		return false
	}
	p.InstanceID = res.InstanceID
	if p.Buy.Interface == InterfaceV1 {
		// V1 has no polling: the answer carried the access information
		// (contract §1.12), and V1 listings are never supervised.
		p.State = StateInService
		w.record(ctx, "provisioned", fmt.Sprintf("newInstance answered %s: instance %s, with the access information; the buyer can log in.",
			res.ResultCode, res.InstanceID))
		w.save(ctx)
		return true
	}
	p.State = StateProvisioning
	p.NextPollAt, p.PollEvery = workflow.Now(ctx), 250*time.Millisecond
	w.record(ctx, "instance", fmt.Sprintf("newInstance answered %s: instance %s. Polling queryInstance.", res.ResultCode, res.InstanceID))
	w.save(ctx)
	return true
}

// run is the purchase's life after newInstance: poll, supervise, expire,
// freeze, release, and carry out the buyer's and the consoles' actions.
func (w *purchaseWorkflow) run(ctx workflow.Context) error {
	p := w.p
	for {
		if p.State == StateReleased || p.State == StateUnsubscribed || p.State == StateCancelled {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			if len(p.Actions) == 0 {
				return nil
			}
		}
		if len(p.Actions) > 0 {
			a := p.Actions[0]
			p.Actions = p.Actions[1:]
			w.act(ctx, a)
			w.steps++
			continue
		}
		if kind, at, ok := w.next(ctx); ok && !at.After(workflow.Now(ctx)) {
			w.fire(ctx, kind)
			w.steps++
			continue
		}
		if w.steps > 200 || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			if len(p.Actions) == 0 {
				return workflow.NewContinueAsNewError(ctx, PurchaseWorkflowName, PurchaseInput{Carried: p})
			}
			continue
		}
		ready := func() bool { return len(p.Actions) > 0 }
		if _, at, ok := w.next(ctx); ok {
			if _, err := workflow.AwaitWithTimeout(ctx, at.Sub(workflow.Now(ctx)), ready); err != nil {
				return err
			}
		} else if err := workflow.Await(ctx, ready); err != nil {
			return err
		}
	}
}

// Deadline kinds of a purchase.
const (
	deadlinePoll       = "poll"
	deadlineExpiry     = "expiry"
	deadlineRelease    = "release"
	deadlineCompletion = "completion"
)

// next is the purchase's next deadline, in real time.
func (w *purchaseWorkflow) next(ctx workflow.Context) (string, time.Time, bool) {
	p := w.p
	switch {
	case p.State == StateProvisioning:
		return deadlinePoll, p.NextPollAt, true
	case p.State == StateCompleting && p.AcceptedAt != nil:
		return deadlineCompletion, p.Clock.RealAt(p.AcceptedAt.Add(p.SupDelay)), true
	case p.State == StateInService && p.ExpireAt != nil:
		return deadlineExpiry, p.Clock.RealAt(*p.ExpireAt), true
	case p.State == StateFrozen && p.ReleaseAt != nil:
		return deadlineRelease, p.Clock.RealAt(*p.ReleaseAt), true
	}
	return "", time.Time{}, false
}

func (w *purchaseWorkflow) fire(ctx workflow.Context, kind string) {
	p := w.p
	if p.Code != nil {
		w.fireCode(ctx, kind)
		return
	}
	switch kind {
	case deadlinePoll:
		w.poll(ctx)
	case deadlineCompletion:
		base, basis := *p.AcceptedAt, "the acceptance"
		if p.StartAt != nil {
			base, basis = *p.StartAt, "the declared service start"
		}
		p.State, p.Supervision = StateInService, "completed"
		msg := "Supervision completed: the order shows as completed (within 3 h of the acceptance)."
		if exp, ok := addPeriod(base, p.Buy.PeriodType, p.Buy.PeriodNumber); ok && p.ExpireAt != nil {
			p.ExpireAt = &exp
			msg += fmt.Sprintf(" Validity counts from %s: expires %s.", basis, fmtTime(exp))
		}
		w.record(ctx, "completed", msg)
		w.save(ctx)
	case deadlineExpiry:
		release := p.ExpireAt.Add(p.Retention)
		p.State, p.ReleaseAt = StateFrozen, &release
		w.record(ctx, "expired", fmt.Sprintf("Expired: the marketplace freezes the instance. Renewable until %s.", fmtTime(release)))
		w.save(ctx)
		w.callStatus(ctx, "FREEZE")
	case deadlineRelease:
		p.State = StateReleased
		w.record(ctx, "retention-ended", "Retention ended without renewal: the marketplace releases the instance.")
		w.save(ctx)
		w.call(ctx, koogallery.ActivityReleaseInstance, map[string]any{"activity": "releaseInstance", "instanceId": p.InstanceID})
		w.save(ctx)
	}
}

// poll asks queryInstance once; the access information, when it arrives,
// is stored by the activity (it never enters the workflow history).
func (w *purchaseWorkflow) poll(ctx workflow.Context) {
	p := w.p
	var res CallResult
	err := workflow.ExecuteActivity(w.callOptions(ctx, koogallery.Delivery{}), CallActivity, CallInput{
		PurchaseID: p.ID, Activity: string(koogallery.ActivityQueryInstance), Debug: p.Buy.Debug, V1: p.Buy.Interface == InterfaceV1,
		Body: marketplaceJSON(map[string]any{"activity": "queryInstance", "instanceId": p.InstanceID}),
	}).Get(ctx, &res)
	if err != nil || res.ResultCode != string(koogallery.ResultSuccess) {
		// The marketplace keeps polling until the instance information
		// comes, less often as time goes by.
		p.PollEvery = min(p.PollEvery*2, 5*time.Second)
		p.NextPollAt = workflow.Now(ctx).Add(p.PollEvery)
		return
	}
	if p.Buy.Supervised {
		p.State, p.Supervision = StateAwaitingRequirements, "awaiting requirements"
		w.record(ctx, "provisioned", "queryInstance returned the access information. Supervised: the buyer submits requirements.")
	} else {
		p.State = StateInService
		w.record(ctx, "provisioned", "queryInstance returned the access information; the buyer can log in.")
	}
	w.save(ctx)
}

// validate refuses an action that does not fit the purchase now.
// validate says whether an action is possible in the purchase's state.
func (p *purchase) validate(a Action) error {
	in := func(states ...string) error {
		if !slices.Contains(states, p.State) {
			return fmt.Errorf("%s is not possible while the purchase is %s", a.Kind, p.State)
		}
		return nil
	}
	if p.Buy.LicenseCode {
		return p.validateCode(a, in)
	}
	periodic := p.Buy.BillingMode == ModePeriod || p.Buy.BillingMode == ModeOnDemandPkg
	switch a.Kind {
	case ActRenew:
		if !periodic {
			return fmt.Errorf("a %s purchase cannot be renewed", p.Buy.BillingMode)
		}
		if a.Periods < 0 || a.Periods > 60 {
			return errors.New("periods must be from 1 to 60")
		}
		return in(StateInService, StateFrozen)
	case ActRefundRenewal:
		if len(p.Renewals) == 0 {
			return errors.New("there is no renewal period to refund")
		}
		return in(StateInService, StateFrozen)
	case ActUnsubscribe:
		return in(StateProvisioning, StateAwaitingRequirements, StateRequirementsSent, StateDelivering, StateUnderReview, StateAwaitingAcceptance,
			StateCompleting, StateInService, StateFrozen, StateArrears)
	case ActUpgrade:
		if p.Buy.BillingMode != ModePeriod {
			return errors.New("only yearly/monthly purchases are upgraded")
		}
		if a.Quantity <= 0 && a.SkuCode == "" {
			return errors.New("upgrade needs a quantity or a skuCode")
		}
		return in(StateInService)
	case ActConvert:
		if !p.Trial {
			return errors.New("only a trial converts to formal")
		}
		return in(StateInService, StateFrozen)
	case ActArrears:
		if p.Buy.BillingMode != ModeOnDemand && p.Buy.BillingMode != ModeOnDemandPkg {
			return errors.New("arrears apply to pay-per-use purchases")
		}
		return in(StateInService)
	case ActPay:
		return in(StateArrears)
	case ActSubmitRequirements, ActConfirmRequirements, ActRejectRequirements, ActConfirmDelivery,
		ActApproveReview, ActRejectReview, ActAccept, ActReject:
		return p.validateSupervision(a, in)
	case ActBind, ActUnbind, ActAuthorize, ActRevoke, ActRemoveUsers, ActDepartment:
		return p.validateKit(a)
	case ActLicenseRequest:
		return p.validateLicense(a)
	case ActRestart:
		return p.validateRestart(a)
	}
	return fmt.Errorf("unknown action %q", a.Kind)
}

// validateRestart says whether the call to restart is one of the
// purchase's failed calls, or the one being retried now.
func (p *purchase) validateRestart(a Action) error {
	if a.MessageID != p.InFlight && !slices.ContainsFunc(p.Failed, func(f failedCall) bool { return f.MessageID == a.MessageID }) {
		return fmt.Errorf("no failed call %q to restart in this purchase", a.MessageID)
	}
	return nil
}

// validateSupervision says whether a step of a supervised order is
// possible now (in checks the purchase's state).
func (p *purchase) validateSupervision(a Action, in func(states ...string) error) error {
	switch a.Kind {
	case ActSubmitRequirements:
		return in(StateAwaitingRequirements)
	case ActConfirmRequirements:
		return in(StateRequirementsSent)
	case ActRejectRequirements:
		if a.Reason == "" {
			return errors.New("reason (why the requirements are rejected) is required")
		}
		return in(StateRequirementsSent)
	case ActConfirmDelivery:
		if a.Evidence == "" {
			return errors.New("evidence (the delivery document) is required")
		}
		if a.Result == "" {
			return errors.New("result (the description of the service's result) is required")
		}
		return in(StateDelivering)
	case ActApproveReview:
		return in(StateUnderReview)
	case ActRejectReview:
		if a.Reason == "" {
			return errors.New("reason (why the review rejects the delivery) is required")
		}
		return in(StateUnderReview)
	case ActAccept, ActReject:
		return in(StateAwaitingAcceptance)
	}
	return fmt.Errorf("unknown action %q", a.Kind)
}

// act carries out an action, unless the purchase moved on since it was
// accepted.
func (w *purchaseWorkflow) act(ctx workflow.Context, a Action) {
	p := w.p
	if err := w.p.validate(a); err != nil {
		w.record(ctx, "refused", "Action refused: "+err.Error()+".")
		w.save(ctx)
		return
	}
	if p.Code != nil {
		w.actOnCode(ctx, a)
		return
	}
	switch a.Kind {
	case ActRenew:
		w.renew(ctx, max(a.Periods, 1))
	case ActRefundRenewal:
		w.refundRenewal(ctx)
	case ActUnsubscribe:
		w.unsubscribe(ctx)
	case ActUpgrade:
		w.upgrade(ctx, a)
	case ActConvert:
		w.convert(ctx)
	case ActArrears:
		p.State = StateArrears
		w.record(ctx, "arrears", "The account is in arrears: the marketplace freezes the instance.")
		w.save(ctx)
		w.callStatus(ctx, "FREEZE")
	case ActPay:
		p.State = StateInService
		w.record(ctx, "paid", "Arrears paid: the marketplace unfreezes the instance.")
		w.save(ctx)
		w.callStatus(ctx, "UNFREEZE")
	case ActSubmitRequirements, ActConfirmRequirements, ActRejectRequirements, ActConfirmDelivery,
		ActApproveReview, ActRejectReview, ActAccept, ActReject:
		w.supervise(ctx, a)
	case ActRestart:
		if slices.ContainsFunc(p.Failed, func(f failedCall) bool { return f.MessageID == a.MessageID }) {
			w.restart(ctx, a.MessageID)
		}
	case ActBind, ActUnbind, ActAuthorize, ActRevoke, ActRemoveUsers, ActDepartment:
		w.kit(ctx, a)
	case ActLicenseRequest:
		w.licenseRequest(ctx, a)
	}
}

// renew sells a renewal for the given number of periods, counted from the
// old expiry, and unfreezes a frozen purchase.
func (w *purchaseWorkflow) renew(ctx workflow.Context, periods int) {
	p := w.p
	exp, _ := addPeriod(*p.ExpireAt, p.Buy.PeriodType, p.Buy.PeriodNumber*periods)
	o := w.newOrder(ctx, "RENEW")
	o.ExpireTime = ptr(p.Clock.RealAt(exp))
	w.saveOrder(ctx, &o)
	wasFrozen := p.State == StateFrozen
	p.ExpireAt, p.ReleaseAt, p.State = &exp, nil, StateInService
	p.Renewals = append(p.Renewals, periods)
	w.record(ctx, "renewed", fmt.Sprintf("Renewed by order %s for %d more period(s), counted from the old expiry: expires %s.", o.OrderID, periods, fmtTime(exp)))
	w.save(ctx)
	w.refresh(ctx, o, "RENEWAL", exp)
	if wasFrozen {
		w.callStatus(ctx, "UNFREEZE")
	}
}

// refundRenewal refunds the last renewal: the expiry moves back by its
// periods.
func (w *purchaseWorkflow) refundRenewal(ctx workflow.Context) {
	p := w.p
	last := p.Renewals[len(p.Renewals)-1]
	p.Renewals = p.Renewals[:len(p.Renewals)-1]
	exp, _ := addPeriod(*p.ExpireAt, p.Buy.PeriodType, -p.Buy.PeriodNumber*last)
	o := w.newOrder(ctx, "UNSUBSCRIBE")
	o.ExpireTime = ptr(p.Clock.RealAt(exp))
	w.saveOrder(ctx, &o)
	p.ExpireAt = &exp
	w.record(ctx, "refunded", fmt.Sprintf("Renewal period refunded by order %s: expires %s.", o.OrderID, fmtTime(exp)))
	w.save(ctx)
	w.refresh(ctx, o, "UNSUBSCRIBE_RENEWAL_PERIOD", exp)
}

// unsubscribe sells the unsubscription order and releases the instance
// with it.
func (w *purchaseWorkflow) unsubscribe(ctx workflow.Context) {
	p := w.p
	o := w.newOrder(ctx, "UNSUBSCRIBE")
	w.saveOrder(ctx, &o)
	p.State = StateUnsubscribed
	w.record(ctx, "unsubscribed", fmt.Sprintf("Unsubscribed by order %s: the marketplace releases the instance.", o.OrderID))
	w.save(ctx)
	w.call(ctx, koogallery.ActivityReleaseInstance, map[string]any{
		"activity": "releaseInstance", "instanceId": p.InstanceID, "orderId": o.OrderID, "orderLineId": o.OrderLineID,
	})
	w.save(ctx)
}

// convert turns a trial into a formal purchase of one period, and
// unfreezes a frozen one.
func (w *purchaseWorkflow) convert(ctx workflow.Context) {
	p := w.p
	exp, _ := addPeriod(*p.ExpireAt, p.Buy.PeriodType, p.Buy.PeriodNumber)
	o := w.newOrder(ctx, "TRIAL_TO_FORMAL")
	o.ExpireTime = ptr(p.Clock.RealAt(exp))
	w.saveOrder(ctx, &o)
	wasFrozen := p.State == StateFrozen
	p.Trial, p.ExpireAt, p.ReleaseAt, p.State = false, &exp, nil, StateInService
	w.record(ctx, "converted", fmt.Sprintf("Trial converted to formal by order %s: expires %s.", o.OrderID, fmtTime(exp)))
	w.save(ctx)
	w.refresh(ctx, o, "TRIAL_TO_FORMAL", exp)
	if wasFrozen {
		w.callStatus(ctx, "UNFREEZE")
	}
}

// supervise takes a step of a supervised order (contract §5.3): the buyer's
// requirements and the merchant's confirmation or rejection of them, the
// merchant's delivery, Huawei Cloud's review of it for a reviewed product,
// the buyer's acceptance or rejection. The steps taken in a console are
// relayed to the merchant's server.
func (w *purchaseWorkflow) supervise(ctx workflow.Context, a Action) {
	p := w.p
	switch a.Kind {
	case ActSubmitRequirements:
		if workflow.GetVersion(ctx, requirementsChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			// Purchases that reached this step before the merchant
			// confirmed requirements go straight to delivery.
			p.State, p.Supervision = StateDelivering, "requirements submitted"
			w.record(ctx, "requirements", "The buyer submitted the requirements; the merchant implements.")
			w.save(ctx)
			return
		}
		p.State, p.Supervision = StateRequirementsSent, "requirements submitted"
		w.record(ctx, "requirements", "The buyer submitted the requirements; the merchant confirms or rejects them in the seller console.")
		w.save(ctx)
		w.relay(ctx, "submit-requirements", map[string]any{"reason": "submitted by the buyer"})
	case ActConfirmRequirements:
		p.State, p.Supervision = StateDelivering, "requirements confirmed"
		w.record(ctx, "requirements-confirmed", "The merchant confirmed the requirements; the merchant implements.")
		w.save(ctx)
		w.relay(ctx, "confirm-requirements", map[string]any{"reason": "confirmed in the seller console"})
	case ActRejectRequirements:
		p.State, p.Supervision = StateAwaitingRequirements, "requirements rejected"
		w.record(ctx, "requirements-rejected", "The merchant rejected the requirements: "+a.Reason+". The buyer submits them again.")
		w.save(ctx)
		w.relay(ctx, "reject-requirements", map[string]any{"reason": a.Reason})
	case ActConfirmDelivery:
		p.StartAt = a.StartTime
		msg := "The merchant confirmed the service completed; evidence: " + a.Evidence + "."
		if a.Result != "" {
			msg += " Result: " + a.Result + "."
		}
		if a.StartTime != nil {
			msg += " Declared start: " + fmtTime(*a.StartTime) + "."
		}
		if p.Buy.Reviewed {
			p.State, p.Supervision = StateUnderReview, "under review"
			msg += " Huawei Cloud reviews the delivery."
		} else {
			p.State, p.Supervision = StateAwaitingAcceptance, "delivered"
		}
		w.record(ctx, "delivered", msg)
		w.save(ctx)
		body := map[string]any{"reason": "confirmed in the seller console", "evidence": a.Evidence, "startTime": a.StartTime}
		if a.Result != "" {
			body["result"] = a.Result
		}
		w.relay(ctx, "confirm-delivery", body)
	case ActApproveReview:
		p.State, p.Supervision = StateAwaitingAcceptance, "delivered"
		w.record(ctx, "review-approved", "Huawei Cloud's review approved the delivery; the buyer accepts or rejects it.")
		w.save(ctx)
		w.relay(ctx, "review-approve", map[string]any{"reason": "approved by Huawei Cloud's review"})
	case ActRejectReview:
		p.State, p.Supervision, p.StartAt = StateDelivering, "review rejected", nil
		w.record(ctx, "review-rejected", "Huawei Cloud's review rejected the delivery: "+a.Reason+". The merchant delivers again.")
		w.save(ctx)
		w.relay(ctx, "review-reject", map[string]any{"reason": a.Reason})
	case ActAccept:
		now := w.now(ctx)
		p.State, p.Supervision, p.AcceptedAt = StateCompleting, "accepted", &now
		w.record(ctx, "accepted", "The buyer accepted; the order completes within 3 hours.")
		w.save(ctx)
		w.relay(ctx, "accept", map[string]any{"reason": "accepted by the buyer", "acceptedAt": p.Clock.RealAt(now)})
	case ActReject:
		p.State, p.Supervision = StateDelivering, "rejected"
		w.record(ctx, "rejected", "The buyer rejected the delivery; the merchant delivers again.")
		w.save(ctx)
		w.relay(ctx, "reject", map[string]any{"reason": "rejected by the buyer"})
	}
}

// requirementsChange is the GetVersion change ID of the merchant's
// confirmation of the requirements: a purchase whose requirements were
// submitted before it went straight to delivery.
const requirementsChange = "supervision-requirements-confirmation"

// upgrade asks changeInstanceCheck, then sends upgradeInstance when the
// merchant allows the change.
func (w *purchaseWorkflow) upgrade(ctx workflow.Context, a Action) {
	p := w.p
	target := p.Spec
	if a.Quantity > 0 {
		target.Quantity = a.Quantity
	}
	if a.SkuCode != "" {
		target.SkuCode, target.ProductID = a.SkuCode, a.SkuCode+"-product"
	}
	res, ok := w.call(ctx, koogallery.ActivityChangeInstanceCheck, map[string]any{
		"activity": "changeInstanceCheck", "instanceId": p.InstanceID,
		"productInfo": map[string]any{"skuCode": target.SkuCode, "productId": target.ProductID, "linearValue": target.Quantity},
	})
	if !ok {
		return
	}
	if res.ResultCode != string(koogallery.ResultSuccess) {
		w.record(ctx, "change-refused", "The merchant refused the change: "+res.ResultMsg)
		w.save(ctx)
		return
	}
	o := w.newOrder(ctx, "CHANGE")
	o.SkuCode, o.ProductID, o.LinearValue = target.SkuCode, target.ProductID, &target.Quantity
	if p.ExpireAt != nil {
		o.ExpireTime = ptr(p.Clock.RealAt(*p.ExpireAt))
	}
	w.saveOrder(ctx, &o)
	p.Spec = target
	w.record(ctx, "upgraded", fmt.Sprintf("Change order %s paid: %s, %d seats.", o.OrderID, target.SkuCode, target.Quantity))
	w.save(ctx)
	w.call(ctx, koogallery.ActivityUpgradeInstance, map[string]any{
		"activity": "upgradeInstance", "instanceId": p.InstanceID, "orderId": o.OrderID, "orderLineId": o.OrderLineID,
	})
	w.save(ctx)
}

func (w *purchaseWorkflow) refresh(ctx workflow.Context, o Order, scene string, exp time.Time) {
	w.call(ctx, koogallery.ActivityRefreshInstance, map[string]any{
		"activity": "refreshInstance", "scene": scene, "instanceId": w.p.InstanceID,
		"orderId": o.OrderID, "orderLineId": o.OrderLineID, "productId": o.ProductID,
		"expireTime": koogallery.FormatTime(w.p.Clock.RealAt(exp)),
	})
	w.save(ctx)
}

func (w *purchaseWorkflow) callStatus(ctx workflow.Context, status string) {
	w.call(ctx, koogallery.ActivityUpdateInstanceStatus, map[string]any{
		"activity": "updateInstanceStatus", "instanceId": w.p.InstanceID, "status": status,
	})
	w.save(ctx)
}

// call sends one production-interface call with the marketplace's delivery
// mode for it. A call that still fails at the end stays restartable from
// the console. During newInstance's window, a restart from the console is
// an extra attempt at once.
func (w *purchaseWorkflow) call(ctx workflow.Context, activity koogallery.Activity, body map[string]any) (CallResult, bool) {
	p := w.p
	if _, kit := koogallery.ParseKitOperation(string(activity)); kit {
		// The kit's testFlag is an integer, and always sent (contract §12.4).
		body["testFlag"] = 0
		if p.Buy.Debug {
			body["testFlag"] = 1
		}
	} else if p.Buy.Debug {
		body["testFlag"] = "1"
	}
	p.Calls++
	in := CallInput{
		MessageID:  messageID(p.ID, p.Calls, activity),
		PurchaseID: p.ID, Activity: string(activity), Body: marketplaceJSON(body), Debug: p.Buy.Debug,
		V1: p.Buy.Interface == InterfaceV1,
	}
	delivery := koogallery.Deliveries[activity]
	if activity == koogallery.ActivityUpdateInstanceStatus && body["status"] == "UNFREEZE" {
		req, _ := koogallery.ParseRequest([]byte(in.Body))
		delivery = koogallery.DeliveryOf(req)
	}
	cctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	p.InFlight = in.MessageID
	defer func() { p.InFlight = "" }()
	future := workflow.ExecuteActivity(w.callOptions(cctx, delivery), CallActivity, in)
	var res CallResult
	for {
		if err := workflow.Await(ctx, func() bool { return future.IsReady() || w.p.restartQueued(in.MessageID) }); err != nil {
			return res, false
		}
		if future.IsReady() {
			break
		}
		// A console restart while the marketplace is still retrying.
		w.p.dequeueRestart(in.MessageID)
		if err := workflow.ExecuteActivity(w.callOptions(ctx, koogallery.Delivery{}), CallActivity, in).Get(ctx, &res); err == nil {
			cancel()
			w.record(ctx, "restarted", fmt.Sprintf("%s restarted from the console: answered %s.", activity, res.ResultCode))
			return res, true
		}
	}
	if err := future.Get(ctx, &res); err != nil {
		p.Failed = append(p.Failed, failedCall{MessageID: in.MessageID, Activity: in.Activity, Body: in.Body})
		w.record(ctx, "call-failed", fmt.Sprintf("%s failed: %s (%s). It is listed in the console's failed calls and can be restarted.",
			activity, callError(err), describeDelivery(delivery)))
		w.save(ctx)
		return res, false
	}
	return res, true
}

// messageID names the purchase's n-th call, for the failed calls.
func messageID(purchaseID string, n int, activity koogallery.Activity) string {
	return fmt.Sprintf("%s-%03d-%s", purchaseID, n, activity)
}

// restartQueued reports whether a restart of the failed call id waits
// among the purchase's actions.
func (p *purchase) restartQueued(id string) bool {
	return slices.ContainsFunc(p.Actions, func(a Action) bool { return a.Kind == ActRestart && a.MessageID == id })
}

// dequeueRestart takes the restart of the failed call id off the actions.
func (p *purchase) dequeueRestart(id string) {
	i := slices.IndexFunc(p.Actions, func(a Action) bool { return a.Kind == ActRestart && a.MessageID == id })
	p.Actions = slices.Delete(p.Actions, i, i+1)
}

// restart sends a failed call again, once, as the console's 重新启动 does.
func (w *purchaseWorkflow) restart(ctx workflow.Context, id string) {
	p := w.p
	i := slices.IndexFunc(p.Failed, func(f failedCall) bool { return f.MessageID == id })
	f := p.Failed[i]
	var res CallResult
	err := workflow.ExecuteActivity(w.callOptions(ctx, koogallery.Delivery{}), CallActivity, CallInput{
		MessageID: f.MessageID, PurchaseID: p.ID, Activity: f.Activity, Body: f.Body, Debug: p.Buy.Debug,
		V1: p.Buy.Interface == InterfaceV1,
	}).Get(ctx, &res)
	if err != nil {
		w.record(ctx, "restart-failed", fmt.Sprintf("%s restarted from the console; failed again: %s.", f.Activity, callError(err)))
	} else {
		p.Failed = slices.Delete(p.Failed, i, i+1)
		w.record(ctx, "restarted", fmt.Sprintf("%s restarted from the console: answered %s.", f.Activity, res.ResultCode))
	}
	w.save(ctx)
}

// callOptions turns a delivery mode into an activity retry policy on the
// emulated clock: a retried call gets every attempt of its window, a call
// sent once gets one attempt.
func (w *purchaseWorkflow) callOptions(ctx workflow.Context, d koogallery.Delivery) workflow.Context {
	retry := &temporal.RetryPolicy{MaximumAttempts: 1}
	if d.Retried && d.Window > 0 && d.Interval > 0 {
		every := max(w.p.Clock.Real(d.Interval), time.Second)
		retry = &temporal.RetryPolicy{
			InitialInterval: every, BackoffCoefficient: 1, MaximumInterval: every,
			MaximumAttempts: int32(d.Window/d.Interval) + 1,
		}
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// The marketplace waits about 20 s for an answer (contract §1.0).
		StartToCloseTimeout: 25 * time.Second,
		RetryPolicy:         retry,
	})
}

// relay tells the merchant's fulfillment server about a supervision step
// taken in a console (when the emulator is configured to), as an operator
// would with the admin API.
func (w *purchaseWorkflow) relay(ctx workflow.Context, signal string, body map[string]any) {
	opts := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var relayed bool
	if err := workflow.ExecuteActivity(opts, RelayActivity, RelayInput{InstanceID: w.p.InstanceID, Signal: signal, Body: mustJSON(body)}).
		Get(ctx, &relayed); err != nil {
		w.record(ctx, "relay-failed", fmt.Sprintf("Could not tell the merchant's server (%s): %s.", signal, callError(err)))
		w.save(ctx)
	} else if relayed {
		w.record(ctx, "relayed", fmt.Sprintf("Told the merchant's server: %s.", signal))
		w.save(ctx)
	}
}

// newOrder prepares the purchase's next order; its ID derives from the
// purchase, so a replay makes the same IDs.
func (w *purchaseWorkflow) newOrder(ctx workflow.Context, orderType string) Order {
	p := w.p
	p.Orders++
	id := p.ID
	if p.Orders > 1 {
		id = fmt.Sprintf("%s%02d", p.ID, p.Orders)
	}
	o := Order{
		OrderID: id, OrderLineID: id + "-000001", PurchaseID: p.ID, OrderType: orderType,
		ChargingMode: p.Buy.BillingMode, PeriodType: p.Buy.PeriodType, PeriodNumber: p.Buy.PeriodNumber,
		SkuCode: p.Spec.SkuCode, ProductID: p.Spec.ProductID, LinearValue: ptr(p.Spec.Quantity),
		CustomerID: "emu-" + p.ID, CustomerName: p.Buy.CustomerName,
	}
	if p.ExpireAt != nil {
		o.ExpireTime = ptr(p.Clock.RealAt(*p.ExpireAt))
	}
	return o
}

func (w *purchaseWorkflow) saveOrder(ctx workflow.Context, o *Order) {
	if err := workflow.ExecuteActivity(localOptions(ctx), SaveOrderActivity, *o).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("Order not saved", "order", o.OrderID, "error", err)
	}
}

// record queues a timeline event for the next save.
func (w *purchaseWorkflow) record(ctx workflow.Context, kind, message string) {
	w.recordAt(workflow.Now(ctx), kind, message)
}

// recordAt queues a timeline event that happened at now (real, from
// workflow.Now) for the next save.
func (w *purchaseWorkflow) recordAt(now time.Time, kind, message string) {
	w.events = append(w.events, Event{
		Key: fmt.Sprintf("%d-%s", w.p.Revision*100+int64(len(w.events)), kind),
		At:  now.UTC(), EmulatedAt: w.p.Clock.EmulatedAt(now).UTC(), Kind: kind, Message: message,
	})
}

// save writes the purchase and the queued events.
func (w *purchaseWorkflow) save(ctx workflow.Context) {
	p := w.p
	p.Revision++
	row := Purchase{
		PurchaseID: p.ID, State: p.State, ChargingMode: p.Buy.BillingMode, ProductID: p.Spec.ProductID,
		Supervised: p.Buy.Supervised, Debug: p.Buy.Debug, InstanceID: p.InstanceID,
		EmulatedExpireTime: p.ExpireAt, SupervisionStage: p.Supervision, Revision: p.Revision,
		Kit: p.state().Kit, Licenses: LicenseRequests(p.Licenses),
	}
	if p.ExpireAt != nil {
		row.ExpireTime = ptr(p.Clock.RealAt(*p.ExpireAt))
	}
	in := SaveInput{Purchase: row, Events: w.events}
	if p.Code != nil {
		in.Code = p.Code.update()
	}
	w.events = nil
	if err := workflow.ExecuteActivity(localOptions(ctx), SaveActivity, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("Purchase not saved", "error", err)
	}
}

func (w *purchaseWorkflow) now(ctx workflow.Context) time.Time {
	return w.p.Clock.EmulatedAt(workflow.Now(ctx)).UTC()
}

func localOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 30 * time.Second},
	})
}

// addPeriod adds n periods of a type to t.
func addPeriod(t time.Time, periodType string, n int) (time.Time, bool) {
	switch periodType {
	case "year":
		return t.AddDate(n, 0, 0), true
	case "month":
		return t.AddDate(0, n, 0), true
	case "day":
		return t.AddDate(0, 0, n), true
	}
	return t, false
}

func describePeriod(b BuyRequest) string {
	if b.TrialDays > 0 {
		return fmt.Sprintf("%d-day trial of %d %s", b.TrialDays, b.PeriodNumber, b.PeriodType)
	}
	if b.PeriodType == "" {
		return ""
	}
	return fmt.Sprintf("%d %s", b.PeriodNumber, b.PeriodType)
}

func flags(b BuyRequest) string {
	s := ""
	if b.Supervised {
		s += ", supervised"
	}
	if b.Reviewed {
		s += ", reviewed by Huawei Cloud"
	}
	if b.Debug {
		s += ", debug (testFlag=1)"
	}
	return s
}

func describeDelivery(d koogallery.Delivery) string {
	if d.Retried && d.Window > 0 {
		return fmt.Sprintf("retried every %s for %s", d.Interval, d.Window)
	}
	return "sent once"
}

// callError is the activity's own message, without Temporal's wrapping.
func callError(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

func ptr[T any](v T) *T { return &v }
