package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/provisioner"
)

// emuStack is a server with the emulator playing KooGallery against it,
// through a proxy that can make the server's answers fail.
type emuStack struct {
	*stack
	emu   *emulator.Client
	proxy *faultProxy
}

// startEmulatorStack runs the server and "fulfillment emulator serve" on
// one Temporal and one database; scale is EMULATOR_TIME_SCALE. The
// emulator signs the canonical form of its (unsorted) bodies.
func startEmulatorStack(t *testing.T, scale string, serverEnv ...string) *emuStack {
	t.Helper()
	return startEmulatorStackSigning(t, "canonical", scale, serverEnv...)
}

// startEmulatorStackSigning is startEmulatorStack with the emulator's
// EMULATOR_SIGNATURE_FORM.
func startEmulatorStackSigning(t *testing.T, signatureForm, scale string, serverEnv ...string) *emuStack {
	t.Helper()
	emuPort := testenv.FreePort(t)
	emuURL := "http://127.0.0.1:" + strconv.Itoa(emuPort)
	proxy := newFaultProxy(t)
	s := startStack(t, append([]string{"KOOGALLERY_API_URL=" + emuURL}, serverEnv...)...)
	proxy.setTarget(s.baseURL)

	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + envValue(s.env, "DATABASE_URL"),
		"TEMPORAL_ADDRESS=" + s.temporal.Address(),
		"KOOGALLERY_ACCESS_KEY=" + accessKey,
		"KOOGALLERY_AK=" + openAPIAK,
		"KOOGALLERY_SK=" + openAPISK,
		"KOOGALLERY_KIT_ACCESS_KEY=" + kitAccessKey,
		"KOOGALLERY_LICENSE_ACCESS_KEY=" + licenseAccessKey,
		"KOOGALLERY_V1_ACCESS_KEY=" + v1AccessKey,
		"EMULATOR_KIT_PUBLIC_KEY_FILE=" + kitPublicKeyFile,
		"EMULATOR_ADDR=127.0.0.1:" + strconv.Itoa(emuPort),
		"EMULATOR_PRODUCTION_URL=" + proxy.URL() + "/produce",
		"EMULATOR_TIME_SCALE=" + scale,
		"EMULATOR_SIGNATURE_FORM=" + signatureForm,
		"EMULATOR_MERCHANT_ADMIN_URL=" + s.baseURL,
		"EMULATOR_MERCHANT_ADMIN_TOKEN=" + adminToken,
		"LOG_LEVEL=debug",
	}
	logs := &testenv.SyncBuffer{}
	proc := startProcess(t, "emulator", env, logs, emuURL+"/healthz", "emulator", "serve")
	t.Cleanup(func() {
		stopProcess(proc)
		if t.Failed() {
			t.Logf("emulator logs:\n%s", logs.String())
		}
	})
	return &emuStack{stack: s, emu: &emulator.Client{BaseURL: emuURL}, proxy: proxy}
}

func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// purchase waits until the emulated purchase satisfies cond.
func (e *emuStack) purchase(id, what string, cond func(emulator.PurchaseView) bool) emulator.PurchaseView {
	e.t.Helper()
	get := func() emulator.PurchaseView {
		v, err := e.emu.Purchase(context.Background(), id)
		if err != nil {
			return emulator.PurchaseView{}
		}
		return v
	}
	return waitUntil(e.t, 90*time.Second, "purchase "+id+" to be "+what, get, func(v emulator.PurchaseView) bool {
		return v.PurchaseID != "" && cond(v)
	})
}

func (e *emuStack) purchaseState(id, state string) emulator.PurchaseView {
	e.t.Helper()
	return e.purchase(id, "reached "+state, func(v emulator.PurchaseView) bool { return v.State == state })
}

func (e *emuStack) buy(req emulator.BuyRequest) string {
	e.t.Helper()
	b, err := e.emu.Buy(context.Background(), req)
	require.NoError(e.t, err)
	return b.PurchaseID
}

func (e *emuStack) act(id string, a emulator.Action) {
	e.t.Helper()
	require.NoError(e.t, e.emu.Act(context.Background(), id, a))
}

func hasEvent(v emulator.PurchaseView, kind string) bool {
	for _, ev := range v.Timeline {
		if ev.Kind == kind {
			return true
		}
	}
	return false
}

func event(t *testing.T, v emulator.PurchaseView, kind string) emulator.Event {
	t.Helper()
	for _, ev := range v.Timeline {
		if ev.Kind == kind {
			return ev
		}
	}
	t.Fatalf("no %s event in %+v", kind, v.Timeline)
	return emulator.Event{}
}

// TestEmulatedMonthlyLife: a monthly purchase played by the emulator on a
// fast clock, provisioned, renewed, expired, frozen and released, as both
// the marketplace and the merchant see it; once with every call signed
// over its canonical form (its members sent unsorted), once over its raw
// bytes.
func TestEmulatedMonthlyLife(t *testing.T) {
	t.Parallel()
	for _, form := range []string{"canonical", "raw"} {
		t.Run("signed "+form, func(t *testing.T) {
			t.Parallel()
			e := startEmulatorStackSigning(t, form, "1d=300ms", "LIFECYCLE_FREEZE_GRACE=30s", "LIFECYCLE_RETENTION=60s")
			playMonthlyLife(t, e)

			// Every call matched the form it was signed over, and no other.
			metrics := e.metrics()
			other := map[string]string{"canonical": "raw", "raw": "canonical"}[form]
			require.Regexp(t, `fulfillment_signature_checks_total\{form="`+form+`",interface="basic"\} [1-9]`, metrics)
			require.NotContains(t, metrics, `fulfillment_signature_checks_total{form="`+other+`"`)
			require.NotContains(t, metrics, `fulfillment_signature_checks_total{form="none"`)
		})
	}
}

func playMonthlyLife(t *testing.T, e *emuStack) {
	id := e.buy(emulator.BuyRequest{PeriodType: "month"})

	inService := e.purchaseState(id, emulator.StateInService)
	require.Equal(t, id, inService.InstanceID, "the first request's businessId is the instanceId")
	require.NotNil(t, inService.AppInfo)
	require.Equal(t, "admin", inService.AppInfo.UserName, "the buyer sees the decrypted credentials")
	require.Len(t, inService.AppInfo.Password, 16)
	require.Equal(t, http.StatusOK, tenantLogin(t, inService.AppInfo.FrontEndURL, inService.AppInfo.UserName, inService.AppInfo.Password))
	firstExpiry := *inService.ExpireTime
	server := e.waitState(id, "active")
	require.WithinDuration(t, firstExpiry, *server.ExpireTime, time.Second, "the merchant read the expiry with Query Order")

	e.act(id, emulator.Action{Kind: emulator.ActRenew})
	renewed := e.purchase(id, "renewed", func(v emulator.PurchaseView) bool { return len(v.Orders) == 2 })
	require.Equal(t, "RENEW", renewed.Orders[1].OrderType)
	e.waitFor(id, "renewed", func(i instance) bool {
		return i.ExpireTime != nil && i.ExpireTime.After(firstExpiry.Add(5*time.Second))
	})

	e.purchaseState(id, emulator.StateFrozen)
	frozen := e.waitState(id, "frozen")
	require.Contains(t, frozen.Reason, "FREEZE")
	released := e.purchaseState(id, emulator.StateReleased)
	require.True(t, hasEvent(released, "retention-ended"))
	e.waitState(id, "released")
	require.Equal(t, http.StatusGone, tenantStatus(t, inService.AppInfo.FrontEndURL))
	require.Empty(t, released.Failed, "every call was answered")
}

// TestEmulatorRetriesAFailingMerchantThenARestartSucceeds: the merchant's
// application refuses to provision; with NEWINSTANCE_WAIT the server
// answers newInstance 000005, the emulator retries it hourly (emulated) and
// lists the failures; once the application is fixed, a restart from the
// console gets the purchase through.
func TestEmulatorRetriesAFailingMerchantThenARestartSucceeds(t *testing.T) {
	t.Parallel()
	app := newFakeApp(t, "app-key-e2e")
	app.failing.Store(true)
	// One emulated hour is 5 s: newInstance is retried every 5 s for 15 s.
	e := startEmulatorStack(t, "1h=5s", "PROVISIONER="+app.URL(), "PROVISIONER_KEY=app-key-e2e", "NEWINSTANCE_WAIT=3s")
	id := e.buy(emulator.BuyRequest{PeriodType: "year"})

	var failed emulator.Message
	require.Eventually(t, func() bool {
		ms, err := e.emu.Messages(context.Background(), "failed")
		if err != nil || len(ms) == 0 {
			return false
		}
		failed = ms[0]
		return failed.Attempts >= 2
	}, 30*time.Second, 100*time.Millisecond, "the emulator retries newInstance and lists the failures")
	require.Equal(t, "newInstance", failed.Activity)
	require.Contains(t, failed.Error, "000005")
	parked := e.details(id)
	require.Equal(t, "parked", parked.State)

	app.failing.Store(false)
	require.NoError(t, e.emu.Restart(context.Background(), failed.ID))
	done := e.purchaseState(id, emulator.StateInService)
	require.NotNil(t, done.AppInfo)
	resolved := false
	for _, m := range done.Failed {
		if m.ID == failed.ID {
			resolved = m.Status == emulator.MessageResolved
		}
	}
	require.True(t, resolved, "the restarted call is answered: %+v", done.Failed)
	active := e.waitState(id, "active")
	require.Equal(t, 1, active.events("provisioning/done"))
	require.GreaterOrEqual(t, app.provisions.Load(), int32(3), "each redelivery retried the provisioning")
}

// TestRenewalFailingOnceIsRestarted: a renewal is sent once; when the
// merchant fails it, it shows as a failed call, and a restart delivers it.
func TestRenewalFailingOnceIsRestarted(t *testing.T) {
	t.Parallel()
	e := startEmulatorStack(t, "1d=1s")
	id := e.buy(emulator.BuyRequest{PeriodType: "year"})
	e.purchaseState(id, emulator.StateInService)
	before := e.waitState(id, "active")

	e.proxy.failNext("refreshInstance", 1)
	e.act(id, emulator.Action{Kind: emulator.ActRenew})
	v := e.purchase(id, "with a failed renewal", func(v emulator.PurchaseView) bool {
		return len(v.Failed) == 1 && v.Failed[0].Status == emulator.MessageFailed
	})
	msg := v.Failed[0]
	require.Equal(t, "refreshInstance", msg.Activity)
	require.Equal(t, 1, msg.Attempts, "a renewal is sent once")
	require.Contains(t, msg.Error, "HTTP 503")
	require.Equal(t, *before.ExpireTime, *e.instance(id).ExpireTime, "the merchant does not know of the renewal yet")

	require.NoError(t, e.emu.Restart(context.Background(), msg.ID))
	restarted := e.purchase(id, "restarted", func(v emulator.PurchaseView) bool {
		return len(v.Failed) == 1 && v.Failed[0].Status == emulator.MessageResolved && hasEvent(v, "restarted")
	})
	// On the emulated clock a year is 365 real seconds: the merchant now
	// has the marketplace's new expiry.
	require.True(t, restarted.ExpireTime.After(*before.ExpireTime))
	e.waitFor(id, "renewed after the restart", func(i instance) bool {
		return i.ExpireTime != nil && i.ExpireTime.Equal(restarted.ExpireTime.Truncate(time.Second))
	})
}

// TestSupervisedOrderCompletes: the supervision flow in the consoles (the
// requirements and their confirmation, the delivery with its result,
// Huawei Cloud's review, the acceptance), relayed to the server's admin
// API; the order completes 3 emulated hours after the acceptance, and both
// sides count the validity from it.
func TestSupervisedOrderCompletes(t *testing.T) {
	t.Parallel()
	// One emulated day is 24 s: 3 h is 3 s, and Temporal's timer latency
	// (well under a second) stays under an emulated quarter of an hour.
	e := startEmulatorStack(t, "1d=24s", "SUPERVISED_PRODUCTS=*", "SUPERVISION_REVIEWED_PRODUCTS=*", "SUPERVISION_SYNC_DELAY=1s")
	id := e.buy(emulator.BuyRequest{PeriodType: "month", Supervised: true, Reviewed: true})
	e.purchaseState(id, emulator.StateAwaitingRequirements)
	e.waitState(id, "awaiting_requirements")

	e.act(id, emulator.Action{Kind: emulator.ActSubmitRequirements})
	e.purchaseState(id, emulator.StateRequirementsSent)
	e.waitState(id, "requirements_submitted")
	e.act(id, emulator.Action{Kind: emulator.ActConfirmRequirements})
	e.purchaseState(id, emulator.StateDelivering)
	e.waitState(id, "awaiting_delivery")
	e.act(id, emulator.Action{Kind: emulator.ActConfirmDelivery, Evidence: "https://docs.example.com/acceptance.pdf",
		Result: "tenant configured, users imported"})
	e.purchaseState(id, emulator.StateUnderReview)
	e.waitState(id, "under_review")
	e.act(id, emulator.Action{Kind: emulator.ActApproveReview})
	e.purchaseState(id, emulator.StateAwaitingAcceptance)
	e.waitState(id, "delivered")
	e.act(id, emulator.Action{Kind: emulator.ActAccept})
	e.waitState(id, "accepted")

	done := e.purchase(id, "completed", func(v emulator.PurchaseView) bool { return v.SupervisionStage == "completed" })
	accepted, completed := event(t, done, "accepted"), event(t, done, "completed")
	took := completed.EmulatedAt.Sub(accepted.EmulatedAt)
	require.GreaterOrEqual(t, took, 3*time.Hour, "completed 3 emulated hours after the acceptance")
	require.Less(t, took, 3*time.Hour+45*time.Minute)
	active := e.waitState(id, "active")
	require.True(t, hasEvent(done, "relayed"), "the consoles' steps reached the server")
	// Each side counts the month from the acceptance on its own clock:
	// the emulator in emulated time, the server in real time (a scaled
	// clock cannot reach into the merchant's own computations).
	emulatedMonth := done.EmulatedExpireTime.Sub(accepted.EmulatedAt)
	require.InDelta(t, (30 * 24 * time.Hour).Hours(), emulatedMonth.Hours(), 48, "emulator: a month after the acceptance")
	sup := e.details(id)
	require.Equal(t, "active", sup.State)
	require.NotNil(t, sup.Supervision)
	require.Equal(t, "tenant configured, users imported", sup.Supervision.Result, "the result description reached the server")
	require.WithinDuration(t, accepted.At.AddDate(0, 1, 0), *active.ExpireTime, 5*time.Second, "server: a month after the relayed acceptance")
}

// TestDebugPurchaseCreatesNoRealTenant: a purchase made like the console's
// debugger (testFlag=1) gets a disposable tenant and is marked debug.
func TestDebugPurchaseCreatesNoRealTenant(t *testing.T) {
	t.Parallel()
	e := startEmulatorStack(t, "1d=1s")
	id := e.buy(emulator.BuyRequest{PeriodType: "month", Debug: true})
	v := e.purchaseState(id, emulator.StateInService)
	require.True(t, v.Debug)
	require.Contains(t, v.AppInfo.Memo, "Disposable tenant for a debug call")
	inst := e.waitState(id, "active")
	raw, err := json.Marshal(inst)
	require.NoError(t, err)
	var full struct {
		Debug bool `json:"debug"`
	}
	req, _ := http.NewRequest(http.MethodGet, e.baseURL+"/v1/instances/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&full))
	require.True(t, full.Debug, "the instance is a debug instance: %s", raw)
	deadlines := e.details(id).Deadlines
	require.Len(t, deadlines, 1, "no lifecycle timers, only the debug TTL")
	require.Equal(t, "debug-ttl", deadlines[0].Kind)
}

// faultProxy stands between the emulator and the server and can fail the
// next calls of an activity, as a merchant's outage would.
type faultProxy struct {
	srv    *httptest.Server
	mu     sync.Mutex
	target *url.URL
	fail   map[string]int
}

func newFaultProxy(t *testing.T) *faultProxy {
	p := &faultProxy{fail: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) URL() string { return p.srv.URL }

func (p *faultProxy) setTarget(raw string) {
	u, _ := url.Parse(raw)
	p.mu.Lock()
	p.target = u
	p.mu.Unlock()
}

func (p *faultProxy) failNext(activity string, n int) {
	p.mu.Lock()
	p.fail[activity] += n
	p.mu.Unlock()
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var envelope struct {
		Activity string `json:"activity"`
	}
	_ = json.Unmarshal(body, &envelope)
	if envelope.Activity == "" && strings.Contains(r.URL.Path, "/produceAPI/v2/") {
		envelope.Activity = path.Base(r.URL.Path) // a 联营 kit call
	}
	if r.Method == http.MethodGet {
		envelope.Activity = r.URL.Query().Get("activity") // a V1 call
	}
	p.mu.Lock()
	target := p.target
	failing := p.fail[envelope.Activity] > 0
	if failing {
		p.fail[envelope.Activity]--
	}
	p.mu.Unlock()
	if failing {
		http.Error(w, "merchant briefly down", http.StatusServiceUnavailable)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
}

// fakeApp is a merchant application behind the HTTP provisioner that can
// refuse to provision.
type fakeApp struct {
	srv        *httptest.Server
	failing    atomic.Bool
	provisions atomic.Int32
}

func newFakeApp(t *testing.T, key string) *fakeApp {
	a := &fakeApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := provisioner.VerifyRequest(r, body, []byte(key), time.Now(), time.Minute); err != nil {
			http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/provision":
			a.provisions.Add(1)
			if a.failing.Load() {
				w.WriteHeader(http.StatusUnprocessableEntity)
				_, _ = w.Write([]byte(`{"error":"tenant quota exhausted"}`))
				return
			}
			var req provisioner.ProvisionRequest
			_ = json.Unmarshal(body, &req)
			_ = json.NewEncoder(w).Encode(provisioner.Tenant{
				FrontEndURL: "https://app.example.com/t/" + req.InstanceID, UserName: "owner", Password: "Initial-Pa55word",
			})
		default:
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeApp) URL() string { return a.srv.URL }
