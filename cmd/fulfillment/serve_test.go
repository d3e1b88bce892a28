package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
	"github.com/fulfillment-server/fulfillment/provisioner"
)

// The secrets of the served process. Each is distinct, so that a leak is
// named precisely.
const (
	serveAccessKey      = "serve-access-key-6c1f0e"
	serveAdminToken     = "serve-admin-token-91b7d2"
	serveUsageToken     = "serve-usage-token-3a5e8c"
	serveAK             = "serve-open-api-ak"
	serveSK             = "serve-open-api-sk-b4d09a"
	serveProvisionerKey = "serve-provisioner-key-e27f53"
)

// passwordApp is the merchant's application behind the HTTP provisioner: it
// checks the provisioner key's signature and gives every tenant a freshly
// generated password, which the test must then never find in a log.
type passwordApp struct {
	mu        sync.Mutex
	passwords []string
}

func (a *passwordApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := provisioner.VerifyRequest(r, body, []byte(serveProvisionerKey), time.Now(), time.Minute); err != nil {
		http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/provision" {
		_, _ = w.Write([]byte(`{}`))
		return
	}
	var req provisioner.ProvisionRequest
	_ = json.Unmarshal(body, &req)
	var b [12]byte
	_, _ = rand.Read(b[:])
	password := "Gen-" + hex.EncodeToString(b[:])
	a.mu.Lock()
	a.passwords = append(a.passwords, password)
	a.mu.Unlock()
	_ = json.NewEncoder(w).Encode(provisioner.Tenant{
		FrontEndURL: "https://app.example.com/t/" + req.InstanceID, UserName: "owner-" + req.InstanceID, Password: password,
	})
}

func (a *passwordApp) generated() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.passwords...)
}

// served is "fulfillment serve" run in this process (runServe, as main
// runs it) with a logger the test reads.
type served struct {
	t    *testing.T
	base string
	logs *testenv.SyncBuffer
	app  *passwordApp
	// signatures are the signature query values of every call sent.
	signatures []string
	stop       func()
}

func startServe(t *testing.T) *served {
	t.Helper()
	temporal := testenv.StartTemporal(t)
	openAPI := httptest.NewServer(mockapi.New(mockapi.Config{AK: serveAK, SK: serveSK, AccessKey: serveAccessKey}))
	t.Cleanup(openAPI.Close)
	app := &passwordApp{}
	appSrv := httptest.NewServer(app)
	t.Cleanup(appSrv.Close)
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cfg, err := loadConfig(env(map[string]string{
		"HTTP_ADDR":               addr,
		"DATABASE_URL":            testenv.NewDatabase(t),
		"TEMPORAL_ADDRESS":        temporal.Address(),
		"KOOGALLERY_ACCESS_KEY":   serveAccessKey,
		"FULFILLMENT_ADMIN_TOKEN": serveAdminToken,
		"FULFILLMENT_USAGE_TOKEN": serveUsageToken,
		"KOOGALLERY_API_URL":      openAPI.URL,
		"KOOGALLERY_AK":           serveAK,
		"KOOGALLERY_SK":           serveSK,
		"PROVISIONER":             appSrv.URL,
		"PROVISIONER_KEY":         serveProvisionerKey,
		"FULFILLMENT_SPOOL_DIR":   t.TempDir(),
		"LOG_LEVEL":               "debug",
	}))
	require.NoError(t, err)

	s := &served{t: t, base: "http://" + addr, logs: &testenv.SyncBuffer{}, app: app}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, cfg, log, true, true) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done, "serve stopped with an error; logs:\n%s", s.logs.String())
		})
	}
	t.Cleanup(s.stop)
	require.Eventually(t, func() bool {
		resp, err := http.Get(s.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && strings.Contains(s.logs.String(), `"msg":"Worker started"`)
	}, 60*time.Second, 100*time.Millisecond, "serve did not start; logs:\n%s", s.logs.String())
	return s
}

type produceReply struct {
	ResultCode string                    `json:"resultCode"`
	Info       []koogallery.InstanceInfo `json:"info"`
}

// produce sends body with the given query and checks the answer's Body-Sign.
func (s *served) produce(query url.Values, body string) produceReply {
	s.t.Helper()
	s.signatures = append(s.signatures, query["signature"]...)
	resp, err := http.Post(s.base+"/produce?"+query.Encode(), "application/json", strings.NewReader(body))
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	require.NoError(s.t, koogallery.VerifyBodySign(resp.Header.Get(koogallery.BodySignHeader), serveAccessKey, raw))
	var r produceReply
	require.NoError(s.t, json.Unmarshal(raw, &r), "%s", raw)
	return r
}

func (s *served) signed(body string) produceReply {
	s.t.Helper()
	return s.produce(koogallery.SignedQuery(serveAccessKey, []byte(body), time.Now()), body)
}

// call sends an admin or usage request and returns its status.
func (s *served) call(method, path, auth, body string) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	require.NoError(s.t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServe runs the whole server, API and worker, against Temporal, the
// mock open API and an application behind the HTTP provisioner: a purchase
// whose generated credentials queryInstance hands out, refused callbacks of
// every kind, admin and usage calls with wrong tokens. Its /metrics then
// serves the Temporal SDK's series, and no line it logged, at debug level,
// holds a key, a token, the open-API SK, the provisioner key, the generated
// password or any request's signature.
func TestServe(t *testing.T) {
	s := startServe(t)
	order, line := mockapi.OrderPeriodYearNew, mockapi.OrderPeriodYearNew+"-000001"
	const id = "serve-instance-1"

	require.Equal(t, "000000", s.signed(fmt.Sprintf(
		`{"activity":"newInstance","orderId":%q,"orderLineId":%q,"businessId":%q}`, order, line, id)).ResultCode)
	query := fmt.Sprintf(`{"activity":"queryInstance","instanceId":%q}`, id)
	var info koogallery.InstanceInfo
	require.Eventually(t, func() bool {
		r := s.signed(query)
		if r.ResultCode != "000000" {
			return false
		}
		info = r.Info[0]
		return true
	}, 60*time.Second, 200*time.Millisecond, "never provisioned; logs:\n%s", s.logs.String())
	require.NotNil(t, info.AppInfo)
	password, err := koogallery.DecryptField(serveAccessKey, koogallery.AES256, info.AppInfo.Password)
	require.NoError(t, err)
	require.Equal(t, s.app.generated(), []string{password}, "the application's generated password, handed out")

	// Refused callbacks: another key, another body, stale, replayed,
	// invalid, unknown instance.
	require.Equal(t, "000001", s.produce(koogallery.SignedQuery("not-the-key", []byte(query), time.Now()), query).ResultCode)
	require.Equal(t, "000001", s.produce(koogallery.SignedQuery(serveAccessKey, []byte(`{}`), time.Now()), query).ResultCode)
	require.Equal(t, "000001", s.produce(koogallery.SignedQuery(serveAccessKey, []byte(query), time.Now().Add(-5*time.Minute)), query).ResultCode)
	replayed := koogallery.SignedQuery(serveAccessKey, []byte(query), time.Now())
	require.Equal(t, "000000", s.produce(replayed, query).ResultCode)
	require.Equal(t, "000001", s.produce(replayed, query).ResultCode)
	require.Equal(t, "000002", s.signed(`{"activity":"releaseInstance","instanceId":"serve\u0000"}`).ResultCode)
	require.Equal(t, "000003", s.signed(`{"activity":"releaseInstance","instanceId":"serve-nobody"}`).ResultCode)

	// Admin and usage calls with wrong tokens, and right ones.
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + serveUsageToken, "Bearer " + serveAdminToken + "x", serveAdminToken} {
		require.Equal(t, http.StatusUnauthorized, s.call(http.MethodGet, "/v1/instances/"+id, auth, ""))
		require.Equal(t, http.StatusUnauthorized, s.call(http.MethodPost, "/v1/instances/"+id+"/signals/retry", auth, `{"reason":"r"}`))
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + serveUsageToken + "x"} {
		require.Equal(t, http.StatusUnauthorized, s.call(http.MethodPost, "/v1/usage", auth, `{"records":[]}`))
	}
	require.Equal(t, http.StatusOK, s.call(http.MethodGet, "/v1/instances/"+id, "Bearer "+serveAdminToken, ""))
	require.Equal(t, http.StatusBadRequest, s.call(http.MethodPost, "/v1/usage", "Bearer "+serveUsageToken, `{"records":[]}`))

	t.Run("the Temporal SDK's metrics on /metrics", func(t *testing.T) {
		var text string
		require.Eventually(t, func() bool {
			resp, err := http.Get(s.base + "/metrics")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			text = string(raw)
			return strings.Contains(text, `temporal_activity_execution_latency_seconds_count{activity_type="Provision"`)
		}, 10*time.Second, 100*time.Millisecond, "the SDK's activity metrics never showed")
		for _, want := range []string{
			`operation="SignalWithStartWorkflowExecution"`, // the API's client
			`temporal_worker_task_slots_available{`,        // the worker
			`task_queue="fulfillment"`,
			`namespace="default"`,
			`fulfillment_callbacks_total{activity="newInstance",result_code="000000"} 1`, // beside our own
		} {
			require.Contains(t, text, want)
		}
	})

	t.Run("no secret in any log line", func(t *testing.T) {
		s.stop() // so that shutdown's lines are read too
		out := s.logs.String()
		require.Contains(t, out, `"msg":"Production-interface call refused"`)
		require.Contains(t, out, `"component":"temporal"`, "the SDK's own logs are read too")
		secrets := map[string]string{
			"access key": serveAccessKey, "admin token": serveAdminToken, "usage token": serveUsageToken,
			"open-API SK": serveSK, "provisioner key": serveProvisionerKey,
			"generated password": password, "encrypted password": info.AppInfo.Password,
		}
		for i, sig := range s.signatures {
			secrets[fmt.Sprintf("request signature %d", i)] = sig
			secrets[fmt.Sprintf("request signature %d (lowercase)", i)] = strings.ToLower(sig)
		}
		lines := bytes.Split([]byte(out), []byte("\n"))
		require.Greater(t, len(lines), 20)
		for n, line := range lines {
			for name, secret := range secrets {
				require.NotContains(t, string(line), secret, "log line %d holds the %s", n+1, name)
			}
		}
	})
}
