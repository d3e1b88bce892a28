package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// licenseMerchant is a merchant's production interface for license-code
// callbacks: it verifies them with the license key and signs its answers
// with it; it does not know the code at the first attempt of the first
// renewal (000003), as a server the activation has not reached yet.
type licenseMerchant struct {
	t   *testing.T
	key string

	mu       sync.Mutex
	received []map[string]string
}

func (m *licenseMerchant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	v := &koogallery.Verifier{AccessKey: m.key, Nonces: allNoncesFresh{}}
	if _, err := v.Verify(r.Context(), r.URL.Query(), raw); err != nil {
		m.t.Errorf("a license-code callback not signed with the license key: %v", err)
	}
	var body map[string]string
	_ = json.Unmarshal(raw, &body)
	m.mu.Lock()
	first := len(m.received) == 0
	m.received = append(m.received, body)
	m.mu.Unlock()
	answer := `{"resultCode":"000000","resultMsg":"success."}`
	if first {
		answer = `{"resultCode":"000003","resultMsg":"license code not found"}`
	}
	w.Header().Set(koogallery.BodySignHeader, koogallery.BodySign(m.key, []byte(answer)))
	_, _ = w.Write([]byte(answer))
}

// calls is what the merchant received: activity and scene or status.
func (m *licenseMerchant) calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, b := range m.received {
		out = append(out, b["activity"]+" "+b["scene"]+b["status"]+b["orderId"])
	}
	return out
}

// TestALicenseCodesLifeOnTemporal: the emulator's worker on a Temporal
// dev server, its console and open API, against a merchant that checks
// the license key. A code of 4 days at a day per second: activated
// through the open API, renewed (000003 at first, then 000000), frozen at
// its expiry, unfrozen by a renewal, released by unsubscription; the
// query API follows each step.
func TestALicenseCodesLifeOnTemporal(t *testing.T) {
	const licenseKey = "emulator-test-license-key"
	db := newStore(t)
	tc := testenv.StartTemporal(t).Client(t)
	m := &licenseMerchant{t: t, key: licenseKey}
	production := httptest.NewServer(m)
	t.Cleanup(production.Close)
	queue := "emulator-license-codes"
	w := sdkworker.New(tc, queue, sdkworker.Options{})
	Register(w, &Activities{Store: db, ProductionURL: production.URL + "/produce", AccessKey: key, LicenseAccessKey: licenseKey})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	console := NewConsole(ConsoleConfig{Store: db, Temporal: tc, TaskQueue: queue, Scale: 86400, Retention: 360 * time.Hour,
		OpenAPI: NewOpenAPI(db, testAK, testSK, key, nil), AccessKey: key})
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	emu := &Client{BaseURL: srv.URL}
	software, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: testSK})
	require.NoError(t, err)
	ctx := t.Context()

	b, err := emu.Buy(ctx, BuyRequest{LicenseCode: true, PeriodType: "day", PeriodNumber: 4})
	require.NoError(t, err)
	id, code := b.PurchaseID, licenseCodeOf(b.PurchaseID)
	waitForState(t, emu, id, StateLicenseIssued)
	activated, err := software.ActivateLicense(ctx, code, time.Time{})
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseAlive, activated.Status)
	waitForState(t, emu, id, StateInService)

	require.NoError(t, emu.Act(ctx, id, Action{Kind: ActRenew}))
	waitForCall(t, emu, id, 0, "000000")
	info, err := software.QueryLicense(ctx, code)
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseAlive, info.Status)
	require.WithinDuration(t, activated.ExpireTime.Add(4*time.Second), *info.ExpireTime, time.Second, "four more days, a second each")

	waitForState(t, emu, id, StateFrozen)
	waitForCall(t, emu, id, 1, "000000")
	info, err = software.QueryLicense(ctx, code)
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseExpired, info.Status)

	require.NoError(t, emu.Act(ctx, id, Action{Kind: ActRenew}))
	waitForCall(t, emu, id, 3, "000000")
	require.NoError(t, emu.Act(ctx, id, Action{Kind: ActUnsubscribe}))
	waitForState(t, emu, id, StateUnsubscribed)
	waitForCall(t, emu, id, 4, "000000")
	info, err = software.QueryLicense(ctx, code)
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseReleased, info.Status)
	require.Equal(t, []string{
		"refreshLicenseCode RENEWAL" + id + "02", "refreshLicenseCode RENEWAL" + id + "02",
		"updateLicenseCodeStatus FREEZE", "refreshLicenseCode RENEWAL" + id + "03", "updateLicenseCodeStatus UNFREEZE",
		"releaseLicenseCode " + id + "04",
	}, m.calls())
}

// waitForState waits until the purchase shows the state.
func waitForState(t *testing.T, emu *Client, id, state string) {
	t.Helper()
	require.Eventually(t, func() bool {
		v, err := emu.Purchase(t.Context(), id)
		return err == nil && v.State == state
	}, 30*time.Second, 50*time.Millisecond, "purchase %s never %s", id, state)
}

// waitForCall waits until the code's i-th call shows the result.
func waitForCall(t *testing.T, emu *Client, id string, i int, result string) {
	t.Helper()
	require.Eventually(t, func() bool {
		v, err := emu.Purchase(t.Context(), id)
		return err == nil && v.LicenseCode != nil && len(v.LicenseCode.Calls) > i && v.LicenseCode.Calls[i].Result == result &&
			!slices.ContainsFunc(v.LicenseCode.Calls[:i], func(c LicenseCodeCall) bool { return c.Result == "" })
	}, 30*time.Second, 50*time.Millisecond, "call %d of purchase %s never answered %s", i, id, result)
}
