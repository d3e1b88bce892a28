package emulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLicenseRequestCommand: license-request sends the device's
// fingerprint and event, its flags before or after the ID; show prints the
// licences a device received.
func TestLicenseRequestCommand(t *testing.T) {
	t.Chdir(t.TempDir())
	var got []Action
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a Action
		_ = json.NewDecoder(r.Body).Decode(&a)
		require.Equal(t, "/emulator/purchases/CS1/actions/license-request", r.URL.Path)
		got = append(got, a)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	vars := map[string]string{"EMULATOR_URL": srv.URL}
	for _, args := range [][]string{
		{"license-request", "-fingerprint", "HW-1", "-event", "EV1", "CS1"},
		{"license-request", "CS1", "-fingerprint", "HW-1", "-event", "EV1"},
	} {
		out, err := cliRun(t, vars, args...)
		require.NoError(t, err, args)
		require.Contains(t, out, "license-request: accepted.\n")
	}
	require.Equal(t, []Action{
		{Fingerprint: "HW-1", EventID: "EV1"},
		{Fingerprint: "HW-1", EventID: "EV1"},
	}, got)

	var out bytes.Buffer
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	printLicenses(&out, LicenseRequests{
		{EventID: "EV1", Fingerprint: "HW-1", ResultCode: "000004", Uploads: []LicenseUploadView{
			{Type: "CHARACTERS", Characters: "DEMO-LIC-ABC", ReceivedAt: at}}},
		{EventID: "EV2", ResultCode: "000903"},
		{EventID: "EV3", Fingerprint: "HW-2", ResultCode: "000004"},
	})
	require.Contains(t, out.String(), "event EV1  device HW-1  answered 000004")
	require.Contains(t, out.String(), "CHARACTERS  DEMO-LIC-ABC")
	require.Contains(t, out.String(), "event EV2  device (no fingerprint)  answered 000903\n    event EV3")
	require.Contains(t, out.String(), "event EV3  device HW-2  answered 000004\n      not received yet")
}

func TestValidateLicenseRequest(t *testing.T) {
	p := &purchase{State: StateInService}
	require.ErrorContains(t, p.validate(Action{Kind: ActLicenseRequest}), "buy -online-license")
	p.Buy.OnlineLicense = true
	require.NoError(t, p.validate(Action{Kind: ActLicenseRequest, Fingerprint: "HW"}))
	p.State = StateFrozen
	require.ErrorContains(t, p.validate(Action{Kind: ActLicenseRequest}), "while the purchase is frozen")
}
