package e2e

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
	"github.com/fulfillment-server/fulfillment/provisioner"
)

const licenseToken = "e2e-license-token-5c1d"

// licenseAccessKey verifies the license-code callbacks (contract §13.5).
const licenseAccessKey = "e2e-license-access-key-7a2f"

// licenseRequest calls /v1/licenses with the license token.
func (s *stack) licenseRequest(method, path string) (int, map[string]any) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.baseURL+path, nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+licenseToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// TestLicenseCodeActivatedThroughTheServer: the emulator sells a license
// code; the merchant's software activates it through the server, which
// asks the marketplace's open API once and records it; the daily check
// reads the record, or the marketplace with refresh=true; the marketplace
// shows the code activated.
func TestLicenseCodeActivatedThroughTheServer(t *testing.T) {
	t.Parallel()
	e := startEmulatorStack(t, "1d=5s", "FULFILLMENT_LICENSE_TOKEN="+licenseToken)
	id := e.buy(emulator.BuyRequest{PeriodType: "month", LicenseCode: true})
	issued := e.purchaseState(id, emulator.StateLicenseIssued)
	require.NotNil(t, issued.LicenseCode)
	require.Equal(t, "NOT_ACTIVATED", issued.LicenseCode.Status)
	code := issued.LicenseCode.License
	require.Empty(t, issued.InstanceID, "a license code has no instance: no newInstance was sent")

	activatedAt := time.Now()
	status, first := e.licenseRequest(http.MethodPost, "/v1/licenses/"+code+"/activate")
	require.Equal(t, http.StatusCreated, status, "%v", first)
	require.Equal(t, "active", first["status"])
	require.Equal(t, id, first["orderId"])
	require.Equal(t, "demo-product", first["productId"])
	require.Equal(t, float64(10), first["amount"])
	expire, err := time.Parse(time.RFC3339, first["expireTime"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, activatedAt.Add(150*time.Second), expire, 5*time.Second, "a month at 1d=5s, from the activation")

	status, again := e.licenseRequest(http.MethodPost, "/v1/licenses/"+code+"/activate")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, first, again, "activating again answers the same record")
	status, checked := e.licenseRequest(http.MethodGet, "/v1/licenses/"+code+"?refresh=true")
	require.Equal(t, http.StatusOK, status, "%v", checked)
	require.Equal(t, "active", checked["status"])

	shown, err := e.emu.Purchase(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, "ALIVE", shown.LicenseCode.Status)
	require.NotNil(t, shown.LicenseCode.ActivatedAt)

	status, missing := e.licenseRequest(http.MethodPost, "/v1/licenses/PLNOSUCHCODE/activate")
	require.Equal(t, http.StatusNotFound, status, "%v", missing)
}

// licenseCodeCall sends a license-code callback signed with the license
// key, as KooGallery does, and checks that the answer is signed with it.
func (s *stack) licenseCodeCall(body string) reply {
	s.t.Helper()
	return s.produceAnsweredWith(licenseAccessKey, koogallery.SignedQuery(licenseAccessKey, []byte(body), time.Now()), body)
}

// waitLicenseCode polls GET /v1/licenses/{code} until cond holds.
func (s *stack) waitLicenseCode(code, what string, cond func(map[string]any) bool) map[string]any {
	s.t.Helper()
	return waitUntil(s.t, 60*time.Second, "license code "+code+" to be "+what, func() map[string]any {
		_, got := s.licenseRequest(http.MethodGet, "/v1/licenses/"+code)
		return got
	}, cond)
}

// demoLicenseCode reads what the demo application was told of a code.
func (s *stack) demoLicenseCode(code string) (provisioner.DemoLicenseCode, error) {
	s.t.Helper()
	db, err := sql.Open("postgres", envValue(s.env, "DATABASE_URL"))
	require.NoError(s.t, err)
	defer db.Close()
	return provisioner.NewDemoStore(db).LicenseCode(s.t.Context(), code)
}

// TestLicenseCodeLife (contract §13.7): a code activated through the
// server lives through the marketplace's callbacks, each answered 000000
// with the license key's Body-Sign: a renewal moves its expiry, FREEZE
// freezes it with its data kept for 15 days, UNFREEZE restores it, release
// ends it; GET /v1/licenses tracks each step, and the demo application
// hears each change. A code never activated is 000003; a callback signed
// with the basic key is refused.
func TestLicenseCodeLife(t *testing.T) {
	t.Parallel()
	s := startStack(t, "FULFILLMENT_LICENSE_TOKEN="+licenseToken)
	s.licenseCodes.Add(mockapi.LicenseCode{License: "PL-E2E-1", ProductID: "p-lic", OrderID: "CSL1", Amount: 1, Validity: 30 * 24 * time.Hour})
	status, activated := s.licenseRequest(http.MethodPost, "/v1/licenses/PL-E2E-1/activate")
	require.Equal(t, http.StatusCreated, status, "%v", activated)
	waitUntil(t, 60*time.Second, "the demo application to hear of the activation", func() bool {
		c, err := s.demoLicenseCode("PL-E2E-1")
		return err == nil && c.LastEvent == provisioner.LicenseCodeActivated && c.Entitled
	}, func(ok bool) bool { return ok })

	renewal := `{"activity":"refreshLicenseCode","expireTime":"20400101000000","license":"PL-E2E-1","orderId":"R1","orderLineId":"R1-1","productId":"p-lic","scene":"RENEWAL"}`
	require.Equal(t, "000000", s.licenseCodeCall(renewal).ResultCode)
	s.waitLicenseCode("PL-E2E-1", "renewed", func(c map[string]any) bool { return c["expireTime"] == "2040-01-01T00:00:00Z" })

	freeze := `{"activity":"updateLicenseCodeStatus","license":"PL-E2E-1","status":"FREEZE"}`
	require.Equal(t, "000000", s.licenseCodeCall(freeze).ResultCode)
	frozen := s.waitLicenseCode("PL-E2E-1", "frozen", func(c map[string]any) bool { return c["status"] == "frozen" })
	require.NotEmpty(t, frozen["retainUntil"])
	demo, err := s.demoLicenseCode("PL-E2E-1")
	require.NoError(t, err)
	require.Equal(t, "frozen", demo.Status)
	require.False(t, demo.Entitled, "a frozen code entitles nothing; its data is kept")

	unfreeze := `{"activity":"updateLicenseCodeStatus","license":"PL-E2E-1","status":"UNFREEZE"}`
	require.Equal(t, "000000", s.licenseCodeCall(unfreeze).ResultCode)
	s.waitLicenseCode("PL-E2E-1", "active again", func(c map[string]any) bool { return c["status"] == "active" })

	release := `{"activity":"releaseLicenseCode","license":"PL-E2E-1","orderId":"U1","orderLineId":"U1-1"}`
	require.Equal(t, "000000", s.licenseCodeCall(release).ResultCode)
	require.Equal(t, "000000", s.licenseCodeCall(release).ResultCode, "sent again: still success")
	released := s.waitLicenseCode("PL-E2E-1", "released", func(c map[string]any) bool { return c["status"] == "released" })
	require.NotEmpty(t, released["releasedAt"])
	demo, err = s.demoLicenseCode("PL-E2E-1")
	require.NoError(t, err)
	require.Equal(t, provisioner.LicenseCodeReleased, demo.LastEvent)
	require.False(t, demo.Entitled)

	never := `{"activity":"updateLicenseCodeStatus","license":"PL-NEVER","status":"FREEZE"}`
	require.Equal(t, "000003", s.licenseCodeCall(never).ResultCode)
	require.Equal(t, "000001", s.produceAnsweredWith(licenseAccessKey,
		koogallery.SignedQuery(accessKey, []byte(freeze), time.Now()), freeze).ResultCode, "signed with the basic key")
}

// expireTimeOf reads a code's expireTime as GET /v1/licenses shows it.
func expireTimeOf(t *testing.T, code map[string]any) time.Time {
	t.Helper()
	s, _ := code["expireTime"].(string)
	at, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err, "expireTime of %v", code)
	return at
}

// TestLicenseCodeLifeThroughTheEmulator (issue's done-when): a code bought
// from the emulator is activated through the server, renewed, its renewal
// refunded, frozen at its expiry, renewed again (and so unfrozen) and
// released by an unsubscription, every step played by the emulator with
// the license key and tracked by GET /v1/licenses/{code}.
func TestLicenseCodeLifeThroughTheEmulator(t *testing.T) {
	t.Parallel()
	// A month is 30 s; the marketplace's retries every 2 emulated minutes
	// are a second apart.
	e := startEmulatorStack(t, "1d=1s", "FULFILLMENT_LICENSE_TOKEN="+licenseToken)
	id := e.buy(emulator.BuyRequest{PeriodType: "month", LicenseCode: true})
	code := e.purchaseState(id, emulator.StateLicenseIssued).LicenseCode.License
	path := "/v1/licenses/" + code

	status, activated := e.licenseRequest(http.MethodPost, path+"/activate")
	require.Equal(t, http.StatusCreated, status, "%v", activated)
	firstExpiry := expireTimeOf(t, activated)
	month := 30 * time.Second

	e.act(id, emulator.Action{Kind: emulator.ActRenew})
	renewed := e.waitLicenseCode(code, "renewed", func(c map[string]any) bool {
		return expireTimeOf(t, c).After(firstExpiry.Add(month / 2))
	})
	require.Equal(t, "active", renewed["status"])

	e.act(id, emulator.Action{Kind: emulator.ActRefundRenewal})
	e.waitLicenseCode(code, "back to its first expiry", func(c map[string]any) bool {
		return expireTimeOf(t, c).Before(firstExpiry.Add(month / 2))
	})

	frozen := e.waitLicenseCode(code, "frozen at its expiry", func(c map[string]any) bool { return c["status"] == "frozen" })
	require.NotEmpty(t, frozen["retainUntil"])

	e.act(id, emulator.Action{Kind: emulator.ActRenew})
	e.waitLicenseCode(code, "unfrozen by a renewal", func(c map[string]any) bool {
		return c["status"] == "active" && expireTimeOf(t, c).After(time.Now())
	})

	e.act(id, emulator.Action{Kind: emulator.ActUnsubscribe})
	released := e.waitLicenseCode(code, "released", func(c map[string]any) bool { return c["status"] == "released" })
	require.NotEmpty(t, released["releasedAt"])
	shown := e.purchase(id, "shown released", func(v emulator.PurchaseView) bool {
		return v.LicenseCode != nil && v.LicenseCode.Status == koogallery.LicenseReleased
	})
	require.Equal(t, koogallery.LicenseReleased, shown.LicenseCode.Status)
}
