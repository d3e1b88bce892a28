package emulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

const key = "emulator-test-key"

// merchant answers production-interface calls with the given body, signed
// with signKey (empty: no Body-Sign header).
func merchant(t *testing.T, status int, body, signKey string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		v := &koogallery.Verifier{AccessKey: key, Nonces: allNoncesFresh{}}
		form, err := v.Verify(r.Context(), r.URL.Query(), raw)
		if err != nil {
			t.Errorf("the emulator's call is not signed per contract §2.2: %v", err)
		}
		// A sorted compact body is its own canonical form, and matches raw.
		if canonical, _ := koogallery.CanonicalBody(raw, koogallery.BasicCanonical); string(canonical) != string(raw) && form != koogallery.FormCanonical {
			t.Errorf("the emulator signed the %s body, want its canonical form", form)
		}
		if signKey != "" {
			w.Header().Set(koogallery.BodySignHeader, koogallery.BodySign(signKey, []byte(body)))
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type allNoncesFresh struct{}

func (allNoncesFresh) Claim(context.Context, string, time.Time) (bool, error) { return true, nil }

func TestCallJudgesAnswersLikeTheMarketplace(t *testing.T) {
	db := newStore(t)
	newInstance := `{"activity":"newInstance","orderId":"O","orderLineId":"O-1","businessId":"b"}`
	tests := []struct {
		name     string
		activity string
		status   int
		answer   string
		signKey  string
		wantErr  string
	}{
		{"success", "newInstance", 200, `{"resultCode":"000000","resultMsg":"success","instanceId":"i-1"}`, key, ""},
		{"processing is fine for newInstance", "newInstance", 200, `{"resultCode":"000004","resultMsg":"wait","instanceId":"i-1"}`, key, ""},
		{"wrong Body-Sign", "newInstance", 200, `{"resultCode":"000000","resultMsg":"success","instanceId":"i-1"}`, "another-key", "no valid Body-Sign"},
		{"missing Body-Sign", "newInstance", 200, `{"resultCode":"000000","resultMsg":"success","instanceId":"i-1"}`, "", "no valid Body-Sign"},
		{"HTTP error", "newInstance", 500, `{"resultCode":"000000"}`, key, "HTTP 500"},
		{"failure code", "newInstance", 200, `{"resultCode":"000005","resultMsg":"down"}`, key, "resultCode 000005"},
		{"no instanceId", "newInstance", 200, `{"resultCode":"000000","resultMsg":"success"}`, key, "no instanceId"},
		{"not JSON", "newInstance", 200, `oops`, key, "not JSON"},
		{"processing is a failure for a renewal", "refreshInstance", 200, `{"resultCode":"000004","resultMsg":"wait"}`, key, "resultCode 000004"},
		{"a refused change is an answer", "changeInstanceCheck", 200, `{"resultCode":"000002","resultMsg":"too small"}`, key, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := merchant(t, tc.status, tc.answer, tc.signKey)
			a := &Activities{Store: db, ProductionURL: srv.URL + "/produce", AccessKey: key}
			id := "msg-" + string(rune('a'+i))
			res, err := a.Call(context.Background(), CallInput{MessageID: id, PurchaseID: "P", Activity: tc.activity, Body: newInstance})
			msg, lookErr := db.Message(context.Background(), id)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.NotEmpty(t, res.ResultCode)
				require.ErrorIs(t, lookErr, ErrNotFound, "a success is not a failed call")
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.False(t, appErr.NonRetryable(), "the delivery mode decides the retries")
			require.NoError(t, lookErr, "every failed attempt is listed")
			require.Equal(t, MessageFailed, msg.Status)
			require.Equal(t, tc.activity, msg.Activity)
			require.Equal(t, newInstance, msg.Body)
			require.Contains(t, msg.Error, tc.wantErr)
		})
	}
}

func TestQueryKeepsTheAccessInformationOutOfTheWorkflow(t *testing.T) {
	db := newStore(t)
	user, err := koogallery.EncryptField(key, koogallery.AES256, "admin")
	require.NoError(t, err)
	answer, _ := json.Marshal(map[string]any{"resultCode": "000000", "resultMsg": "success", "info": []any{map[string]any{
		"instanceId": "i-1", "appInfo": map[string]any{"frontEndUrl": "https://app/t/1", "userName": user, "password": user, "memo": "hi"},
	}}})
	srv := merchant(t, 200, string(answer), key)
	a := &Activities{Store: db, ProductionURL: srv.URL, AccessKey: key}
	res, err := a.Call(context.Background(), CallInput{PurchaseID: "P1", Activity: "queryInstance", Body: `{"activity":"queryInstance","instanceId":"i-1"}`})
	require.NoError(t, err)
	require.Equal(t, CallResult{ResultCode: "000000", ResultMsg: "success"}, res, "no credentials in the result")
	app, err := db.AppInfo(context.Background(), "P1")
	require.NoError(t, err)
	require.Equal(t, "https://app/t/1", app.FrontEndURL)
	require.Equal(t, user, app.UserName, "kept as received")

	c := NewConsole(ConsoleConfig{AccessKey: key, Encryption: "aes256"})
	require.Equal(t, "admin", c.decrypt(app).UserName, "the console decrypts for the buyer")
	require.NotEmpty(t, NewConsole(ConsoleConfig{AccessKey: "other", Encryption: "aes256"}).decrypt(app).DecryptError)

	// A queryInstance still processing is not a failed call.
	srv2 := merchant(t, 200, `{"resultCode":"000004","resultMsg":"wait","info":[]}`, key)
	a.ProductionURL = srv2.URL
	res, err = a.Call(context.Background(), CallInput{MessageID: "q", PurchaseID: "P2", Activity: "queryInstance", Body: `{}`})
	require.NoError(t, err)
	require.Equal(t, "000004", res.ResultCode)
}

// TestCallsAreUnsortedAndSignedAsConfigured: the emulator sends bodies
// whose members are not sorted and signs their canonical form, as
// Huawei's sample verifies; FormRaw signs the bytes sent.
func TestCallsAreUnsortedAndSignedAsConfigured(t *testing.T) {
	body := marketplaceJSON(map[string]any{"activity": "updateInstanceStatus", "instanceId": "i-<1>", "status": "FREEZE", "testFlag": "1"})
	require.Equal(t, `{"testFlag":"1","status":"FREEZE","instanceId":"i-\u003c1\u003e","activity":"updateInstanceStatus"}`, body)

	db := newStore(t)
	for _, form := range []koogallery.SignedForm{"", koogallery.FormCanonical, koogallery.FormRaw} {
		var got koogallery.SignedForm
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, _ := io.ReadAll(r.Body)
			if string(raw) != body {
				t.Errorf("sent %s, built %s", raw, body)
			}
			got, _ = (&koogallery.Verifier{AccessKey: key, Nonces: allNoncesFresh{}}).Verify(r.Context(), r.URL.Query(), raw)
			answer := `{"resultCode":"000000","resultMsg":"success"}`
			w.Header().Set(koogallery.BodySignHeader, koogallery.BodySign(key, []byte(answer)))
			_, _ = w.Write([]byte(answer))
		}))
		a := &Activities{Store: db, ProductionURL: srv.URL, AccessKey: key, SignatureForm: form}
		_, err := a.Call(context.Background(), CallInput{PurchaseID: "P", Activity: "updateInstanceStatus", Body: body})
		srv.Close()
		require.NoError(t, err)
		want := form
		if want == "" {
			want = koogallery.FormCanonical
		}
		require.Equal(t, want, got)
	}
}

func TestParseScaleAndClock(t *testing.T) {
	for in, want := range map[string]float64{"1": 1, "8640": 8640, "1d=10s": 8640, "1h=5s": 720, "2d=1s": 172800, "1d=4800ms": 18000} {
		got, err := ParseScale(in)
		require.NoError(t, err, in)
		require.InDelta(t, want, got, 1e-9, in)
	}
	for _, bad := range []string{"", "0", "0.5", "-3", "x", "1d=0s", "=10s", "1d=", "NaN", "Inf"} {
		_, err := ParseScale(bad)
		require.Error(t, err, bad)
	}
	origin := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := Clock{Scale: 8640, Origin: origin}
	require.Equal(t, 10*time.Second, c.Real(24*time.Hour))
	month := origin.AddDate(0, 1, 0)
	require.Equal(t, origin.Add(310*time.Second), c.RealAt(month), "31 days in 310 s")
	require.Equal(t, month, c.EmulatedAt(c.RealAt(month)))
	require.Equal(t, time.Hour, Clock{Scale: 1}.Real(time.Hour))
}

func TestBuyRequestValidation(t *testing.T) {
	b := BuyRequest{}
	require.NoError(t, b.Validate())
	require.Equal(t, BuyRequest{ProductID: "demo-product", SkuCode: "demo-sku", BillingMode: ModePeriod, PeriodType: "month",
		PeriodNumber: 1, Quantity: 10, CustomerName: "emulated_buyer"}, b)
	for name, bad := range map[string]BuyRequest{
		"unknown mode":            {BillingMode: "WEEKLY"},
		"unknown period":          {PeriodType: "week"},
		"too many periods":        {PeriodNumber: 61},
		"pay-per-use period":      {BillingMode: ModeOnDemand, PeriodType: "month"},
		"trial of a one-time":     {BillingMode: ModeOneTime, TrialDays: 7},
		"trial too long":          {TrialDays: 91},
		"supervised pay-per-use":  {BillingMode: ModeOnDemand, Supervised: true},
		"negative quantity":       {Quantity: -1},
		"reset of a subscription": {Reset: "monthly"},
		"reset weekly":            {BillingMode: ModeOnDemandPkg, Reset: "weekly"},
	} {
		require.Error(t, bad.Validate(), name)
	}
	// A package whose content resets is sold under the product make run
	// declares resetting, unless another is named.
	pkg := BuyRequest{BillingMode: ModeOnDemandPkg, Reset: "monthly"}
	require.NoError(t, pkg.Validate())
	require.Equal(t, "demo-package-monthly", pkg.ProductID)
	named := BuyRequest{BillingMode: ModeOnDemandPkg, Reset: "yearly", ProductID: "sms-pack"}
	require.NoError(t, named.Validate())
	require.Equal(t, "sms-pack", named.ProductID)
}

// fakeCalls answers the emulator's calls from a script, by activity.
type fakeCalls struct {
	mu    sync.Mutex
	calls []CallInput
	fail  map[string]bool
}

func (f *fakeCalls) Call(_ context.Context, in CallInput) (CallResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if f.fail[in.Activity] {
		return CallResult{}, temporal.NewApplicationError("resultCode 000005: down", "CallFailed")
	}
	return CallResult{ResultCode: "000000", InstanceID: "inst-1"}, nil
}

func (f *fakeCalls) count(activity string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.Activity == activity {
			n++
		}
	}
	return n
}

func newEmulatorEnv(t *testing.T, calls *fakeCalls) (*testsuite.TestWorkflowEnvironment, *[]Purchase) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	env.RegisterWorkflowWithOptions(PurchaseWorkflow, workflow.RegisterOptions{Name: PurchaseWorkflowName})
	env.RegisterActivityWithOptions(calls.Call, activity.RegisterOptions{Name: CallActivity})
	env.RegisterActivityWithOptions(func(context.Context, Order) error { return nil }, activity.RegisterOptions{Name: SaveOrderActivity})
	var saved []Purchase
	var mu sync.Mutex
	env.RegisterActivityWithOptions(func(_ context.Context, in SaveInput) error {
		mu.Lock()
		defer mu.Unlock()
		saved = append(saved, in.Purchase)
		return nil
	}, activity.RegisterOptions{Name: SaveActivity})
	env.RegisterActivityWithOptions(func(context.Context, RelayInput) (bool, error) { return false, nil }, activity.RegisterOptions{Name: RelayActivity})
	return env, &saved
}

// TestNewInstanceRetriedHourlyForThreeHoursThenRefunded: the marketplace's
// delivery mode of newInstance, as an activity retry policy.
func TestNewInstanceRetriedHourlyForThreeHoursThenRefunded(t *testing.T) {
	calls := &fakeCalls{fail: map[string]bool{"newInstance": true}}
	env, saved := newEmulatorEnv(t, calls)
	env.ExecuteWorkflow(PurchaseWorkflowName, PurchaseInput{
		PurchaseID: "P1", Buy: BuyRequest{BillingMode: ModePeriod, PeriodType: "month", PeriodNumber: 1, Quantity: 1},
		Clock: Clock{Scale: 1, Origin: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, Retention: 360 * time.Hour,
	})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 4, calls.count("newInstance"), "the first call and three hourly retries")
	require.Equal(t, StateCancelled, (*saved)[len(*saved)-1].State, "then the order is unsubscribed and refunded")
}

// TestRenewalIsSentOnceAndUnfreezesAFrozenPurchase: after expiry the
// marketplace freezes; a renewal (sent once) is followed by UNFREEZE.
func TestRenewalIsSentOnceAndUnfreezesAFrozenPurchase(t *testing.T) {
	calls := &fakeCalls{fail: map[string]bool{"refreshInstance": true}}
	env, saved := newEmulatorEnv(t, calls)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var renewErr error
	// A day after the month's expiry: frozen, then renewed.
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(ActionSignal, "renew", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { renewErr = err }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, Action{Kind: ActRenew})
	}, 32*24*time.Hour)
	env.ExecuteWorkflow(PurchaseWorkflowName, PurchaseInput{
		PurchaseID: "P2", Buy: BuyRequest{BillingMode: ModePeriod, PeriodType: "month", PeriodNumber: 1, Quantity: 1},
		Clock: Clock{Scale: 1, Origin: start}, Retention: 360 * time.Hour,
	})
	require.NoError(t, renewErr)
	require.Equal(t, 1, calls.count("refreshInstance"), "a renewal is sent once, even when it fails")
	statuses := []string{}
	for _, c := range calls.calls {
		if c.Activity == "updateInstanceStatus" {
			var b map[string]string
			require.NoError(t, json.Unmarshal([]byte(c.Body), &b))
			statuses = append(statuses, b["status"])
		}
	}
	require.Equal(t, []string{"FREEZE", "UNFREEZE", "FREEZE"}, statuses, "frozen at expiry, unfrozen by the renewal, frozen at the renewed expiry")
	final := (*saved)[len(*saved)-1]
	require.Equal(t, StateReleased, final.State)
	require.Equal(t, start.AddDate(0, 2, 0), *final.EmulatedExpireTime, "renewed from the old expiry")
}

// TestAMonthIsAMonthOnTheTimeline: from "ordered" to "expired" the timeline
// shows exactly the month sold. "ordered" was stamped after the order was
// saved, which at a day per 10 s took minutes of emulated time: the month
// looked 7 minutes short.
func TestAMonthIsAMonthOnTheTimeline(t *testing.T) {
	env, _ := newEmulatorEnv(t, &fakeCalls{})
	env.OnActivity(SaveOrderActivity, mock.Anything, mock.Anything).Return(nil).After(50 * time.Millisecond)
	var events []Event
	env.OnActivity(SaveActivity, mock.Anything, mock.Anything).Return(func(_ context.Context, in SaveInput) error {
		events = append(events, in.Events...)
		return nil
	})
	env.ExecuteWorkflow(PurchaseWorkflowName, PurchaseInput{
		PurchaseID: "P3", Buy: BuyRequest{BillingMode: ModePeriod, PeriodType: "month", PeriodNumber: 1, Quantity: 1},
		Clock: Clock{Scale: 8640, Origin: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, Retention: 360 * time.Hour,
	})
	require.True(t, env.IsWorkflowCompleted())
	at := map[string]time.Time{}
	for _, e := range events {
		at[e.Kind] = e.EmulatedAt
	}
	require.Contains(t, at, "ordered")
	require.Contains(t, at, "expired")
	require.WithinDuration(t, at["ordered"].AddDate(0, 1, 0), at["expired"], time.Second, "a month from the order to the expiry")
}

// TestTheMerchantIsToldTheExpiryToTheSecond: the merchant is told expiry
// times to the second (yyyyMMddHHmmss), so on a clock whose day is a whole
// number of real seconds the order is placed at a whole real second and
// its expiry falls on one. The real expiry once had a fraction, cut off in
// what the merchant was told: its month ended up to 2.4 emulated hours
// before the marketplace's (9 minutes in one run of make run).
func TestTheMerchantIsToldTheExpiryToTheSecond(t *testing.T) {
	env, _ := newEmulatorEnv(t, &fakeCalls{})
	start := time.Date(2026, 1, 1, 0, 0, 0, 437_000_000, time.UTC)
	env.SetStartTime(start)
	var orders []Order
	env.OnActivity(SaveOrderActivity, mock.Anything, mock.Anything).Return(func(_ context.Context, o Order) error {
		orders = append(orders, o)
		return nil
	})
	var events []Event
	env.OnActivity(SaveActivity, mock.Anything, mock.Anything).Return(func(_ context.Context, in SaveInput) error {
		events = append(events, in.Events...)
		return nil
	})
	clock := Clock{Scale: 8640, Origin: start.Add(-3 * time.Millisecond)}
	env.ExecuteWorkflow(PurchaseWorkflowName, PurchaseInput{
		PurchaseID: "P4", Buy: BuyRequest{BillingMode: ModePeriod, PeriodType: "month", PeriodNumber: 1, Quantity: 1},
		Clock: clock, Retention: 360 * time.Hour,
	})
	require.True(t, env.IsWorkflowCompleted())
	require.NotEmpty(t, orders)
	told, err := koogallery.ParseTime(koogallery.FormatTime(*orders[0].ExpireTime))
	require.NoError(t, err)
	require.Equal(t, orders[0].ExpireTime.UTC(), told.UTC(), "the expiry the merchant is told is the marketplace's")
	var ordered time.Time
	for _, e := range events {
		if e.Kind == "ordered" {
			ordered = e.EmulatedAt
		}
	}
	require.Equal(t, ordered.AddDate(0, 1, 0), clock.EmulatedAt(*orders[0].ExpireTime), "a month from the order")
}
