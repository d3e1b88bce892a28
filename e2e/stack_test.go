// Package e2e runs the server as it runs in production: the built binary
// against a real Temporal dev server and a real Postgres, driven only
// through HTTP, the way KooGallery and operators drive it.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// binary is the fulfillment binary built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fulfillment-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fulfillment")
	if err := writeKitKeys(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the kit's key pair:", err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", binary, "../cmd/fulfillment")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the binary:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	accessKey  = "e2e-access-key-3f9a"
	adminToken = "e2e-admin-token-77c1"
	openAPIAK  = "e2e-ak"
	openAPISK  = "e2e-sk-secret"
)

// stack is one running server with its own database, Temporal and open API.
type stack struct {
	t        *testing.T
	temporal *testenv.Temporal
	openAPI  *mockapi.Server
	// licenseCodes are the license codes the mock open API sold.
	licenseCodes *mockapi.MemoryLicenseCodes
	baseURL      string
	env          []string
	logs         *testenv.SyncBuffer
	proc         *exec.Cmd
	// worker is the separate "fulfillment worker" of a split stack, whose
	// output also goes to logs.
	worker *exec.Cmd
}

// startStack starts Temporal, the mock open API and "fulfillment serve".
// A DATABASE_URL in extraEnv replaces the test's own database.
func startStack(t *testing.T, extraEnv ...string) *stack {
	t.Helper()
	s := newStack(t, extraEnv)
	s.startServer()
	return s
}

// startSplitStack is startStack with the API and the worker in separate
// processes ("fulfillment api" and "fulfillment worker", after "fulfillment
// migrate"), so that a test can kill and restart the worker alone.
func startSplitStack(t *testing.T, extraEnv ...string) *stack {
	t.Helper()
	s := newStack(t, extraEnv)
	migrate := exec.Command(binary, "migrate")
	migrate.Env = s.env
	out, err := migrate.CombinedOutput()
	require.NoError(t, err, "fulfillment migrate:\n%s", out)
	s.proc = startProcess(t, "api", s.env, s.logs, s.baseURL+"/healthz", "api")
	s.startWorker()
	return s
}

// newStack prepares a stack whose server the caller starts; it stops
// whatever runs when the test ends.
func newStack(t *testing.T, extraEnv []string) *stack {
	t.Helper()
	temporal := testenv.StartTemporal(t)
	licenseCodes := mockapi.NewMemoryLicenseCodes()
	openAPI := mockapi.New(mockapi.Config{AK: openAPIAK, SK: openAPISK, LicenseCodes: licenseCodes})
	openAPISrv := httptest.NewServer(openAPI)
	t.Cleanup(openAPISrv.Close)
	port := testenv.FreePort(t)
	s := &stack{
		t: t, temporal: temporal, openAPI: openAPI, licenseCodes: licenseCodes,
		baseURL: "http://127.0.0.1:" + strconv.Itoa(port),
		logs:    &testenv.SyncBuffer{},
	}
	databaseURL := envValue(extraEnv, "DATABASE_URL")
	if databaseURL == "" {
		databaseURL = testenv.NewDatabase(t)
	}
	s.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HTTP_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"DATABASE_URL=" + databaseURL,
		"TEMPORAL_ADDRESS=" + temporal.Address(),
		"KOOGALLERY_ACCESS_KEY=" + accessKey,
		"FULFILLMENT_ADMIN_TOKEN=" + adminToken,
		"KOOGALLERY_API_URL=" + openAPISrv.URL,
		"KOOGALLERY_AK=" + openAPIAK,
		"KOOGALLERY_SK=" + openAPISK,
		"KOOGALLERY_KIT_ACCESS_KEY=" + kitAccessKey,
		"KOOGALLERY_LICENSE_ACCESS_KEY=" + licenseAccessKey,
		"KOOGALLERY_KIT_PRIVATE_KEY_FILE=" + kitPrivateKeyFile,
		"LOG_LEVEL=debug",
	}, extraEnv...)
	t.Cleanup(func() {
		stopProcess(s.worker)
		s.stopServer()
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs.String())
		}
	})
	return s
}

func (s *stack) startServer() {
	s.t.Helper()
	s.proc = startProcess(s.t, "server", s.env, s.logs, s.baseURL+"/healthz", "serve")
}

func (s *stack) stopServer() {
	stopProcess(s.proc)
	s.proc = nil
}

// workerStarted is what the worker logs once it polls its task queue.
const workerStarted = `"msg":"Worker started"`

// startWorker starts "fulfillment worker" and waits until it polls.
func (s *stack) startWorker() {
	s.t.Helper()
	before := strings.Count(s.logs.String(), workerStarted)
	cmd := exec.Command(binary, "worker")
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(s.t, cmd.Start())
	s.worker = cmd
	require.Eventually(s.t, func() bool { return strings.Count(s.logs.String(), workerStarted) > before },
		30*time.Second, 100*time.Millisecond, "the worker did not start; logs:\n%s", s.logs.String())
}

// killWorker ends the worker with SIGKILL, as a crash or an OOM kill would:
// no activity is finished or reported, no connection closed politely.
func (s *stack) killWorker() {
	s.t.Helper()
	require.NotNil(s.t, s.worker, "no worker process runs")
	require.NoError(s.t, syscall.Kill(-s.worker.Process.Pid, syscall.SIGKILL))
	_ = s.worker.Wait()
	s.worker = nil
}

// startProcess runs the binary with args and env, and waits until
// healthURL answers 200.
func startProcess(t *testing.T, name string, env []string, logs *testenv.SyncBuffer, healthURL string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		resp, err := http.Get(healthURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "the %s did not come up; logs:\n%s", name, logs.String())
	return cmd
}

// stopProcess stops a process started by startProcess.
func stopProcess(cmd *exec.Cmd) {
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// reply is a production-interface answer.
type reply struct {
	ResultCode string                    `json:"resultCode"`
	ResultMsg  string                    `json:"resultMsg"`
	InstanceID string                    `json:"instanceId"`
	Info       []koogallery.InstanceInfo `json:"info"`
	raw        []byte
	took       time.Duration
}

// produce sends a signed callback like KooGallery and checks that the
// answer is signed.
func (s *stack) produce(body string) reply {
	s.t.Helper()
	return s.produceQuery(koogallery.SignedQuery(accessKey, []byte(body), time.Now()), body)
}

// produceSigned sends body signed over the given form.
func (s *stack) produceSigned(form koogallery.SignedForm, body string) reply {
	s.t.Helper()
	query, err := koogallery.SignedQueryAs(form, accessKey, []byte(body), time.Now())
	require.NoError(s.t, err)
	return s.produceQuery(query, body)
}

// produceQuery sends body with the given query and checks that the answer
// is signed.
func (s *stack) produceQuery(query url.Values, body string) reply {
	s.t.Helper()
	return s.produceAnsweredWith(accessKey, query, body)
}

// produceAnsweredWith sends body with the given query and checks that the
// answer is signed with answerKey.
func (s *stack) produceAnsweredWith(answerKey string, query url.Values, body string) reply {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/produce?"+query.Encode(), strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	raw, took := s.signedAnswer(req, answerKey)
	r := reply{raw: raw, took: took}
	require.NoError(s.t, json.Unmarshal(raw, &r), string(raw))
	return r
}

// signedAnswer sends a call to the production interface and returns its
// answer, checked to be HTTP 200 with a Body-Sign made with answerKey, and
// how long it took.
func (s *stack) signedAnswer(req *http.Request, answerKey string) ([]byte, time.Duration) {
	s.t.Helper()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	require.Equal(s.t, http.StatusOK, resp.StatusCode, string(raw))
	require.NoError(s.t, koogallery.VerifyBodySign(resp.Header.Get(koogallery.BodySignHeader), answerKey, raw),
		"every answer must carry a valid Body-Sign made with the interface's key")
	return raw, time.Since(start)
}

// metrics returns the server's /metrics page.
func (s *stack) metrics() string {
	s.t.Helper()
	resp, err := http.Get(s.baseURL + "/metrics")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	return string(raw)
}

// instance is the admin API's view of an instance.
type instance struct {
	InstanceID string     `json:"instanceId"`
	State      string     `json:"state"`
	Reason     string     `json:"reason"`
	ExpireTime *time.Time `json:"expireTime"`
	AppInfo    *struct {
		FrontEndURL string `json:"frontEndUrl"`
		UserName    string `json:"userName"`
	} `json:"appInfo"`
	Events []struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
		Key     string `json:"key"`
	} `json:"events"`
}

func (s *stack) instance(id string) instance {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+"/v1/instances/"+id, nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	var out instance
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// waitFor polls the instance until cond holds.
func (s *stack) waitFor(id, what string, cond func(instance) bool) instance {
	s.t.Helper()
	return waitUntil(s.t, 60*time.Second, "instance "+id+" to be "+what, func() instance { return s.instance(id) }, cond)
}

// waitUntil polls get until cond holds, and fails with the last value seen.
func waitUntil[T any](t *testing.T, limit time.Duration, what string, get func() T, cond func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		last := get()
		if cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s; last seen: %+v", what, limit, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *stack) waitState(id, state string) instance {
	s.t.Helper()
	return s.waitFor(id, state, func(i instance) bool { return i.State == state })
}

// events counts the timeline entries with the given key.
func (i instance) events(key string) int {
	n := 0
	for _, e := range i.Events {
		if e.Key == key {
			n++
		}
	}
	return n
}

// tenantPage fetches the demo tenant page behind a frontEndUrl.
func tenantStatus(t *testing.T, frontEndURL string) int {
	t.Helper()
	resp, err := http.Get(frontEndURL)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func tenantLogin(t *testing.T, frontEndURL, user, password string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"userName": user, "password": password})
	resp, err := http.Post(frontEndURL+"/login", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}
