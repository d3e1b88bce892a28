package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq" // the Postgres driver, for the raw side-effect queries
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

const (
	testAccessKey  = "9fa6c870-8bb0-4e9b-b71e-4c223300156f"
	testAdminToken = "adm-7Qx2pL9vK3mN8rT5wZ1c"
	testTaskQueue  = "fulfillment-test"
	// maxBody is the API's documented limit for a /produce body.
	maxBody = 1 << 20
)

// ---------------------------------------------------------------------------
// Fakes for Temporal.

// signalCall is one SignalWithStartWorkflow the inbox made.
type signalCall struct {
	WorkflowID string
	SignalName string
	Arg        any
	Options    client.StartWorkflowOptions
	Workflow   any
	Args       []any
	Err        error
}

// fakeSignaller stands in for the Temporal client of the inbox. It records
// every call and fails them all while failing is set (Temporal down). While
// hold is set, calls wait until it is closed (Temporal slow).
type fakeSignaller struct {
	mu      sync.Mutex
	failing bool
	// refuse fails every call for these workflow IDs with their error
	// (Temporal refusing one callback, not Temporal down).
	refuse map[string]error
	hold   chan struct{}
	calls  []signalCall
}

// inboxTemporal is the Temporal client the inbox sees: callbacks go to
// the fakeSignaller, the retry of a parked provisioning to the
// fakeTemporal, beside the operators' signals.
type inboxTemporal struct {
	*fakeSignaller
	*fakeTemporal
}

var _ inbox.Signaller = inboxTemporal{}

func (f *fakeSignaller) SignalWithStartWorkflow(_ context.Context, workflowID, signalName string, signalArg any,
	options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	call := signalCall{WorkflowID: workflowID, SignalName: signalName, Arg: signalArg, Options: options,
		Workflow: workflow, Args: workflowArgs}
	if f.failing {
		call.Err = serviceerror.NewUnavailable("fake temporal is down")
		f.calls = append(f.calls, call)
		return nil, call.Err
	}
	if err := f.refuse[workflowID]; err != nil {
		call.Err = err
		f.calls = append(f.calls, call)
		return nil, err
	}
	f.calls = append(f.calls, call)
	return fakeRun{id: workflowID}, nil
}

// holdCalls makes the calls wait until the returned function is called.
func (f *fakeSignaller) holdCalls() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hold := make(chan struct{})
	f.hold = hold
	return func() {
		f.mu.Lock()
		f.hold = nil
		f.mu.Unlock()
		close(hold)
	}
}

// refuseFor makes every call for the workflow fail with err (nil: stop).
func (f *fakeSignaller) refuseFor(workflowID string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse == nil {
		f.refuse = map[string]error{}
	}
	f.refuse[workflowID] = err
}

func (f *fakeSignaller) setFailing(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = v
}

// attempts returns every call, failed ones included.
func (f *fakeSignaller) attempts() []signalCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]signalCall(nil), f.calls...)
}

// delivered returns the calls that succeeded.
func (f *fakeSignaller) delivered() []signalCall {
	var out []signalCall
	for _, c := range f.attempts() {
		if c.Err == nil {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeSignaller) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// fakeRun is the run a successful SignalWithStart returns; the inbox does not
// use it, so only the IDs are real.
type fakeRun struct {
	client.WorkflowRun
	id string
}

func (r fakeRun) GetID() string    { return r.id }
func (r fakeRun) GetRunID() string { return "run-" + r.id }

// fakeTemporal stands in for the API's own Temporal client.
type fakeTemporal struct {
	mu        sync.Mutex
	healthErr error
	updateErr error // returned by UpdateWorkflow
	getErr    error // returned by the handle's Get
	hang      bool  // the handle's Get waits until its context ends
	result    workflows.ChangeCheckResult
	updates   []client.UpdateWorkflowOptions
	signalErr error // returned by SignalWorkflow
	signals   []operatorSignal
}

// operatorSignal is one SignalWorkflow call.
type operatorSignal struct {
	WorkflowID string
	Name       string
	Request    workflows.OperatorRequest
}

var _ api.Temporal = (*fakeTemporal)(nil)

func (f *fakeTemporal) SignalWorkflow(_ context.Context, workflowID, _ string, signalName string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.signalErr != nil {
		return f.signalErr
	}
	f.signals = append(f.signals, operatorSignal{WorkflowID: workflowID, Name: signalName, Request: arg.(workflows.OperatorRequest)})
	return nil
}

func (f *fakeTemporal) setSignalErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signalErr = err
}

func (f *fakeTemporal) signalCalls() []operatorSignal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]operatorSignal(nil), f.signals...)
}

func (f *fakeTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.healthErr != nil {
		return nil, f.healthErr
	}
	return &client.CheckHealthResponse{}, nil
}

func (f *fakeTemporal) UpdateWorkflow(_ context.Context, options client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, options)
	if f.updateErr != nil {
		return nil, f.updateErr
	}
	return &fakeUpdateHandle{workflowID: options.WorkflowID, result: f.result, err: f.getErr, hang: f.hang}, nil
}

func (f *fakeTemporal) setHealth(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthErr = err
}

// setUpdate decides how the next updates end: UpdateWorkflow fails with
// updateErr, else Get fails with getErr, else Get yields result.
func (f *fakeTemporal) setUpdate(result workflows.ChangeCheckResult, updateErr, getErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.result, f.updateErr, f.getErr = result, updateErr, getErr
}

// setHang makes the next updates wait until their caller gives up (the
// merchant's application never answers the check).
func (f *fakeTemporal) setHang(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = v
}

func (f *fakeTemporal) updateCalls() []client.UpdateWorkflowOptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]client.UpdateWorkflowOptions(nil), f.updates...)
}

type fakeUpdateHandle struct {
	workflowID string
	result     workflows.ChangeCheckResult
	err        error
	hang       bool
}

func (h *fakeUpdateHandle) WorkflowID() string { return h.workflowID }
func (h *fakeUpdateHandle) RunID() string      { return "run-" + h.workflowID }
func (h *fakeUpdateHandle) UpdateID() string   { return "update-" + h.workflowID }

func (h *fakeUpdateHandle) Get(ctx context.Context, valuePtr any) error {
	if h.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if h.err != nil {
		return h.err
	}
	out, ok := valuePtr.(*workflows.ChangeCheckResult)
	if !ok {
		return errors.New("fake update handle: Get wants a *workflows.ChangeCheckResult")
	}
	*out = h.result
	return nil
}

// ---------------------------------------------------------------------------
// The harness: a migrated database of its own, the fakes and the server.

type harnessConfig struct {
	encryption api.AppInfoEncryption
	adminToken string
	usageToken string
	logger     *slog.Logger
	metrics    func(db *store.DB) *api.Metrics
	demo       bool
	spool      *inbox.Spool
	kitKey     string
	kitKeys    *koogallery.KitKeys
	licenses   api.LicenseAPI
	licenseTok string
	licenseKey string
	v1Key      string
	now        func() time.Time
	nodeLocked []string
}

type harnessOption func(*harnessConfig)

func withEncryption(e api.AppInfoEncryption) harnessOption {
	return func(c *harnessConfig) { c.encryption = e }
}

func withAdminToken(token string) harnessOption {
	return func(c *harnessConfig) { c.adminToken = token }
}

func withUsageToken(token string) harnessOption {
	return func(c *harnessConfig) { c.usageToken = token }
}

func withSpool(s *inbox.Spool) harnessOption {
	return func(c *harnessConfig) { c.spool = s }
}

// withDemo serves the demo application's pages and maintenance switch, as
// with PROVISIONER=demo.
func withDemo() harnessOption {
	return func(c *harnessConfig) { c.demo = true }
}

// withKit serves the 联营 kit with its access key and private keys.
func withKit(key string, keys *koogallery.KitKeys) harnessOption {
	return func(c *harnessConfig) { c.kitKey, c.kitKeys = key, keys }
}

// withLicenses serves license codes through the given open API, for the
// given token.
func withLicenses(licenses api.LicenseAPI, token string) harnessOption {
	return func(c *harnessConfig) { c.licenses, c.licenseTok = licenses, token }
}

// withLicenseKey verifies the license-code callbacks with key.
func withLicenseKey(key string) harnessOption {
	return func(c *harnessConfig) { c.licenseKey = key }
}

// withV1Key serves the V1 GET calls and the V1 kit's with key.
func withV1Key(key string) harnessOption {
	return func(c *harnessConfig) { c.v1Key = key }
}

// withNodeLocked names the products whose licences need a device.
func withNodeLocked(products ...string) harnessOption {
	return func(c *harnessConfig) { c.nodeLocked = products }
}

// withClock sets the server's clock (signature windows).
func withClock(now func() time.Time) harnessOption {
	return func(c *harnessConfig) { c.now = now }
}

func withLogger(l *slog.Logger) harnessOption {
	return func(c *harnessConfig) { c.logger = l }
}

func withBacklogMetric() harnessOption {
	return func(c *harnessConfig) {
		c.metrics = func(db *store.DB) *api.Metrics {
			return api.NewMetrics(nil, api.Gauges{RelayBacklog: db.Callbacks.UndeliveredCount, UsagePending: db.Metering.PendingUsageCount,
				UsageHeld: db.Metering.HeldUsageCount, ParkedCallbacks: db.Callbacks.ParkedCount})
		}
	}
}

type harness struct {
	db        *store.DB
	raw       *sql.DB                // the same database, for counting side effects
	demo      *provisioner.DemoStore // withDemo: the demo application's store
	signaller *fakeSignaller
	temporal  *fakeTemporal
	inbox     *inbox.Inbox
	handler   http.Handler
	srv       *httptest.Server
	revision  int64
}

// newHarness takes a testing.TB so that a fuzz target can build one
// harness (one database) for all its inputs.
func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	cfg := harnessConfig{encryption: api.EncryptAES256, adminToken: testAdminToken}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dbURL := testenv.NewDatabase(t)
	ctx := t.Context()
	db, err := store.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Migrate(ctx)
	require.NoError(t, err)
	raw, err := sql.Open("postgres", dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })

	h := &harness{db: db, raw: raw, signaller: &fakeSignaller{}, temporal: &fakeTemporal{}}
	h.inbox = &inbox.Inbox{Store: db.Callbacks, Temporal: inboxTemporal{h.signaller, h.temporal}, TaskQueue: testTaskQueue,
		Logger: cfg.logger, Spool: cfg.spool, ReadModel: db.Instances}
	dispatchCtx, stopDispatch := context.WithCancel(context.Background())
	waitDispatch := h.inbox.StartDispatcher(dispatchCtx, 4)
	t.Cleanup(func() { stopDispatch(); waitDispatch() })
	var metrics *api.Metrics
	if cfg.metrics != nil {
		metrics = cfg.metrics(db)
	}
	var routes []api.Route
	if cfg.demo {
		h.demo = provisioner.NewDemoStore(raw)
		_, err := h.demo.Migrate(ctx)
		require.NoError(t, err)
		for _, route := range provisioner.DemoRoutes(h.demo, cfg.logger) {
			routes = append(routes, api.Route(route))
		}
	}
	h.handler = api.New(api.Config{
		Store:        db,
		Inbox:        h.inbox,
		Temporal:     h.temporal,
		AccessKey:    testAccessKey,
		Encryption:   cfg.encryption,
		AdminToken:   cfg.adminToken,
		UsageToken:   cfg.usageToken,
		Logger:       cfg.logger,
		Metrics:      metrics,
		Routes:       routes,
		Licenses:     cfg.licenses,
		LicenseToken: cfg.licenseTok,
		KitAccessKey: cfg.kitKey,
		KitKeys:      cfg.kitKeys,

		LicenseAccessKey: cfg.licenseKey,
		V1AccessKey:      cfg.v1Key,
		Now:              cfg.now,

		LicenseNodeLocked: cfg.nodeLocked,
	}).Handler()
	h.srv = httptest.NewServer(h.handler)
	t.Cleanup(h.srv.Close)
	return h
}

// ---------------------------------------------------------------------------
// Calling /produce.

// produceAnswer is a /produce answer that passed requireSignedAnswer.
type produceAnswer struct {
	Status     int
	Raw        []byte
	ResultCode string                    `json:"resultCode"`
	ResultMsg  string                    `json:"resultMsg"`
	InstanceID string                    `json:"instanceId"`
	Info       []koogallery.InstanceInfo `json:"info"`
}

// requireSignedAnswer checks what every /produce answer must be (contract
// §1.0, §2.4): JSON with resultCode and resultMsg, Content-Type application/json,
// and a Body-Sign header valid for exactly the bytes received.
func requireSignedAnswer(t testing.TB, status int, header http.Header, raw []byte) produceAnswer {
	t.Helper()
	return requireAnswerSignedWith(t, testAccessKey, status, header, raw)
}

// requireAnswerSignedWith is requireSignedAnswer for an answer signed with
// key (the kit's answers are signed with the kit's key).
func requireAnswerSignedWith(t testing.TB, key string, status int, header http.Header, raw []byte) produceAnswer {
	t.Helper()
	mediaType, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	require.NoError(t, err, "Content-Type %q", header.Get("Content-Type"))
	require.Equal(t, "application/json", mediaType)
	require.NoError(t, koogallery.VerifyBodySign(header.Get(koogallery.BodySignHeader), key, raw),
		"Body-Sign %q over %s", header.Get(koogallery.BodySignHeader), raw)

	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &fields), "answer is not a JSON object: %s", raw)
	require.Contains(t, fields, "resultCode")
	require.Contains(t, fields, "resultMsg")

	out := produceAnswer{Status: status, Raw: raw}
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Regexp(t, `^[0-9]{6}$`, out.ResultCode)
	return out
}

// requireResult checks an answer's HTTP status (200) and result code, and
// its message when msg is not empty.
func requireResult(t testing.TB, a produceAnswer, code, msg string) {
	t.Helper()
	require.Equal(t, http.StatusOK, a.Status, "answer %s", a.Raw)
	require.Equal(t, code, a.ResultCode, "answer %s", a.Raw)
	if msg != "" {
		require.Equal(t, msg, a.ResultMsg, "answer %s", a.Raw)
	}
}

// produce signs body as the marketplace does and posts it.
func (h *harness) produce(t testing.TB, body []byte) produceAnswer {
	t.Helper()
	return h.produceQuery(t, koogallery.SignedQuery(testAccessKey, body, time.Now()), body)
}

// produceQuery posts body with the given query string.
func (h *harness) produceQuery(t testing.TB, query url.Values, body []byte) produceAnswer {
	t.Helper()
	return h.produceAnsweredWith(t, testAccessKey, query, body)
}

// produceAnsweredWith posts body with the given query string and checks
// that the answer is signed with answerKey.
func (h *harness) produceAnsweredWith(t testing.TB, answerKey string, query url.Values, body []byte) produceAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		h.srv.URL+"/produce?"+query.Encode(), bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	answer := requireAnswerSignedWith(t, answerKey, resp.StatusCode, resp.Header, raw)
	h.settle(t)
	return answer
}

// settle waits until the dispatcher has finished with every callback it
// was handed, so that a test sees the delivery's effects (or its absence)
// after the answer.
func (h *harness) settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.inbox.DispatchBacklog() > 0 {
		require.True(t, time.Now().Before(deadline), "the dispatcher did not finish within 10 s")
		time.Sleep(time.Millisecond)
	}
}

// get sends a GET, with a bearer header when auth is not empty, and returns
// the status and body.
func (h *harness) get(t testing.TB, path, auth string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+path, nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

func (h *harness) admin(t testing.TB, path string) (int, []byte) {
	t.Helper()
	return h.get(t, path, "Bearer "+testAdminToken)
}

// ---------------------------------------------------------------------------
// Request bodies.

func jsonBody(t testing.TB, fields map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(fields)
	require.NoError(t, err)
	return b
}

func orderOf(instanceID string) (orderID, orderLineID string) {
	return "CS" + instanceID, "CS" + instanceID + "-000001"
}

func newInstanceBody(t testing.TB, orderID, orderLineID, businessID string) []byte {
	return jsonBody(t, map[string]any{"activity": "newInstance", "orderId": orderID,
		"orderLineId": orderLineID, "businessId": businessID, "testFlag": "1"})
}

func queryBody(t testing.TB, instanceIDs string) []byte {
	return jsonBody(t, map[string]any{"activity": "queryInstance", "instanceId": instanceIDs})
}

func refreshBody(t testing.TB, instanceID, orderID string) []byte {
	return jsonBody(t, map[string]any{"activity": "refreshInstance", "scene": "RENEWAL", "orderId": orderID,
		"orderLineId": orderID + "-000001", "instanceId": instanceID, "expireTime": "20301124023618256"})
}

func statusBody(t testing.TB, instanceID, status string) []byte {
	return jsonBody(t, map[string]any{"activity": "updateInstanceStatus", "instanceId": instanceID, "status": status})
}

func releaseBody(t testing.TB, instanceID string) []byte {
	return jsonBody(t, map[string]any{"activity": "releaseInstance", "instanceId": instanceID})
}

func upgradeBody(t testing.TB, instanceID, orderID string) []byte {
	return jsonBody(t, map[string]any{"activity": "upgradeInstance", "instanceId": instanceID,
		"orderId": orderID, "orderLineId": orderID + "-000001"})
}

func changeCheckBody(t testing.TB, instanceID string) []byte {
	return jsonBody(t, map[string]any{"activity": "changeInstanceCheck", "instanceId": instanceID,
		"productInfo": map[string]any{"skuCode": "sku-small", "productId": "prod-small", "linearValue": "20"}})
}

// ---------------------------------------------------------------------------
// Setting up instances as if their workflows had run.

// allocate creates an instance through newInstance (instanceId = businessId)
// and forgets the resulting signal, so that tests see only their own.
func (h *harness) allocate(t testing.TB, instanceID string) (orderID, orderLineID string) {
	t.Helper()
	orderID, orderLineID = orderOf(instanceID)
	a := h.produce(t, newInstanceBody(t, orderID, orderLineID, instanceID))
	requireResult(t, a, "000000", "success")
	require.Equal(t, instanceID, a.InstanceID)
	h.signaller.reset()
	return orderID, orderLineID
}

// instance is a read-model row of an allocated instance in the given state.
func instance(instanceID, state string) store.Instance {
	orderID, orderLineID := orderOf(instanceID)
	return store.Instance{
		InstanceID: instanceID, OrderID: orderID, OrderLineID: orderLineID, State: state,
		FrontEndURL: "https://app.example.com/t/" + instanceID,
		AdminURL:    "https://app.example.com/admin/" + instanceID,
		Memo:        "welcome",
	}
}

// save writes the read model as the SaveInstance activity would.
func (h *harness) save(t testing.TB, inst store.Instance, events ...store.Event) {
	t.Helper()
	h.revision++
	inst.Revision = h.revision
	written, err := h.db.Instances.SaveInstance(t.Context(), inst, events)
	require.NoError(t, err)
	require.True(t, written)
}

// saveCredentials seals and stores credentials as the Provision activity
// would.
func (h *harness) saveCredentials(t testing.TB, instanceID, userName, password string) {
	t.Helper()
	sealed, err := activities.Sealer{AccessKey: testAccessKey}.Seal(userName, password)
	require.NoError(t, err)
	require.NoError(t, h.db.Instances.SaveCredentials(t.Context(), instanceID, sealed))
}

// ---------------------------------------------------------------------------
// Side effects.

// sideEffects is everything a refused call must leave unchanged.
type sideEffects struct {
	Callbacks      int64
	Redeliveries   int64
	Undelivered    int64
	InstanceKeys   int64
	SignalAttempts int
	Updates        int
}

func (h *harness) effects(t testing.TB) sideEffects {
	t.Helper()
	var e sideEffects
	require.NoError(t, h.raw.QueryRowContext(t.Context(),
		`SELECT count(*), COALESCE(sum(redeliveries), 0) FROM callbacks`).Scan(&e.Callbacks, &e.Redeliveries))
	require.NoError(t, h.raw.QueryRowContext(t.Context(), `SELECT count(*) FROM instance_keys`).Scan(&e.InstanceKeys))
	n, err := h.db.Callbacks.UndeliveredCount(t.Context())
	require.NoError(t, err)
	e.Undelivered = n
	e.SignalAttempts = len(h.signaller.attempts())
	e.Updates = len(h.temporal.updateCalls())
	return e
}

func (h *harness) callbacksOf(t testing.TB, instanceID string) []store.Callback {
	t.Helper()
	cbs, err := h.db.Callbacks.CallbacksOf(t.Context(), instanceID)
	require.NoError(t, err)
	return cbs
}

// ---------------------------------------------------------------------------
// Bodies that count how much of them was read.

// countingReader yields n bytes of filler and counts what was read.
type countingReader struct {
	left int64
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	for i := range p {
		p[i] = ' '
	}
	c.left -= int64(len(p))
	c.read.Add(int64(len(p)))
	return len(p), nil
}
