package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/provisioner"
)

// TestDemoMaintenanceSwitch: the demo application's maintenance switch is
// an admin action, exists only with the demo provisioner, and validates
// its body.
func TestDemoMaintenanceSwitch(t *testing.T) {
	t.Parallel()
	db := testenv.NewStore(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	withDemo := httptest.NewServer(api.New(api.Config{Store: db, AccessKey: testAccessKey, AdminToken: testAdminToken,
		DemoTenants: provisioner.DemoHandler(db), Logger: quiet}).Handler())
	t.Cleanup(withDemo.Close)
	withoutDemo := httptest.NewServer(api.New(api.Config{Store: db, AccessKey: testAccessKey, AdminToken: testAdminToken,
		Logger: quiet}).Handler())
	t.Cleanup(withoutDemo.Close)

	post := func(base, auth, body string) int {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/demo/maintenance", strings.NewReader(body))
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Without or with a wrong token: TestTokenRoutesRefuseMissingOrWrongTokens.
	for _, bad := range []string{``, `{}`, `{"on":"yes"}`, `{"on":true,"x":1}`, `[true]`} {
		require.Equal(t, http.StatusBadRequest, post(withDemo.URL, testAdminToken, bad), bad)
	}
	on, err := db.DemoMaintenance(t.Context())
	require.NoError(t, err)
	require.False(t, on, "refused calls changed nothing")

	require.Equal(t, http.StatusOK, post(withDemo.URL, testAdminToken, `{"on":true}`))
	on, err = db.DemoMaintenance(t.Context())
	require.NoError(t, err)
	require.True(t, on)
	require.Equal(t, http.StatusOK, post(withDemo.URL, testAdminToken, `{"on":false}`))
	on, err = db.DemoMaintenance(t.Context())
	require.NoError(t, err)
	require.False(t, on)

	require.Equal(t, http.StatusNotFound, post(withoutDemo.URL, testAdminToken, `{"on":true}`),
		"no demo application without the demo provisioner")
}
