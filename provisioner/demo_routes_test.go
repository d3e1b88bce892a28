package provisioner_test

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

const (
	testAccessKey  = "demo-routes-access-key"
	testAdminToken = "demo-routes-admin-token"
)

// TestDemoMaintenanceSwitch: the demo application's maintenance switch is
// an admin action, exists only with the demo provisioner, and validates
// its body.
func TestDemoMaintenanceSwitch(t *testing.T) {
	t.Parallel()
	db := testenv.NewStore(t)
	demo := newDemoStore(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var routes []api.Route
	for _, r := range provisioner.DemoRoutes(demo, quiet) {
		routes = append(routes, api.Route(r))
	}
	withDemo := httptest.NewServer(api.New(api.Config{Store: db, AccessKey: testAccessKey, AdminToken: testAdminToken,
		Routes: routes, Logger: quiet}).Handler())
	t.Cleanup(withDemo.Close)
	withoutDemo := httptest.NewServer(api.New(api.Config{Store: db, AccessKey: testAccessKey, AdminToken: testAdminToken,
		Logger: quiet}).Handler())
	t.Cleanup(withoutDemo.Close)

	post := func(base, auth, body string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/demo/maintenance", strings.NewReader(body))
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
		return resp.StatusCode, string(answer)
	}
	// Without or with a wrong token: TestTokenRoutesRefuseMissingOrWrongTokens in api.
	status, answer := post(withDemo.URL, "", `{"on":true}`)
	require.Equal(t, http.StatusUnauthorized, status, "behind the admin token")
	require.JSONEq(t, `{"error":"missing or wrong bearer token"}`, answer)
	for _, bad := range []string{``, `{}`, `{"on":"yes"}`, `{"on":true,"x":1}`, `[true]`} {
		status, answer := post(withDemo.URL, testAdminToken, bad)
		require.Equal(t, http.StatusBadRequest, status, bad)
		require.JSONEq(t, `{"error":"the body must be {\"on\": true} or {\"on\": false}"}`, answer, bad)
	}
	on, err := demo.Maintenance(t.Context())
	require.NoError(t, err)
	require.False(t, on, "refused calls changed nothing")

	status, answer = post(withDemo.URL, testAdminToken, `{"on":true}`)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, `{"maintenance":true}`, answer)
	on, err = demo.Maintenance(t.Context())
	require.NoError(t, err)
	require.True(t, on)
	status, answer = post(withDemo.URL, testAdminToken, `{"on":false}`)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, `{"maintenance":false}`, answer)
	on, err = demo.Maintenance(t.Context())
	require.NoError(t, err)
	require.False(t, on)

	status, _ = post(withoutDemo.URL, testAdminToken, `{"on":true}`)
	require.Equal(t, http.StatusNotFound, status, "no demo application without the demo provisioner")
}

// TestDemoMaintenanceSwitchWhenTheDatabaseIsAway: the switch answers 503
// without the database's error, as the admin API does.
func TestDemoMaintenanceSwitchWhenTheDatabaseIsAway(t *testing.T) {
	t.Parallel()
	demo, pool := newDemoStoreAndPool(t)
	require.NoError(t, pool.Close())
	rec := httptest.NewRecorder()
	provisioner.DemoMaintenanceHandler(demo, slog.New(slog.NewTextHandler(io.Discard, nil))).
		ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/demo/maintenance", strings.NewReader(`{"on":true}`)))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.JSONEq(t, `{"error":"database unavailable; retry later"}`, rec.Body.String())
}
