package provisioner_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/provisioner"
)

const appKey = "shared-provisioner-key"

// appRequest is one request the fake application received.
type appRequest struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	// Verify is what provisioner.VerifyRequest said of it.
	Verify error
}

// fakeApp is the merchant's application: it verifies and records every
// request and answers with the configured status and body.
type fakeApp struct {
	mu     sync.Mutex
	reqs   []appRequest
	status int
	answer string
}

func (a *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	verr := provisioner.VerifyRequest(r, body, []byte(appKey), time.Now(), time.Minute)
	a.mu.Lock()
	a.reqs = append(a.reqs, appRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Verify: verr})
	status, answer := a.status, a.answer
	a.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, answer) //nolint:errcheck // test server
}

func (a *fakeApp) answerWith(status int, answer string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status, a.answer = status, answer
}

func (a *fakeApp) requests() []appRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]appRequest(nil), a.reqs...)
}

func (a *fakeApp) last(t *testing.T) appRequest {
	t.Helper()
	reqs := a.requests()
	require.NotEmpty(t, reqs)
	return reqs[len(reqs)-1]
}

// newApp starts the fake application under a path prefix and returns an
// HTTP provisioner calling it.
func newApp(t *testing.T) (*fakeApp, *provisioner.HTTP) {
	t.Helper()
	app := &fakeApp{}
	mux := http.NewServeMux()
	mux.Handle("/app/", http.StripPrefix("/app", app))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h, err := provisioner.NewHTTP(srv.URL+"/app/", appKey, srv.Client())
	require.NoError(t, err)
	return app, h
}

var hexSignature = regexp.MustCompile(`^v1=[0-9a-f]{64}$`)

func TestHTTPRequests(t *testing.T) {
	expire := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	cases := []struct {
		name          string
		answer        string
		call          func(ctx context.Context, h *provisioner.HTTP) (any, error)
		wantPath      string
		wantKey       string
		wantBody      string
		wantResult    any
		noIdempotency bool
	}{
		{
			name:   "provision",
			answer: `{"frontEndUrl":"https://app.example.com/t/1","adminUrl":"https://app.example.com/a/1","userName":"admin","password":"pw","memo":"欢迎","extra":true}`,
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return h.Provision(ctx, provisioner.ProvisionRequest{
					InstanceID: "I1", OrderID: "O1", OrderLineID: "O1-1", ChargingMode: "PERIOD",
					PeriodType: "month", PeriodNumber: 3, ExpireTime: &expire,
					Spec:     provisioner.Spec{SkuCode: "sku", ProductID: "prod", LinearValue: ptr(int64(20))},
					Customer: provisioner.Customer{ID: "c1", Name: "客户"},
					Debug:    true,
				})
			},
			wantPath: "/provision",
			wantKey:  "provision:I1",
			wantBody: `{"instanceId":"I1","orderId":"O1","orderLineId":"O1-1","chargingMode":"PERIOD","periodType":"month",
				"periodNumber":3,"expireTime":"2031-05-06T07:08:09Z","spec":{"skuCode":"sku","productId":"prod","linearValue":20},
				"customer":{"id":"c1","name":"客户"},"debug":true}`,
			wantResult: provisioner.Tenant{FrontEndURL: "https://app.example.com/t/1", AdminURL: "https://app.example.com/a/1",
				UserName: "admin", Password: "pw", Memo: "欢迎"},
		},
		{
			name:   "provision with the minimum",
			answer: `{"frontEndUrl":"https://app.example.com/t/2"}`,
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return h.Provision(ctx, provisioner.ProvisionRequest{InstanceID: "I2", OrderID: "O2", OrderLineID: "O2-1"})
			},
			wantPath:   "/provision",
			wantKey:    "provision:I2",
			wantBody:   `{"instanceId":"I2","orderId":"O2","orderLineId":"O2-1","spec":{},"customer":{},"debug":false}`,
			wantResult: provisioner.Tenant{FrontEndURL: "https://app.example.com/t/2"},
		},
		{
			name: "freeze",
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return nil, h.Freeze(ctx, provisioner.TenantRequest{InstanceID: "I1", Reason: "expired"})
			},
			wantPath: "/freeze",
			wantKey:  "freeze:I1",
			wantBody: `{"instanceId":"I1","debug":false,"reason":"expired"}`,
		},
		{
			name: "freeze with its operation ID",
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return nil, h.Freeze(ctx, provisioner.TenantRequest{InstanceID: "I1", Reason: "expired", OperationID: "freeze:I1:3"})
			},
			wantPath: "/freeze",
			wantKey:  "freeze:I1:3",
			wantBody: `{"instanceId":"I1","debug":false,"reason":"expired","operationId":"freeze:I1:3"}`,
		},
		{
			name: "release with its operation ID",
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return nil, h.Release(ctx, provisioner.TenantRequest{InstanceID: "I1", OperationID: "release:I1:4"})
			},
			wantPath: "/release",
			wantKey:  "release:I1:4",
			wantBody: `{"instanceId":"I1","debug":false,"operationId":"release:I1:4"}`,
		},
		{
			name: "unfreeze",
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return nil, h.Unfreeze(ctx, provisioner.TenantRequest{InstanceID: "I1", Debug: true})
			},
			wantPath: "/unfreeze",
			wantKey:  "unfreeze:I1",
			wantBody: `{"instanceId":"I1","debug":true}`,
		},
		{
			name: "upgrade",
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return nil, h.Upgrade(ctx, provisioner.UpgradeRequest{InstanceID: "I1", OrderID: "G1",
					Spec: provisioner.Spec{SkuCode: "sku-2", LinearValue: ptr(int64(50))}})
			},
			wantPath: "/upgrade",
			wantKey:  "upgrade:I1:G1",
			wantBody: `{"instanceId":"I1","orderId":"G1","debug":false,"spec":{"skuCode":"sku-2","linearValue":50}}`,
		},
		{
			name: "release",
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return nil, h.Release(ctx, provisioner.TenantRequest{InstanceID: "I1", Reason: "retention ended"})
			},
			wantPath: "/release",
			wantKey:  "release:I1",
			wantBody: `{"instanceId":"I1","debug":false,"reason":"retention ended"}`,
		},
		{
			name:   "check change",
			answer: `{"allowed":false,"reason":"too many users"}`,
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return h.CheckChange(ctx, provisioner.ChangeRequest{InstanceID: "I1",
					Current: provisioner.Spec{SkuCode: "a", LinearValue: ptr(int64(10))},
					Target:  provisioner.Spec{SkuCode: "a", LinearValue: ptr(int64(2))}})
			},
			wantPath: "/check-change",
			wantBody: `{"instanceId":"I1","debug":false,"current":{"skuCode":"a","linearValue":10},
				"target":{"skuCode":"a","linearValue":2}}`,
			wantResult:    provisioner.ChangeVerdict{Allowed: false, Reason: "too many users"},
			noIdempotency: true,
		},
		{
			name:   "check change allowed",
			answer: `{"allowed":true}`,
			call: func(ctx context.Context, h *provisioner.HTTP) (any, error) {
				return h.CheckChange(ctx, provisioner.ChangeRequest{InstanceID: "I1"})
			},
			wantPath:      "/check-change",
			wantBody:      `{"instanceId":"I1","debug":false,"current":{},"target":{}}`,
			wantResult:    provisioner.ChangeVerdict{Allowed: true},
			noIdempotency: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app, h := newApp(t)
			app.answerWith(http.StatusOK, tc.answer)

			got, err := tc.call(context.Background(), h)
			require.NoError(t, err)
			if tc.wantResult != nil {
				require.Equal(t, tc.wantResult, got)
			}

			reqs := app.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			require.Equal(t, http.MethodPost, r.Method)
			require.Equal(t, tc.wantPath, r.Path)
			require.Equal(t, "application/json", r.Header.Get("Content-Type"))
			require.JSONEq(t, tc.wantBody, string(r.Body))
			require.NoError(t, r.Verify, "the application accepts the signature")
			require.Regexp(t, hexSignature, r.Header.Get(provisioner.SignatureHeader))
			if tc.noIdempotency {
				require.Empty(t, r.Header.Values(provisioner.IdempotencyKeyHeader))
			} else {
				require.Equal(t, tc.wantKey, r.Header.Get(provisioner.IdempotencyKeyHeader))
			}
		})
	}
}

func TestHTTPRetryKeepsIdempotencyKey(t *testing.T) {
	ctx := context.Background()
	app, h := newApp(t)
	app.answerWith(http.StatusServiceUnavailable, `{"error":"busy"}`)
	req := provisioner.TenantRequest{InstanceID: "I1"}
	require.Error(t, h.Freeze(ctx, req))
	app.answerWith(http.StatusNoContent, "")
	require.NoError(t, h.Freeze(ctx, req))

	reqs := app.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, reqs[0].Header.Get(provisioner.IdempotencyKeyHeader), reqs[1].Header.Get(provisioner.IdempotencyKeyHeader))
	require.Equal(t, reqs[0].Body, reqs[1].Body)
}

func TestVerifyRequest(t *testing.T) {
	app, h := newApp(t)
	require.NoError(t, h.Release(context.Background(), provisioner.TenantRequest{InstanceID: "I1"}))
	sent := app.last(t)
	require.NoError(t, sent.Verify)

	request := func(header http.Header) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/release", nil)
		r.Header = header.Clone()
		return r
	}
	ms, err := strconv.ParseInt(sent.Header.Get(provisioner.TimestampHeader), 10, 64)
	require.NoError(t, err, "the timestamp is Unix milliseconds")
	sentAt := time.UnixMilli(ms)
	require.WithinDuration(t, time.Now(), sentAt, time.Minute)

	tampered := append([]byte(nil), sent.Body...)
	tampered[len(tampered)-2] = 'X'
	noPrefix := sent.Header.Clone()
	noPrefix.Set(provisioner.SignatureHeader, strings.TrimPrefix(sent.Header.Get(provisioner.SignatureHeader), "v1="))
	badHex := sent.Header.Clone()
	badHex.Set(provisioner.SignatureHeader, "v1=zz")
	noTimestamp := sent.Header.Clone()
	noTimestamp.Del(provisioner.TimestampHeader)
	otherTimestamp := sent.Header.Clone()
	otherTimestamp.Set(provisioner.TimestampHeader, strconv.FormatInt(ms+1, 10))

	cases := []struct {
		name   string
		header http.Header
		body   []byte
		key    string
		now    time.Time
		ok     bool
	}{
		{"as sent", sent.Header, sent.Body, appKey, sentAt, true},
		{"within the skew", sent.Header, sent.Body, appKey, sentAt.Add(59 * time.Second), true},
		{"clock behind within the skew", sent.Header, sent.Body, appKey, sentAt.Add(-59 * time.Second), true},
		{"other key", sent.Header, sent.Body, "another-key", sentAt, false},
		{"tampered body", sent.Header, tampered, appKey, sentAt, false},
		{"empty body", sent.Header, nil, appKey, sentAt, false},
		{"stale", sent.Header, sent.Body, appKey, sentAt.Add(2 * time.Minute), false},
		{"from the future", sent.Header, sent.Body, appKey, sentAt.Add(-2 * time.Minute), false},
		{"signature without v1=", noPrefix, sent.Body, appKey, sentAt, false},
		{"signature not hex", badHex, sent.Body, appKey, sentAt, false},
		{"no timestamp", noTimestamp, sent.Body, appKey, sentAt, false},
		{"timestamp changed", otherTimestamp, sent.Body, appKey, sentAt, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := provisioner.VerifyRequest(request(tc.header), tc.body, []byte(tc.key), tc.now, time.Minute)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}

	// The signature is the documented HMAC over "timestamp.body".
	ts := sent.Header.Get(provisioner.TimestampHeader)
	require.Equal(t, "v1="+provisioner.Signature([]byte(appKey), ts, sent.Body), sent.Header.Get(provisioner.SignatureHeader))
	require.NotEqual(t, provisioner.Signature([]byte(appKey), ts, sent.Body), provisioner.Signature([]byte(appKey), ts+"0", sent.Body))
}

func TestHTTPErrorStatuses(t *testing.T) {
	long := strings.Repeat("错", 250)
	cases := []struct {
		name      string
		status    int
		answer    string
		permanent bool
		wantMsg   string
	}{
		{"server error", http.StatusInternalServerError, `{"error":"database down"}`, false, "database down"},
		{"unavailable", http.StatusServiceUnavailable, `{"error":"maintenance"}`, false, "maintenance"},
		{"bad gateway, text", http.StatusBadGateway, "upstream\n", false, "upstream"},
		{"rate limited", http.StatusTooManyRequests, `{"error":"slow down"}`, false, "slow down"},
		{"request timeout", http.StatusRequestTimeout, ``, false, "(empty answer)"},
		{"too early", http.StatusTooEarly, `{"error":"not yet"}`, false, "not yet"},
		{"bad request", http.StatusBadRequest, `{"error":"spec unknown"}`, true, "application answered 400: spec unknown"},
		{"not found", http.StatusNotFound, `{"error":"no such tenant"}`, true, "application answered 404: no such tenant"},
		{"unprocessable", http.StatusUnprocessableEntity, `{"error":"` + long + `"}`, true,
			"application answered 422: " + strings.Repeat("错", 200) + "…"},
		{"conflict, text", http.StatusConflict, "  already released  ", true, "application answered 409: already released"},
		{"forbidden, empty", http.StatusForbidden, "", true, "application answered 403: (empty answer)"},
		{"json without error", http.StatusBadRequest, `{"message":"x"}`, true, `application answered 400: {"message":"x"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app, h := newApp(t)
			app.answerWith(tc.status, tc.answer)
			err := h.Freeze(context.Background(), provisioner.TenantRequest{InstanceID: "I1"})
			require.Error(t, err)
			require.Equal(t, tc.permanent, provisioner.IsPermanent(err), "%v", err)
			if tc.permanent {
				var perm *provisioner.PermanentError
				require.ErrorAs(t, err, &perm)
				require.Equal(t, "freeze", perm.Op)
				require.Equal(t, tc.wantMsg, perm.Msg)
				require.Equal(t, "freeze: "+tc.wantMsg, err.Error())
			} else {
				require.Contains(t, err.Error(), tc.wantMsg)
				require.True(t, strings.HasPrefix(err.Error(), "freeze: "), err.Error())
			}

			// Provision maps statuses the same way.
			_, err = h.Provision(context.Background(), provisioner.ProvisionRequest{InstanceID: "I1"})
			require.Equal(t, tc.permanent, provisioner.IsPermanent(err), "%v", err)
		})
	}
}

func TestHTTPBadAnswers(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		answer string
		call   func(h *provisioner.HTTP) error
	}{
		{"provision without frontEndUrl", `{"userName":"admin","password":"pw"}`, func(h *provisioner.HTTP) error {
			_, err := h.Provision(ctx, provisioner.ProvisionRequest{InstanceID: "I1"})
			return err
		}},
		{"provision with empty answer", ``, func(h *provisioner.HTTP) error {
			_, err := h.Provision(ctx, provisioner.ProvisionRequest{InstanceID: "I1"})
			return err
		}},
		{"provision with non-JSON", `<html>ok</html>`, func(h *provisioner.HTTP) error {
			_, err := h.Provision(ctx, provisioner.ProvisionRequest{InstanceID: "I1"})
			return err
		}},
		{"check change with non-JSON", `yes`, func(h *provisioner.HTTP) error {
			_, err := h.CheckChange(ctx, provisioner.ChangeRequest{InstanceID: "I1"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app, h := newApp(t)
			app.answerWith(http.StatusOK, tc.answer)
			err := tc.call(h)
			require.Error(t, err)
			require.True(t, provisioner.IsPermanent(err), "%v", err)
		})
	}

	// Operations without a result ignore the answer's body.
	app, h := newApp(t)
	app.answerWith(http.StatusAccepted, `not json`)
	require.NoError(t, h.Release(ctx, provisioner.TenantRequest{InstanceID: "I1"}))
	tenant, err := func() (provisioner.Tenant, error) {
		app.answerWith(http.StatusCreated, `{"frontEndUrl":"https://x.example/t"}`)
		return h.Provision(ctx, provisioner.ProvisionRequest{InstanceID: "I1"})
	}()
	require.NoError(t, err)
	require.Equal(t, "https://x.example/t", tenant.FrontEndURL)
}

func TestHTTPUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	h, err := provisioner.NewHTTP(url, appKey, nil)
	require.NoError(t, err)

	err = h.Freeze(context.Background(), provisioner.TenantRequest{InstanceID: "I1"})
	require.Error(t, err)
	require.False(t, provisioner.IsPermanent(err), "%v", err)
	_, err = h.Provision(context.Background(), provisioner.ProvisionRequest{InstanceID: "I1"})
	require.Error(t, err)
	require.False(t, provisioner.IsPermanent(err), "%v", err)

	// A cancelled context is not permanent either.
	app, h2 := newApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = h2.Release(ctx, provisioner.TenantRequest{InstanceID: "I1"})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
	require.False(t, provisioner.IsPermanent(err))
	require.Empty(t, app.requests())
}

func TestNewHTTP(t *testing.T) {
	cases := []struct {
		name string
		url  string
		key  string
		ok   bool
	}{
		{"http", "http://app.example.com", "k", true},
		{"https with path", "https://app.example.com/fulfillment/", "k", true},
		{"empty key", "https://app.example.com", "", false},
		{"empty url", "", "k", false},
		{"relative", "/provision", "k", false},
		{"no host", "http://", "k", false},
		{"other scheme", "ftp://app.example.com", "k", false},
		{"not a url", "://bad url", "k", false},
		{"host only", "app.example.com", "k", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := provisioner.NewHTTP(tc.url, tc.key, nil)
			if tc.ok {
				require.NoError(t, err)
				require.NotNil(t, h)
			} else {
				require.Error(t, err)
				require.Nil(t, h)
			}
		})
	}
}
