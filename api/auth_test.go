package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// authRoute is one route behind a bearer token, with a request that the
// right token gets through.
type authRoute struct {
	name, method, path, body string
	// usage marks POST /v1/usage, which takes the usage token as well as
	// the admin token.
	usage bool
	// want is the status with the right token.
	want int
}

const (
	authActive = "auth-active"
	authPPU    = "auth-ppu"
)

// authRoutes are every route behind a token: the admin API (list, get,
// usage view, signals, the demo maintenance switch) and the usage intake.
func authRoutes(t *testing.T) []authRoute {
	intake := usageBody(t, record(authPPU, "auth-1", 1, time.Now()))
	return []authRoute{
		{name: "list", method: http.MethodGet, path: "/v1/instances", want: http.StatusOK},
		{name: "list filtered", method: http.MethodGet, path: "/v1/instances?state=active&limit=1", want: http.StatusOK},
		{name: "get", method: http.MethodGet, path: "/v1/instances/" + authActive, want: http.StatusOK},
		{name: "usage view", method: http.MethodGet, path: "/v1/instances/" + authPPU + "/usage", want: http.StatusOK},
		{name: "signal retry", method: http.MethodPost, path: "/v1/instances/" + authActive + "/signals/retry",
			body: `{"reason":"application fixed"}`, want: http.StatusAccepted},
		{name: "signal force-release", method: http.MethodPost, path: "/v1/instances/" + authActive + "/signals/force-release",
			body: `{"reason":"customer asked"}`, want: http.StatusAccepted},
		// The token is checked before the name: nothing is told about
		// which signals exist.
		{name: "unknown signal", method: http.MethodPost, path: "/v1/instances/" + authActive + "/signals/no-such-signal",
			body: `{"reason":"r"}`, want: http.StatusNotFound},
		{name: "demo maintenance", method: http.MethodPost, path: "/v1/demo/maintenance", body: `{"on":true}`, want: http.StatusOK},
		{name: "usage intake", method: http.MethodPost, path: "/v1/usage", body: intake, usage: true, want: http.StatusOK},
	}
}

// authState is everything a route behind a token could change.
type authState struct {
	fuzzState
	Maintenance bool
}

func (h *harness) authState(t *testing.T) authState {
	t.Helper()
	state := authState{fuzzState: h.fuzzState(t)}
	if h.demo != nil {
		on, err := h.demo.Maintenance(t.Context())
		require.NoError(t, err)
		state.Maintenance = on
	}
	return state
}

// call sends a request with the Authorization header, unless it is empty.
func (h *harness) call(t *testing.T, r authRoute, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), r.method, h.srv.URL+r.path, strings.NewReader(r.body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, raw
}

// requireRefused checks a 401: the challenge, the route's message, nothing
// about the instances, and nothing done.
func (h *harness) requireRefused(t *testing.T, r authRoute, auth, wantError string, before authState) {
	t.Helper()
	status, header, raw := h.call(t, r, auth)
	require.Equal(t, http.StatusUnauthorized, status, "%s %s with %q: %s", r.method, r.path, auth, raw)
	require.Equal(t, `Bearer realm="fulfillment"`, header.Get("WWW-Authenticate"))
	var e map[string]string
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, map[string]string{"error": wantError}, e)
	require.Equal(t, before, h.authState(t), "%s %s with %q changed something", r.method, r.path, auth)
}

const (
	msgWrongToken      = "missing or wrong bearer token"
	msgWrongUsageToken = "missing or wrong bearer token (FULFILLMENT_USAGE_TOKEN or FULFILLMENT_ADMIN_TOKEN)"
	msgAdminDisabled   = "the admin API is disabled: set FULFILLMENT_ADMIN_TOKEN"
)

// TestTokenRoutesRefuseMissingOrWrongTokens: every route behind a token
// answers 401 to a missing or wrong one, and does nothing: no signal, no
// audit row, no usage stored, no maintenance switched, no callback.
func TestTokenRoutesRefuseMissingOrWrongTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken), withDemo())
	h.allocate(t, authActive)
	h.save(t, instance(authActive, "active"))
	h.payPerUse(t, authPPU)
	routes := authRoutes(t)

	creds := []struct {
		name, auth string
		// usageOK: the usage intake accepts it (the usage token).
		usageOK bool
	}{
		{name: "no header"},
		{name: "scheme only", auth: "Bearer"},
		{name: "empty token", auth: "Bearer "},
		{name: "blank token", auth: "Bearer  "},
		{name: "wrong token", auth: "Bearer not-the-admin-token"},
		{name: "token without scheme", auth: testAdminToken},
		{name: "lowercase scheme", auth: "bearer " + testAdminToken},
		{name: "uppercase scheme", auth: "BEARER " + testAdminToken},
		{name: "other scheme", auth: "Basic " + testAdminToken},
		{name: "token with extra characters", auth: "Bearer " + testAdminToken + "x"},
		{name: "token with a prefix", auth: "Bearer x" + testAdminToken},
		{name: "token with a second word", auth: "Bearer " + testAdminToken + " extra"},
		{name: "truncated token", auth: "Bearer " + testAdminToken[:len(testAdminToken)-1]},
		{name: "token with a leading space", auth: "Bearer  " + testAdminToken},
		{name: "token in another case", auth: "Bearer " + strings.ToUpper(testAdminToken)},
		{name: "usage token", auth: "Bearer " + testUsageToken, usageOK: true},
		{name: "usage token with a suffix", auth: "Bearer " + testUsageToken + "x"},
	}
	for _, c := range creds {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range routes {
				if r.usage && c.usageOK {
					continue // the positive case, below
				}
				want := msgWrongToken
				if r.usage {
					want = msgWrongUsageToken
				}
				h.requireRefused(t, r, c.auth, want, h.authState(t))
			}
		})
	}

	// The same requests with the right token go through and do what they
	// say, so the refusals above were refusals of working requests.
	t.Run("right tokens", func(t *testing.T) {
		before := h.authState(t)
		for _, r := range routes {
			status, _, raw := h.call(t, r, "Bearer "+testAdminToken)
			require.Equal(t, r.want, status, "%s %s: %s", r.method, r.path, raw)
		}
		intake := routes[len(routes)-1]
		require.True(t, intake.usage)
		status, _, raw := h.call(t, intake, "Bearer "+testUsageToken)
		require.Equal(t, http.StatusOK, status, "%s", raw)
		require.JSONEq(t, `{"accepted":0,"duplicates":1}`, string(raw), "the same record again")

		after := h.authState(t)
		require.Equal(t, before.OperatorSignals+2, after.OperatorSignals, "retry and force-release signalled")
		require.Equal(t, before.AuditRows+2, after.AuditRows)
		require.Equal(t, before.UsageRecords+1, after.UsageRecords)
		require.True(t, after.Maintenance)
	})
}

// TestTokenRoutesWhenTokensAreUnset: without FULFILLMENT_ADMIN_TOKEN the
// admin API refuses everything, whatever is sent; without
// FULFILLMENT_USAGE_TOKEN an empty bearer does not match it.
func TestTokenRoutesWhenTokensAreUnset(t *testing.T) {
	t.Parallel()

	t.Run("no admin token", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, withAdminToken(""), withUsageToken(testUsageToken), withDemo())
		h.allocate(t, authActive)
		h.save(t, instance(authActive, "active"))
		h.payPerUse(t, authPPU)
		for _, r := range authRoutes(t) {
			for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer " + testAdminToken, "Bearer anything"} {
				want := msgAdminDisabled
				if r.usage {
					want = msgWrongUsageToken
				}
				h.requireRefused(t, r, auth, want, h.authState(t))
			}
		}
		// The usage intake still takes the usage token.
		intake := authRoutes(t)[len(authRoutes(t))-1]
		status, _, raw := h.call(t, intake, "Bearer "+testUsageToken)
		require.Equal(t, http.StatusOK, status, "%s", raw)
	})

	t.Run("no usage token", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, withDemo())
		h.payPerUse(t, authPPU)
		intake := authRoutes(t)[len(authRoutes(t))-1]
		for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer  ", "Bearer " + testUsageToken} {
			h.requireRefused(t, intake, auth, msgWrongUsageToken, h.authState(t))
		}
		status, _, raw := h.call(t, intake, "Bearer "+testAdminToken)
		require.Equal(t, http.StatusOK, status, "the admin token reports usage too: %s", raw)
	})
}
