package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// codeMerchant answers the emulator's license-code callbacks: 000000,
// unless refuse says otherwise for an attempt (the first is 1).
type codeMerchant struct {
	mu       sync.Mutex
	attempts []codeAttempt
	refuse   func(in CallInput, attempt int32) string
	// now is the test environment's clock.
	now func() time.Time
}

// codeAttempt is one attempt of a call, with the (test) time it was made.
type codeAttempt struct {
	in   CallInput
	body map[string]string
	at   time.Time
}

func (m *codeMerchant) Call(ctx context.Context, in CallInput) (CallResult, error) {
	info := activity.GetInfo(ctx)
	var body map[string]string
	if err := json.Unmarshal([]byte(in.Body), &body); err != nil {
		return CallResult{}, temporal.NewNonRetryableApplicationError("body is not flat JSON: "+in.Body, "Test", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts = append(m.attempts, codeAttempt{in: in, body: body, at: m.now().UTC()})
	if m.refuse != nil {
		if code := m.refuse(in, info.Attempt); code != "" {
			return CallResult{}, temporal.NewApplicationError("resultCode "+code+": refused", "CallFailed")
		}
	}
	return CallResult{ResultCode: "000000", ResultMsg: "success"}, nil
}

// sent is the calls' bodies, one per call (its first attempt).
func (m *codeMerchant) sent() []map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []map[string]string
	seen := map[string]bool{}
	for _, a := range m.attempts {
		if !seen[a.in.MessageID] {
			seen[a.in.MessageID] = true
			out = append(out, a.body)
		}
	}
	return out
}

// codeRun is a license-code purchase's workflow in the test environment,
// with what it wrote.
type codeRun struct {
	env     *testsuite.TestWorkflowEnvironment
	start   time.Time
	mu      sync.Mutex
	saves   []SaveInput
	issued  []LicenseCodeView
	refused map[string]error
	// activatedUnsignalled is an activation the open API could not
	// signal, as the database has it.
	activatedUnsignalled *time.Time
}

func newCodeRun(t *testing.T, m *codeMerchant) *codeRun {
	var suite testsuite.WorkflowTestSuite
	r := &codeRun{env: suite.NewTestWorkflowEnvironment(), start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), refused: map[string]error{}}
	env := r.env
	m.now = env.Now
	env.SetTestTimeout(time.Minute)
	env.SetStartTime(r.start)
	env.RegisterWorkflowWithOptions(PurchaseWorkflow, workflow.RegisterOptions{Name: PurchaseWorkflowName})
	env.RegisterActivityWithOptions(m.Call, activity.RegisterOptions{Name: CallActivity})
	env.RegisterActivityWithOptions(func(context.Context, Order) error { return nil }, activity.RegisterOptions{Name: SaveOrderActivity})
	env.RegisterActivityWithOptions(func(_ context.Context, in SaveInput) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.saves = append(r.saves, in)
		return nil
	}, activity.RegisterOptions{Name: SaveActivity})
	env.RegisterActivityWithOptions(func(_ context.Context, c LicenseCodeView) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.issued = append(r.issued, c)
		return nil
	}, activity.RegisterOptions{Name: IssueLicenseCodeActivity})
	env.RegisterActivityWithOptions(func(context.Context, string) (*time.Time, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.activatedUnsignalled, nil
	}, activity.RegisterOptions{Name: LicenseCodeActivationActivity})
	return r
}

// activateAt has the open API signal the code's activation after d (test
// time), as activated at the same instant.
func (r *codeRun) activateAt(d time.Duration) {
	r.env.RegisterDelayedCallback(func() {
		r.env.SignalWorkflow(LicenseActivatedSignal, r.start.Add(d))
	}, d)
}

// actAt takes a console action after d.
func (r *codeRun) actAt(d time.Duration, a Action) {
	r.env.RegisterDelayedCallback(func() {
		r.env.UpdateWorkflow(ActionSignal, a.Kind+d.String(), &testsuite.TestUpdateCallback{
			OnReject: func(err error) { r.refused[a.Kind+"@"+d.String()] = err }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, a)
	}, d)
}

// run buys a month's license code on a clock that runs at real speed.
func (r *codeRun) run() {
	r.env.ExecuteWorkflow(PurchaseWorkflowName, PurchaseInput{
		PurchaseID: "PC", Buy: BuyRequest{BillingMode: ModePeriod, PeriodType: "month", PeriodNumber: 1, Quantity: 3,
			ProductID: "demo-product", SkuCode: "demo-sku", LicenseCode: true},
		Clock: Clock{Scale: 1, Origin: r.start}, Retention: 360 * time.Hour,
	})
}

// last is the last write of the purchase and its code.
func (r *codeRun) last(t *testing.T) SaveInput {
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.saves)
	return r.saves[len(r.saves)-1]
}

const day = 24 * time.Hour

// TestLicenseCodeLifeOnItsClock: a code's validity counts from its
// activation; a renewal sends refreshLicenseCode RENEWAL with the new
// expiry, counted from the old one; unrenewed, the code is frozen at its
// expiry, unfrozen by a renewal, and released at the end of the retention
// without an order.
func TestLicenseCodeLifeOnItsClock(t *testing.T) {
	m := &codeMerchant{}
	r := newCodeRun(t, m)
	code := licenseCodeOf("PC")
	r.activateAt(2 * day)                                  // Jan 3: valid a month (31 days from the order's month), to Feb 3
	r.actAt(10*day, Action{Kind: ActRenew})                // to Mar 3
	r.activateAt(11 * day)                                 // activating again changes nothing
	r.actAt(66*day, Action{Kind: ActRenew})                // Mar 8, frozen since Mar 3: to Apr 3, unfrozen
	r.actAt(67*day, Action{Kind: ActUpgrade, Quantity: 9}) // not for a code
	r.run()
	require.True(t, r.env.IsWorkflowCompleted())
	require.NoError(t, r.env.GetWorkflowError())
	require.ErrorContains(t, r.refused["upgrade@"+(67*day).String()], "not possible for a license code")

	require.Len(t, r.issued, 1)
	require.Equal(t, int64(31*day/time.Millisecond), r.issued[0].ValidForMS, "a month, from the activation")
	mar3 := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	apr3 := time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC)
	require.Equal(t, []map[string]string{
		{"activity": "refreshLicenseCode", "scene": "RENEWAL", "license": code, "orderId": "PC02", "orderLineId": "PC02-000001",
			"productId": "demo-product", "expireTime": koogallery.FormatTime(mar3)},
		{"activity": "updateLicenseCodeStatus", "license": code, "status": "FREEZE"},
		{"activity": "refreshLicenseCode", "scene": "RENEWAL", "license": code, "orderId": "PC03", "orderLineId": "PC03-000001",
			"productId": "demo-product", "expireTime": koogallery.FormatTime(apr3)},
		{"activity": "updateLicenseCodeStatus", "license": code, "status": "UNFREEZE"},
		{"activity": "updateLicenseCodeStatus", "license": code, "status": "FREEZE"},
		{"activity": "releaseLicenseCode", "license": code},
	}, m.sent())
	for _, a := range m.attempts {
		switch a.body["status"] {
		case "FREEZE":
			require.Contains(t, []time.Time{mar3, apr3}, a.at, "frozen at the expiry, as the SaaS purchases are")
		}
		if a.body["activity"] == "releaseLicenseCode" {
			require.Equal(t, apr3.Add(15*day), a.at, "released 15 days after the expiry")
		}
	}

	final := r.last(t)
	require.Equal(t, StateReleased, final.Purchase.State)
	require.Equal(t, apr3, *final.Purchase.EmulatedExpireTime)
	require.NotNil(t, final.Code)
	require.True(t, final.Code.Released)
	require.Equal(t, int64(apr3.Sub(r.start.Add(2*day))/time.Millisecond), final.Code.ValidForMS, "the validity the open API counts from the activation")
	require.Len(t, final.Code.Calls, 6)
	for _, c := range final.Code.Calls {
		require.Equal(t, "000000", c.Result, c.Activity)
	}
	require.Equal(t, "RENEWAL expireTime "+koogallery.FormatTime(mar3), final.Code.Calls[0].Detail)
	var timeline []string
	r.mu.Lock()
	for _, s := range r.saves {
		for _, e := range s.Events {
			timeline = append(timeline, e.Message)
		}
	}
	r.mu.Unlock()
	require.Contains(t, timeline, "License code "+code+" activated by the merchant's software (激活授权码): valid until 2026-02-03 00:00 UTC "+
		"(2026-02-03 00:00:00 UTC real). Unrenewed, the marketplace then freezes it (updateLicenseCodeStatus FREEZE) and releases it 15 days later.")
	require.Contains(t, timeline, "updateLicenseCodeStatus UNFREEZE answered 000000.")
}

// TestLicenseCodeRefundAndUnsubscription: refunding the last renewal sends
// UNSUBSCRIBE_RENEWAL_PERIOD with the earlier expiry; unsubscribing sends
// releaseLicenseCode with the unsubscription order, and ends the purchase.
func TestLicenseCodeRefundAndUnsubscription(t *testing.T) {
	m := &codeMerchant{}
	r := newCodeRun(t, m)
	r.activateAt(day)                                  // Jan 2: to Feb 2
	r.actAt(3*day, Action{Kind: ActRenew, Periods: 2}) // to Apr 2
	r.actAt(4*day, Action{Kind: ActRefundRenewal})     // back to Feb 2
	r.actAt(5*day, Action{Kind: ActRefundRenewal})     // nothing left to refund
	r.actAt(6*day, Action{Kind: ActUnsubscribe})
	r.run()
	require.True(t, r.env.IsWorkflowCompleted())
	require.NoError(t, r.env.GetWorkflowError())
	require.ErrorContains(t, r.refused["refund-renewal@"+(5*day).String()], "no renewal period to refund")
	code := licenseCodeOf("PC")
	require.Equal(t, []map[string]string{
		{"activity": "refreshLicenseCode", "scene": "RENEWAL", "license": code, "orderId": "PC02", "orderLineId": "PC02-000001",
			"productId": "demo-product", "expireTime": "20260402000000"},
		{"activity": "refreshLicenseCode", "scene": "UNSUBSCRIBE_RENEWAL_PERIOD", "license": code, "orderId": "PC03", "orderLineId": "PC03-000001",
			"productId": "demo-product", "expireTime": "20260202000000"},
		{"activity": "releaseLicenseCode", "license": code, "orderId": "PC04", "orderLineId": "PC04-000001"},
	}, m.sent())
	final := r.last(t)
	require.Equal(t, StateUnsubscribed, final.Purchase.State)
	require.True(t, final.Code.Released)
	require.Equal(t, int64(31*day/time.Millisecond), final.Code.ValidForMS, "the refund took the renewal back")
}

// TestLicenseCodeNotActivated: a code not activated has no expiry clock:
// it is never frozen nor released by time. Its renewal lengthens the
// validity the activation will count from, and its unsubscription
// releases it, without a callback: the merchant does not know the code.
func TestLicenseCodeNotActivated(t *testing.T) {
	m := &codeMerchant{}
	r := newCodeRun(t, m)
	r.actAt(40*day, Action{Kind: ActRenew})
	r.actAt(400*day, Action{Kind: ActUnsubscribe})
	r.run()
	require.True(t, r.env.IsWorkflowCompleted())
	require.NoError(t, r.env.GetWorkflowError())
	require.Empty(t, m.attempts, "no callback for a code the merchant cannot know")
	final := r.last(t)
	require.Equal(t, StateUnsubscribed, final.Purchase.State)
	require.Nil(t, final.Purchase.EmulatedExpireTime, "no expiry before the activation")
	require.True(t, final.Code.Released)
	require.Equal(t, int64(59*day/time.Millisecond), final.Code.ValidForMS, "January and February, from the activation")
	r.mu.Lock()
	defer r.mu.Unlock()
	var timeline []string
	for _, s := range r.saves {
		require.NotEqual(t, StateFrozen, s.Purchase.State)
		for _, e := range s.Events {
			timeline = append(timeline, e.Message)
		}
	}
	require.Contains(t, timeline, "Renewed by order PC02 for 1 more period(s): the code, not activated yet, is valid 59 days (1416h0m0s real) "+
		"from its activation. No refreshLicenseCode: the merchant learns the code when it is activated, with its validity.")
}

// TestAnActivationNotSignalledIsCaughtUp: an activation the open API could
// not signal (Temporal unreachable) is read from the database before an
// action: the renewal is sent, counted from that activation.
func TestAnActivationNotSignalledIsCaughtUp(t *testing.T) {
	m := &codeMerchant{}
	r := newCodeRun(t, m)
	jan2 := r.start.Add(day)
	r.activatedUnsignalled = &jan2
	r.actAt(3*day, Action{Kind: ActRenew})
	r.actAt(4*day, Action{Kind: ActUnsubscribe})
	r.run()
	require.True(t, r.env.IsWorkflowCompleted())
	require.NoError(t, r.env.GetWorkflowError())
	sent := m.sent()
	require.Len(t, sent, 2)
	require.Equal(t, "20260302000000", sent[0]["expireTime"], "a month from Jan 2, renewed by a month")
	require.Equal(t, "releaseLicenseCode", sent[1]["activity"])
}

// TestLicenseCodeCallsAreRetriedUntil000000: each callback is retried
// every 2 minutes (emulated) until answered 000000: a renewal the server
// cannot record yet (000005), a freeze for a code it does not know
// (000003); one that is never answered 000000 stops after 60 retries and
// is listed as failed, restartable.
func TestLicenseCodeCallsAreRetriedUntil000000(t *testing.T) {
	m := &codeMerchant{refuse: func(in CallInput, attempt int32) string {
		switch in.Activity {
		case "refreshLicenseCode":
			if attempt <= 2 {
				return "000005"
			}
		case "updateLicenseCodeStatus":
			if attempt <= 3 {
				return "000003"
			}
		case "releaseLicenseCode":
			return "000005"
		}
		return ""
	}}
	r := newCodeRun(t, m)
	r.activateAt(day)
	r.actAt(2*day, Action{Kind: ActRenew})
	r.run()
	require.True(t, r.env.IsWorkflowCompleted())
	require.NoError(t, r.env.GetWorkflowError())

	byActivity := map[string][]time.Time{}
	for _, a := range m.attempts {
		byActivity[a.in.Activity] = append(byActivity[a.in.Activity], a.at)
	}
	require.Len(t, byActivity["refreshLicenseCode"], 3, "two refusals (000005), then 000000")
	require.Len(t, byActivity["updateLicenseCodeStatus"], 4, "three refusals (000003), then 000000")
	require.Len(t, byActivity["releaseLicenseCode"], 61, "the first call and 60 retries")
	for _, times := range byActivity {
		for i := 1; i < len(times); i++ {
			require.Equal(t, 2*time.Minute, times[i].Sub(times[i-1]), "every 2 minutes")
		}
	}
	final := r.last(t)
	results := map[string]string{}
	for _, c := range final.Code.Calls {
		results[c.Activity] = c.Result
	}
	require.Equal(t, map[string]string{"refreshLicenseCode": "000000", "updateLicenseCodeStatus": "000000",
		"releaseLicenseCode": CallFailedForGood}, results)
	require.Equal(t, StateReleased, final.Purchase.State, "the marketplace released the code, whatever the merchant answered")
	require.True(t, final.Code.Released)
}

// TestValidateLicenseCodeActions: only the actions that make sense for a
// code are accepted, in the states they make sense in.
func TestValidateLicenseCodeActions(t *testing.T) {
	p := &purchase{State: StateLicenseIssued, Buy: BuyRequest{LicenseCode: true, BillingMode: ModePeriod}}
	require.NoError(t, p.validate(Action{Kind: ActRenew}))
	require.NoError(t, p.validate(Action{Kind: ActUnsubscribe}))
	require.ErrorContains(t, p.validate(Action{Kind: ActRefundRenewal}), "no renewal period")
	require.ErrorContains(t, p.validate(Action{Kind: actLicenseActivated}), "activation time")
	for _, kind := range []string{ActUpgrade, ActConvert, ActArrears, ActPay, ActBind, ActLicenseRequest, ActAccept} {
		require.ErrorContains(t, p.validate(Action{Kind: kind, Quantity: 2}), "not possible for a license code", kind)
	}
	p.State = StateUnsubscribed
	require.ErrorContains(t, p.validate(Action{Kind: ActRenew}), "while the purchase is unsubscribed")
}

// TestTheOpenAPIFollowsTheCodesLife: the first activation, and only it,
// tells the purchase's workflow; the query API then reports what the
// workflow wrote: the expiry a renewal moved (ALIVE past the first
// expiry), RELEASED once released; an older write changes nothing.
func TestTheOpenAPIFollowsTheCodesLife(t *testing.T) {
	db := newStore(t)
	ctx := t.Context()
	code := LicenseCodeView{License: licenseCodeOf("CS9"), PurchaseID: "CS9", ProductID: "p", OrderID: "CS9", Amount: 1, ValidForMS: 60_000}
	require.NoError(t, db.SaveLicenseCode(ctx, code))
	open := NewOpenAPI(db, testAK, testSK, key, nil)
	type told struct {
		purchaseID string
		at         time.Time
	}
	var activations []told
	open.onLicenseActivated(func(_ context.Context, purchaseID string, at time.Time) {
		activations = append(activations, told{purchaseID, at})
	})
	srv := httptest.NewServer(open)
	t.Cleanup(srv.Close)
	merchant, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: testSK})
	require.NoError(t, err)

	// An activation a little in the past: its validity has ended.
	at := time.Now().UTC().Add(-90 * time.Second).Truncate(time.Second)
	info, err := merchant.ActivateLicense(ctx, code.License, at)
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseExpired, info.Status)
	_, err = merchant.ActivateLicense(ctx, code.License, time.Time{})
	require.NoError(t, err)
	require.Equal(t, []told{{"CS9", at}}, activations, "the first activation only")
	read, err := (&Activities{Store: db}).LicenseCodeActivation(ctx, code.License)
	require.NoError(t, err)
	require.Equal(t, at, read.UTC(), "what the workflow reads when it missed the signal")

	calls := LicenseCodeCalls{{MessageID: "CS9-001-refreshLicenseCode", Activity: "refreshLicenseCode", Detail: "RENEWAL", SentAt: at, Result: "000000"}}
	require.NoError(t, db.UpdateLicenseCode(ctx, LicenseCodeUpdate{License: code.License, ValidForMS: 3_600_000, Calls: calls}, 5))
	info, err = merchant.QueryLicense(ctx, code.License)
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseAlive, info.Status, "renewed")
	require.Equal(t, at.Add(time.Hour), info.ExpireTime.UTC(), "the renewed expiry")
	got, err := db.LicenseCodeOf(ctx, "CS9")
	require.NoError(t, err)
	require.Equal(t, calls[0].MessageID, got.Calls[0].MessageID)

	require.NoError(t, db.UpdateLicenseCode(ctx, LicenseCodeUpdate{License: code.License, ValidForMS: 1, Released: true}, 4))
	info, err = merchant.QueryLicense(ctx, code.License)
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseAlive, info.Status, "an older write changes nothing")
	require.NoError(t, db.UpdateLicenseCode(ctx, LicenseCodeUpdate{License: code.License, ValidForMS: 3_600_000, Released: true, Calls: calls}, 6))
	info, err = merchant.QueryLicense(ctx, code.License)
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseReleased, info.Status)
}

// TestLicenseCodeCallsAreSignedWithTheLicenseKey: the three callbacks are
// signed with the license key and their answers' Body-Sign checked with
// it; an answer signed with the basic key, 000003 and 000005 are failures,
// which the delivery mode retries.
func TestLicenseCodeCallsAreSignedWithTheLicenseKey(t *testing.T) {
	const licenseKey = "emulator-test-license-key"
	db := newStore(t)
	body := marketplaceJSON(map[string]any{"activity": "updateLicenseCodeStatus", "license": "PL1", "status": "FREEZE"})
	tests := []struct {
		name, answer, signKey, wantErr string
	}{
		{"answered with the license key", `{"resultCode":"000000","resultMsg":"success."}`, licenseKey, ""},
		{"answered with the basic key", `{"resultCode":"000000","resultMsg":"success."}`, key, "no valid Body-Sign"},
		{"the code is unknown", `{"resultCode":"000003","resultMsg":"license not found"}`, licenseKey, "resultCode 000003"},
		{"the server cannot record", `{"resultCode":"000005","resultMsg":"try later"}`, licenseKey, "resultCode 000005"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				raw, _ := io.ReadAll(r.Body)
				v := &koogallery.Verifier{AccessKey: licenseKey, Nonces: allNoncesFresh{}}
				if _, err := v.Verify(r.Context(), r.URL.Query(), raw); err != nil {
					t.Errorf("not signed with the license key: %v", err)
				}
				w.Header().Set(koogallery.BodySignHeader, koogallery.BodySign(tc.signKey, []byte(tc.answer)))
				_, _ = w.Write([]byte(tc.answer))
			}))
			t.Cleanup(srv.Close)
			a := &Activities{Store: db, ProductionURL: srv.URL + "/produce", AccessKey: key, LicenseAccessKey: licenseKey}
			id := fmt.Sprintf("lic-%d", i)
			res, err := a.Call(t.Context(), CallInput{MessageID: id, PurchaseID: "P", Activity: "updateLicenseCodeStatus", Body: body})
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, "000000", res.ResultCode)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.False(t, appErr.NonRetryable(), "retried by the delivery mode")
			msg, err := db.Message(t.Context(), id)
			require.NoError(t, err, "listed among the failed calls")
			require.Contains(t, msg.Error, tc.wantErr)
		})
	}
	a := &Activities{Store: db, ProductionURL: "http://127.0.0.1:1/produce", AccessKey: key}
	_, err := a.Call(t.Context(), CallInput{MessageID: "lic-nokey", PurchaseID: "P", Activity: "releaseLicenseCode", Body: `{}`})
	require.ErrorContains(t, err, "KOOGALLERY_LICENSE_ACCESS_KEY")
}

// TestShowAndBuyTellTheCodesLife: show lists the code's calls with their
// answers; buy -license-code says how to renew, refund and release it.
func TestShowAndBuyTellTheCodesLife(t *testing.T) {
	var out bytes.Buffer
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	printLicenseCode(&out, &LicenseCodeShown{Status: "ALIVE", ExpireTime: &at, LicenseCodeView: LicenseCodeView{
		License: "PL1", ActivatedAt: &at, Calls: LicenseCodeCalls{
			{Activity: "refreshLicenseCode", Detail: "RENEWAL expireTime 20260302030405", SentAt: at, Result: "000000"},
			{Activity: "updateLicenseCodeStatus", Detail: "FREEZE", SentAt: at},
			{Activity: "releaseLicenseCode", Detail: "at the end of the retention", SentAt: at, Result: CallFailedForGood},
		}}})
	require.Contains(t, out.String(), "license    PL1: ALIVE, activated ")
	require.Contains(t, out.String(), "refreshLicenseCode      RENEWAL expireTime 20260302030405")
	require.Regexp(t, `RENEWAL expireTime 20260302030405 +answered 000000\n`, out.String())
	require.Regexp(t, `FREEZE +retrying\n`, out.String())
	require.Regexp(t, `at the end of the retention +failed \(restartable\)\n`, out.String())

	t.Chdir(t.TempDir())
	srv, _ := fakeConsole(t, PurchaseView{})
	printed, err := cliRun(t, map[string]string{"EMULATOR_URL": srv.URL}, "buy", "-license-code")
	require.NoError(t, err)
	require.Contains(t, printed, "license code "+licenseCodeOf("CSBOUGHT"))
	for _, cmd := range []string{"renew", "refund-renewal", "unsubscribe", "show"} {
		require.Contains(t, printed, "bin/fulfillment emulator "+cmd+" CSBOUGHT")
	}
}

// signalRecorder is a Temporal client that records the signals sent.
type signalRecorder struct {
	client.Client
	mu      sync.Mutex
	signals []string
}

func (r *signalRecorder) SignalWorkflow(_ context.Context, workflowID, _, name string, arg any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signals = append(r.signals, fmt.Sprintf("%s %s %s", workflowID, name, arg.(time.Time).UTC().Format(time.RFC3339)))
	return nil
}

// TestTheConsoleTellsTheWorkflowOfTheActivation: a code activated through
// the emulator's open API starts its clock in its purchase's workflow.
func TestTheConsoleTellsTheWorkflowOfTheActivation(t *testing.T) {
	db := newStore(t)
	require.NoError(t, db.SaveLicenseCode(t.Context(), LicenseCodeView{License: licenseCodeOf("CS8"), PurchaseID: "CS8",
		ProductID: "p", OrderID: "CS8", Amount: 1, ValidForMS: 60_000}))
	temporal := &signalRecorder{}
	console := NewConsole(ConsoleConfig{Store: db, Temporal: temporal, Scale: 8640, OpenAPI: NewOpenAPI(db, testAK, testSK, key, nil)})
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	merchant, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: testSK})
	require.NoError(t, err)
	at := time.Now().UTC().Truncate(time.Second)
	_, err = merchant.ActivateLicense(t.Context(), licenseCodeOf("CS8"), at)
	require.NoError(t, err)
	require.Equal(t, []string{"emulator/CS8 license-activated " + at.Format(time.RFC3339)}, temporal.signals)
}

// TestCodesIssuedBeforeTheirLifeWasPlayedEndAtTheIssue: the history of a
// purchase whose code was issued before the emulator played a code's life
// replays as it was written: the workflow ends at the issue.
func TestCodesIssuedBeforeTheirLifeWasPlayedEndAtTheIssue(t *testing.T) {
	m := &codeMerchant{}
	r := newCodeRun(t, m)
	r.env.OnGetVersion(licenseCodeLifeChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	r.run()
	require.True(t, r.env.IsWorkflowCompleted())
	require.NoError(t, r.env.GetWorkflowError())
	require.Equal(t, StateLicenseIssued, r.last(t).Purchase.State)
	require.Empty(t, m.attempts)
}
