package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
	"github.com/fulfillment-server/fulfillment/workflows"
)

const testLicenseToken = "lic-9Zq4wR2tY7uI1oP3"

// licenseMarket is the marketplace's license-code open API, with the codes
// it sold.
func licenseMarket(t *testing.T) (*koogallery.OpenAPIClient, *mockapi.MemoryLicenseCodes) {
	t.Helper()
	codes := mockapi.NewMemoryLicenseCodes()
	srv := httptest.NewServer(mockapi.New(mockapi.Config{AK: "lic-ak", SK: "lic-sk", LicenseCodes: codes}))
	t.Cleanup(srv.Close)
	client, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: "lic-ak", SK: "lic-sk"})
	require.NoError(t, err)
	return client, codes
}

// licenseCall sends a /v1/licenses request and decodes the answer.
func (h *harness) licenseCall(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	status, raw := h.bearerCall(t, method, path, token, body)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	h.settle(t) // an activation starts the code's workflow in the background
	return status, out
}

// TestLicenseActivation: the merchant's software activates a code once
// through the server; the same activation again answers the same record
// without asking the marketplace; the daily check reads the read model, or
// the marketplace with refresh=true.
func TestLicenseActivation(t *testing.T) {
	t.Parallel()
	client, codes := licenseMarket(t)
	codes.Add(mockapi.LicenseCode{License: "PL-A1", ProductID: "p-lic", OrderID: "CSL1", Amount: 3, Validity: 365 * 24 * time.Hour})
	h := newHarness(t, withLicenses(client, testLicenseToken))

	effective := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	status, first := h.licenseCall(t, http.MethodPost, "/v1/licenses/PL-A1/activate", testLicenseToken,
		`{"effectiveTime":"`+effective.Format(time.RFC3339)+`"}`)
	require.Equal(t, http.StatusCreated, status, "%v", first)
	require.Equal(t, "PL-A1", first["license"])
	require.Equal(t, "active", first["status"])
	require.Equal(t, "p-lic", first["productId"])
	require.Equal(t, "CSL1", first["orderId"])
	require.Equal(t, float64(3), first["amount"])
	require.Equal(t, effective.Add(365*24*time.Hour).Format(time.RFC3339), first["expireTime"])

	// Again (the software retrying): the same record, nothing re-activated.
	codes.Add(mockapi.LicenseCode{License: "PL-A1", ProductID: "changed", Validity: time.Hour})
	status, again := h.licenseCall(t, http.MethodPost, "/v1/licenses/PL-A1/activate", testAdminToken, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, first, again)

	status, got := h.licenseCall(t, http.MethodGet, "/v1/licenses/PL-A1", testLicenseToken, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "active", got["status"])

	codes.Release("PL-A1")
	status, got = h.licenseCall(t, http.MethodGet, "/v1/licenses/PL-A1?refresh=true", testLicenseToken, "")
	require.Equal(t, http.StatusOK, status, "%v", got)
	require.Equal(t, "released", got["status"])
	status, got = h.licenseCall(t, http.MethodGet, "/v1/licenses/PL-A1", testLicenseToken, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "released", got["status"], "the check was recorded")
}

// TestLicenseRefusals: wrong tokens, malformed codes and bodies, codes the
// marketplace does not know, and a server without the open API are each
// refused specifically, and record nothing.
func TestLicenseRefusals(t *testing.T) {
	t.Parallel()
	client, codes := licenseMarket(t)
	codes.Add(mockapi.LicenseCode{License: "PL-B1", Validity: time.Hour})
	h := newHarness(t, withLicenses(client, testLicenseToken), withUsageToken("usage-only-token"))

	for _, token := range []string{"", "wrong", "usage-only-token"} {
		status, _ := h.licenseCall(t, http.MethodPost, "/v1/licenses/PL-B1/activate", token, "")
		require.Equal(t, http.StatusUnauthorized, status, "token %q", token)
	}
	status, body := h.licenseCall(t, http.MethodPost, "/v1/licenses/PL-none/activate", testLicenseToken, "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body["error"], "92020005")
	status, _ = h.licenseCall(t, http.MethodGet, "/v1/licenses/PL-none", testLicenseToken, "")
	require.Equal(t, http.StatusNotFound, status, "nothing was recorded")
	status, _ = h.licenseCall(t, http.MethodGet, "/v1/licenses/PL-B1", testLicenseToken, "")
	require.Equal(t, http.StatusNotFound, status, "not activated yet")
	status, body = h.licenseCall(t, http.MethodPost, "/v1/licenses/"+strings.Repeat("x", 65)+"/activate", testLicenseToken, "")
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body["error"], "1 to 64")
	for _, bad := range []string{`{"effectiveTime":"yesterday"}`, `{"start":"2026-01-01T00:00:00Z"}`, `[]`} {
		status, _ = h.licenseCall(t, http.MethodPost, "/v1/licenses/PL-B1/activate", testLicenseToken, bad)
		require.Equal(t, http.StatusBadRequest, status, bad)
	}
	status, _ = h.licenseCall(t, http.MethodGet, "/v1/licenses/PL-B1?refresh=maybe", testLicenseToken, "")
	require.Equal(t, http.StatusNotFound, status, "an unknown code is 404 before the query is read")

	// Without the open API (no AK/SK): 503, nothing recorded.
	bare := newHarness(t, withLicenses(nil, testLicenseToken))
	status, body = bare.licenseCall(t, http.MethodPost, "/v1/licenses/PL-B1/activate", testLicenseToken, "")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body["error"], "KOOGALLERY_AK")
}

var _ api.LicenseAPI = (*koogallery.OpenAPIClient)(nil)

const testLicenseKey = "license-key-3Fh8Kd"

// licenseCodeCall signs body with key, posts it and checks that the answer
// is signed with answerKey.
func (h *harness) licenseCodeCall(t *testing.T, key, answerKey, body string) produceAnswer {
	t.Helper()
	return h.produceAnsweredWith(t, answerKey, koogallery.SignedQuery(key, []byte(body), time.Now()), []byte(body))
}

// TestLicenseCodeCallbacks (contract §13.5): the three callbacks are
// verified with the license key and answered with it; each is recorded
// once and delivered to the code's workflow, which the activation started;
// a code never activated is 000003 and records nothing; a debugger's call
// records a notice and changes nothing; a call signed with the basic key,
// or a SaaS call signed with the license key, is refused.
func TestLicenseCodeCallbacks(t *testing.T) {
	t.Parallel()
	client, codes := licenseMarket(t)
	codes.Add(mockapi.LicenseCode{License: "PL-C1", ProductID: "p-lic", OrderID: "CSL1", Amount: 1, Validity: 30 * 24 * time.Hour})
	h := newHarness(t, withLicenses(client, testLicenseToken), withLicenseKey(testLicenseKey))

	status, _ := h.licenseCall(t, http.MethodPost, "/v1/licenses/PL-C1/activate", testLicenseToken, "")
	require.Equal(t, http.StatusCreated, status)
	started := h.signaller.delivered()
	require.Len(t, started, 1)
	require.Equal(t, "license-code/PL-C1", started[0].WorkflowID)
	require.Equal(t, workflows.LicenseCodeWorkflowName, started[0].Workflow)
	require.Equal(t, workflows.ActivityActivateLicenseCode, started[0].Arg.(workflows.Callback).Activity)
	input := started[0].Args[0].(workflows.LicenseCodeInput)
	require.Equal(t, "p-lic", input.ProductID)
	require.NotNil(t, input.ExpireAt)

	renewal := `{"activity":"refreshLicenseCode","expireTime":"20300523201932","license":"PL-C1","orderId":"R1","orderLineId":"R1-1","productId":"p-lic","scene":"RENEWAL"}`
	requireResult(t, h.licenseCodeCall(t, testLicenseKey, testLicenseKey, renewal), "000000", "success")
	requireResult(t, h.licenseCodeCall(t, testLicenseKey, testLicenseKey, renewal), "000000", "success") // sent again
	freeze := `{"activity":"updateLicenseCodeStatus","license":"PL-C1","status":"FREEZE"}`
	requireResult(t, h.licenseCodeCall(t, testLicenseKey, testLicenseKey, freeze), "000000", "success")

	signals := h.signaller.delivered()
	require.Len(t, signals, 3, "the renewal sent twice is delivered once")
	require.Equal(t, "license-code/PL-C1", signals[1].WorkflowID)
	cb := signals[1].Arg.(workflows.Callback)
	require.Equal(t, "refreshLicenseCode", cb.Activity)
	require.Equal(t, time.Date(2030, 5, 23, 20, 19, 32, 0, time.UTC), cb.ExpireTime)
	require.Equal(t, "R1", cb.OrderID)
	require.Equal(t, "FREEZE", signals[2].Arg.(workflows.Callback).Status)

	// Refusals: nothing recorded, nothing delivered.
	unknown := `{"activity":"releaseLicenseCode","license":"PL-NEVER"}`
	requireResult(t, h.licenseCodeCall(t, testLicenseKey, testLicenseKey, unknown), "000003", "license code does not exist")
	requireResult(t, h.licenseCodeCall(t, testAccessKey, testLicenseKey, freeze), "000001", "authentication failed")
	refreshInstance := `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R1","orderLineId":"R1-1","instanceId":"I1","expireTime":"20300523201932"}`
	requireResult(t, h.licenseCodeCall(t, testLicenseKey, testAccessKey, refreshInstance), "000001", "authentication failed")
	require.Len(t, h.signaller.delivered(), 3)

	// The seller console's debugger: accepted, recorded, nothing applied.
	debug := `{"activity":"releaseLicenseCode","license":"******","testFlag":"1"}`
	requireResult(t, h.licenseCodeCall(t, testLicenseKey, testLicenseKey, debug), "000000", "success")
	require.Len(t, h.signaller.delivered(), 3)
	var outcome string
	require.NoError(t, h.raw.QueryRowContext(t.Context(),
		`SELECT outcome FROM callbacks WHERE activity = 'releaseLicenseCode' AND debug`).Scan(&outcome))
	require.Equal(t, "debugger call: recorded, nothing applied", outcome)
	var recorded int
	require.NoError(t, h.raw.QueryRowContext(t.Context(), `SELECT count(*) FROM callbacks WHERE license = 'PL-C1'`).Scan(&recorded))
	require.Equal(t, 3, recorded, "the activation, the renewal and the FREEZE")
}

// TestLicenseCodeCallbacksWithoutTheKey: a server with no license key
// refuses every license-code callback, whatever it is signed with.
func TestLicenseCodeCallbacksWithoutTheKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	freeze := `{"activity":"updateLicenseCodeStatus","license":"PL-C1","status":"FREEZE"}`
	requireResult(t, h.licenseCodeCall(t, testAccessKey, testAccessKey, freeze), "000001", "authentication failed")
}
