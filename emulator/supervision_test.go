package emulator

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// relays records the supervision steps relayed to the merchant's server.
type relays struct {
	mu  sync.Mutex
	got []RelayInput
}

func (r *relays) Relay(_ context.Context, in RelayInput) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, in)
	return true, nil
}

func (r *relays) signals() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, in := range r.got {
		out = append(out, in.Signal)
	}
	return out
}

// superviseAt sends the consoles' actions at offsets from the start; a
// refused action's error is kept under its key.
func superviseAt(env *testsuite.TestWorkflowEnvironment, refused map[string]error, steps map[time.Duration]Action) {
	for at, a := range steps {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(ActionSignal, a.Kind+at.String(), &testsuite.TestUpdateCallback{
				OnReject: func(err error) { refused[a.Kind] = err }, OnAccept: func() {}, OnComplete: func(any, error) {},
			}, a)
		}, at)
	}
}

func supervisedPurchase(t *testing.T) (*testsuite.TestWorkflowEnvironment, *relays, *[]Purchase) {
	env, saved := newEmulatorEnv(t, &fakeCalls{})
	env.SetTestTimeout(time.Minute)
	r := &relays{}
	env.RegisterActivityWithOptions(r.Relay, activity.RegisterOptions{Name: RelayActivity, DisableAlreadyRegisteredCheck: true})
	return env, r, saved
}

func runSupervised(env *testsuite.TestWorkflowEnvironment, reviewed bool) {
	env.ExecuteWorkflow(PurchaseWorkflowName, PurchaseInput{
		PurchaseID: "PS", Buy: BuyRequest{BillingMode: ModePeriod, PeriodType: "month", PeriodNumber: 1, Quantity: 1,
			Supervised: true, Reviewed: reviewed},
		Clock: Clock{Scale: 1, Origin: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, Retention: 360 * time.Hour,
		SupervisionDelay: 3 * time.Hour,
	})
}

// The merchant rejects the requirements once and confirms them; Huawei
// Cloud's review sends the delivery back once and approves it; each step
// is relayed to the merchant's server, and steps out of turn are refused.
func TestSupervisedReviewedPurchase(t *testing.T) {
	env, r, saved := supervisedPurchase(t)
	refused := map[string]error{}
	h := time.Hour
	superviseAt(env, refused, map[time.Duration]Action{
		1 * h:                {Kind: ActSubmitRequirements},
		1*h + 30*time.Minute: {Kind: ActConfirmDelivery, Evidence: "early", Result: "early"},
		2 * h:                {Kind: ActRejectRequirements, Reason: "the attachment is missing"},
		3 * h:                {Kind: ActSubmitRequirements},
		4 * h:                {Kind: ActConfirmRequirements},
		5 * h:                {Kind: ActConfirmDelivery, Evidence: "acceptance.pdf", Result: "tenant configured"},
		5*h + 30*time.Minute: {Kind: ActAccept},
		6 * h:                {Kind: ActRejectReview, Reason: "the evidence is not signed"},
		7 * h:                {Kind: ActConfirmDelivery, Evidence: "signed.pdf", Result: "tenant configured, signed"},
		8 * h:                {Kind: ActApproveReview},
		9 * h:                {Kind: ActAccept},
	})
	var underReview PurchaseState
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(PurchaseQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(&underReview))
	}, 7*h+time.Minute)
	runSupervised(env, true)

	require.NoError(t, env.GetWorkflowError())
	require.ErrorContains(t, refused[ActConfirmDelivery], "confirm-delivery is not possible while the purchase is requirements_submitted")
	require.ErrorContains(t, refused[ActAccept], "accept is not possible while the purchase is under_review")
	require.Equal(t, StateUnderReview, underReview.State)
	require.Equal(t, []string{"submit-requirements", "reject-requirements", "submit-requirements", "confirm-requirements",
		"confirm-delivery", "review-reject", "confirm-delivery", "review-approve", "accept"}, r.signals())
	var delivery map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.got[6].Body), &delivery))
	require.Equal(t, "tenant configured, signed", delivery["result"])
	var rejection map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.got[5].Body), &rejection))
	require.Equal(t, "the evidence is not signed", rejection["reason"])
	require.Equal(t, StateReleased, (*saved)[len(*saved)-1].State, "completed, then expired and released")
}

func TestSupervisedPurchaseActionsNeedTheirFields(t *testing.T) {
	p := &purchase{State: StateRequirementsSent}
	require.ErrorContains(t, p.validate(Action{Kind: ActRejectRequirements}), "reason")
	p.State = StateDelivering
	require.ErrorContains(t, p.validate(Action{Kind: ActConfirmDelivery, Evidence: "e"}), "result")
	p.State = StateUnderReview
	require.ErrorContains(t, p.validate(Action{Kind: ActRejectReview}), "reason")
	require.NoError(t, p.validate(Action{Kind: ActApproveReview}))
	b := BuyRequest{Reviewed: true}
	require.ErrorContains(t, b.Validate(), "only supervised products are reviewed")
}

// A purchase whose requirements were submitted before the merchant's
// confirmation existed goes straight to delivery, as it did.
func TestRequirementsSubmittedBeforeTheConfirmationGoStraightToDelivery(t *testing.T) {
	env, r, _ := supervisedPurchase(t)
	env.OnGetVersion(requirementsChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	refused := map[string]error{}
	superviseAt(env, refused, map[time.Duration]Action{
		time.Hour:     {Kind: ActSubmitRequirements},
		2 * time.Hour: {Kind: ActConfirmDelivery, Evidence: "e", Result: "r"},
		3 * time.Hour: {Kind: ActAccept},
	})
	runSupervised(env, false)

	require.NoError(t, env.GetWorkflowError())
	require.Empty(t, refused)
	require.Equal(t, []string{"confirm-delivery", "accept"}, r.signals())
}
