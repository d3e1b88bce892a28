package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
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
	req, err := http.NewRequestWithContext(t.Context(), method, h.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	return resp.StatusCode, out
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
