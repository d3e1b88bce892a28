package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
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
