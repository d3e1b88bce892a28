package koogallery_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

const (
	testAK = "TESTAKEXAMPLE0000001"
	testSK = "testSecretKeyExample0000000000000000000001"
)

func newMock(t *testing.T) (*mockapi.Server, *httptest.Server) {
	t.Helper()
	m := mockapi.New(mockapi.Config{AK: testAK, SK: testSK})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

func newClient(t *testing.T, cfg koogallery.OpenAPIConfig) *koogallery.OpenAPIClient {
	t.Helper()
	if cfg.AK == "" {
		cfg.AK = testAK
	}
	if cfg.SK == "" {
		cfg.SK = testSK
	}
	c, err := koogallery.NewOpenAPIClient(cfg)
	require.NoError(t, err)
	return c
}

// closedURL is the address of a server that no longer listens.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func TestQueryOrderAgainstMock(t *testing.T) {
	m, srv := newMock(t)
	c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL})
	start := time.Now()

	res, err := c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, mockapi.OrderPeriodYearNew+"-000001")
	require.NoError(t, err)
	require.Equal(t, koogallery.OpenAPISuccess, res.ResultCode)
	require.NotNil(t, res.OrderInfo)
	require.Equal(t, koogallery.OrderTypeNew, res.OrderInfo.OrderType)
	require.Contains(t, string(res.Raw), `"orderLineId":"MOCKPERIODYEARNEW-000001"`)

	line, ok := res.OrderInfo.Line("MOCKPERIODYEARNEW-000001")
	require.True(t, ok)
	require.Equal(t, koogallery.ChargingPeriod, line.ChargingMode)
	require.Equal(t, "year", line.PeriodType)
	expire, has, err := line.ExpireAt()
	require.NoError(t, err)
	require.True(t, has)
	// End of the Beijing day one year on: within a day after now+1y.
	require.WithinRange(t, expire, start.AddDate(1, 0, 0).Add(-time.Second), start.AddDate(1, 0, 1))

	// Without orderLineId the whole order comes back.
	res, err = c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, "")
	require.NoError(t, err)
	_, ok = res.OrderInfo.Line("")
	require.True(t, ok)
	require.Equal(t, 2, m.Calls(mockapi.OrderPeriodYearNew))
}

func TestQueryOrderEscapesIDs(t *testing.T) {
	// Characters that the SDK's strict percent-encoding and net/url encode
	// differently must still verify.
	m, srv := newMock(t)
	id := "ORDER 1+2&x=é/ü~*"
	m.AddOrder(koogallery.OrderInfo{OrderID: id, OrderType: koogallery.OrderTypeNew,
		OrderLines: []koogallery.OrderLine{{OrderLineID: id + "-1", ChargingMode: koogallery.ChargingOnDemand}}})
	c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL})
	res, err := c.QueryOrder(t.Context(), id, id+"-1")
	require.NoError(t, err)
	require.Equal(t, id, res.OrderInfo.OrderID)
	require.Equal(t, 1, m.Calls(id))
}

func TestQueryOrderBasePathPrefix(t *testing.T) {
	// A path prefix in BaseURL (an emulator mounted under /emulator) is part
	// of what is sent and signed.
	v := &verifier{ak: testAK, sk: testSK, now: time.Now}
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL + "/emulator/"})
	res, err := c.QueryOrder(t.Context(), "O1", "")
	require.NoError(t, err)
	require.Equal(t, "O1", res.OrderInfo.OrderID)
	require.NoError(t, v.last())
	require.Equal(t, "/emulator"+koogallery.QueryOrderPath, v.lastPath())
}

func TestQueryOrderErrors(t *testing.T) {
	_, srv := newMock(t)

	t.Run("wrong SK", func(t *testing.T) {
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL, SK: "wrong-secret-key-value"})
		_, err := c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, "")
		var oe *koogallery.OpenAPIError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, http.StatusUnauthorized, oe.HTTPStatus)
		require.Equal(t, koogallery.OpenAPIIllegalToken, oe.Code)
		require.Equal(t, "illegal token", oe.Message)
		require.False(t, oe.Retryable())
		require.False(t, koogallery.IsRetryable(err))
		require.NotContains(t, err.Error(), "wrong-secret-key-value")
		require.NotContains(t, err.Error(), "Signature=")
	})

	t.Run("unknown order", func(t *testing.T) {
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL})
		_, err := c.QueryOrder(t.Context(), "NOSUCHORDER", "")
		var oe *koogallery.OpenAPIError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, http.StatusBadRequest, oe.HTTPStatus)
		require.Equal(t, koogallery.OpenAPIParamCheckFailed, oe.Code)
		require.False(t, koogallery.IsRetryable(err))
		require.Contains(t, err.Error(), "query order NOSUCHORDER")
	})

	t.Run("empty order ID", func(t *testing.T) {
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL})
		_, err := c.QueryOrder(t.Context(), "", "")
		require.Error(t, err)
		require.False(t, koogallery.IsRetryable(err))
	})
}

func TestQueryOrderAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		code      string
		retryable bool
	}{
		{"internal error", 500, `{"resultCode":"MKT.0999","resultMsg":"system error"}`, "MKT.0999", true},
		{"rate limited", 406, `{"resultCode":"MKT.0250","resultMsg":"access frequency over limit"}`, "MKT.0250", true},
		{"gateway 5xx", 502, `{"error_code":"APIGW.0201","error_msg":"Backend unavailable"}`, "APIGW.0201", true},
		{"gateway throttled", 429, `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached"}`, "APIGW.0308", true},
		{"gateway auth", 401, `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information"}`, "APIGW.0301", false},
		{"proxy html", 503, `<html><body>Service Unavailable</body></html>`, "", true},
		{"param check on 500", 500, `{"resultCode":"MKT.0100","resultMsg":"param invalid"}`, "MKT.0100", false},
		{"usage code on 500", 500, `{"error_code":"MKT.9001","error_msg":"instance not found"}`, "MKT.9001", false},
		{"missing param", 400, `{"resultCode":"MKT.0199","resultMsg":"orderId is required"}`, "MKT.0199", false},
		{"no authority", 401, `{"resultCode":"MKT.0151","resultMsg":"no authority"}`, "MKT.0151", false},
		{"other 4xx", 404, ``, "", false},
		{"406 without a body", 406, ``, "", true},
		{"200 with failure code", 200, `{"resultCode":"MKT.0150","resultMsg":"illegal operation"}`, "MKT.0150", false},
		{"200 with internal error", 200, `{"resultCode":"MKT.0999","resultMsg":"system error"}`, "MKT.0999", true},
		{"200 not JSON", 200, `<html>login</html>`, "", false},
		{"200 without orderInfo", 200, `{"resultCode":"MKT.0000","resultMsg":"success"}`, "MKT.0000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL})
			_, err := c.QueryOrder(t.Context(), "O1", "")
			var oe *koogallery.OpenAPIError
			require.ErrorAs(t, err, &oe)
			require.Equal(t, tt.status, oe.HTTPStatus)
			require.Equal(t, tt.code, oe.Code)
			require.Equal(t, tt.retryable, oe.Retryable())
			require.Equal(t, tt.retryable, koogallery.IsRetryable(err))
		})
	}
}

func TestQueryOrderAnswerTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"resultCode":"MKT.0000","x":"`))
		_, _ = w.Write(make([]byte, 5<<20))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL})
	_, err := c.QueryOrder(t.Context(), "O1", "")
	require.ErrorContains(t, err, "larger than 4 MiB")
}

func TestQueryOrderNetworkErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: closedURL(t)})
		_, err := c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, "")
		var te *koogallery.TransportError
		require.ErrorAs(t, err, &te)
		require.True(t, koogallery.IsRetryable(err))
	})

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL, Timeout: 50 * time.Millisecond})
		_, err := c.QueryOrder(t.Context(), "O1", "")
		var te *koogallery.TransportError
		require.ErrorAs(t, err, &te)
		require.True(t, koogallery.IsRetryable(err))
	})

	t.Run("caller cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, srv := newMock(t)
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: closedURL(t), FallbackURL: srv.URL})
		_, err := c.QueryOrder(ctx, mockapi.OrderPeriodYearNew, "")
		require.ErrorIs(t, err, context.Canceled)
		require.False(t, koogallery.IsRetryable(err))
	})

	t.Run("fallback used when primary is down", func(t *testing.T) {
		m, srv := newMock(t)
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: closedURL(t), FallbackURL: srv.URL})
		res, err := c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, "")
		require.NoError(t, err)
		require.Equal(t, mockapi.OrderPeriodYearNew, res.OrderInfo.OrderID)
		require.Equal(t, 1, m.Calls(mockapi.OrderPeriodYearNew))
	})

	t.Run("fallback not used for an HTTP answer", func(t *testing.T) {
		primary, psrv := newMock(t)
		fallback, fsrv := newMock(t)
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: psrv.URL, FallbackURL: fsrv.URL})
		_, err := c.QueryOrder(t.Context(), "NOSUCHORDER", "")
		require.Error(t, err)
		require.Equal(t, 1, primary.Calls("NOSUCHORDER"))
		require.Equal(t, 0, fallback.Calls("NOSUCHORDER"))
	})

	t.Run("both down", func(t *testing.T) {
		c := newClient(t, koogallery.OpenAPIConfig{BaseURL: closedURL(t), FallbackURL: closedURL(t)})
		_, err := c.QueryOrder(t.Context(), "O1", "")
		var te *koogallery.TransportError
		require.ErrorAs(t, err, &te)
		require.Contains(t, te.Host, ", then ")
		require.True(t, koogallery.IsRetryable(err))
	})
}

func TestQueryOrderVerifiesCertificates(t *testing.T) {
	m := mockapi.New(mockapi.Config{AK: testAK, SK: testSK})
	srv := httptest.NewUnstartedServer(m)
	// The refused handshake is expected; keep it out of the test log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// The default client must refuse the self-signed test certificate.
	c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL})
	_, err := c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, "")
	var cve *tls.CertificateVerificationError
	require.ErrorAs(t, err, &cve)
	require.Equal(t, 0, m.Calls(mockapi.OrderPeriodYearNew))

	// A client that trusts the test CA (verification on) gets through, and
	// the signature verifies over TLS too.
	c = newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL, HTTPClient: srv.Client()})
	_, err = c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, "")
	require.NoError(t, err)
	require.Equal(t, 1, m.Calls(mockapi.OrderPeriodYearNew))
}

func TestNewOpenAPIClientValidation(t *testing.T) {
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the point of the test
	tests := []struct {
		name    string
		cfg     koogallery.OpenAPIConfig
		wantErr string
	}{
		{"ok", koogallery.OpenAPIConfig{BaseURL: "https://mkt.myhuaweicloud.com", FallbackURL: "https://mkt.myhuaweicloud.cn", AK: "ak", SK: "sk"}, ""},
		{"ok http mock", koogallery.OpenAPIConfig{BaseURL: "http://127.0.0.1:8081", AK: "ak", SK: "sk"}, ""},
		{"missing base", koogallery.OpenAPIConfig{AK: "ak", SK: "sk"}, "BaseURL"},
		{"relative base", koogallery.OpenAPIConfig{BaseURL: "mkt.myhuaweicloud.com", AK: "ak", SK: "sk"}, "BaseURL"},
		{"ftp base", koogallery.OpenAPIConfig{BaseURL: "ftp://mkt.myhuaweicloud.com", AK: "ak", SK: "sk"}, "BaseURL"},
		{"user info", koogallery.OpenAPIConfig{BaseURL: "https://u:p@mkt.myhuaweicloud.com", AK: "ak", SK: "sk"}, "BaseURL"},
		{"bad fallback", koogallery.OpenAPIConfig{BaseURL: "https://mkt.myhuaweicloud.com", FallbackURL: "/x", AK: "ak", SK: "sk"}, "FallbackURL"},
		{"missing AK", koogallery.OpenAPIConfig{BaseURL: "https://mkt.myhuaweicloud.com", SK: "secret-value-1"}, "AK"},
		{"missing SK", koogallery.OpenAPIConfig{BaseURL: "https://mkt.myhuaweicloud.com", AK: "ak"}, "SK"},
		{"negative timeout", koogallery.OpenAPIConfig{BaseURL: "https://mkt.myhuaweicloud.com", AK: "ak", SK: "sk", Timeout: -1}, "Timeout"},
		{"insecure client", koogallery.OpenAPIConfig{BaseURL: "https://mkt.myhuaweicloud.com", AK: "ak", SK: "sk", HTTPClient: insecure}, "InsecureSkipVerify"},
		{"insecure client, https fallback", koogallery.OpenAPIConfig{BaseURL: "http://127.0.0.1:1", FallbackURL: "https://mkt.myhuaweicloud.cn", AK: "ak", SK: "sk", HTTPClient: insecure}, "InsecureSkipVerify"},
		{"insecure client, plain http", koogallery.OpenAPIConfig{BaseURL: "http://127.0.0.1:1", AK: "ak", SK: "sk", HTTPClient: insecure}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := koogallery.NewOpenAPIClient(tt.cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), "secret-value-1")
		})
	}

	cfg := koogallery.OpenAPIConfig{BaseURL: "https://mkt.myhuaweicloud.com", AK: "ak", SK: "secret-value-1"}
	require.NotContains(t, cfg.String(), "secret-value-1")
	c, err := koogallery.NewOpenAPIClient(cfg)
	require.NoError(t, err)
	require.NotContains(t, c.String(), "secret-value-1")
}

// verifier is a server that records VerifyAKSK's verdict on each request.
type verifier struct {
	ak, sk string
	now    func() time.Time

	mu    sync.Mutex
	errs  []error
	paths []string
}

func (v *verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := koogallery.VerifyAKSK(r, body, v.ak, v.sk, v.now(), time.Minute)
	v.mu.Lock()
	v.errs = append(v.errs, err)
	v.paths = append(v.paths, r.URL.Path)
	v.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"resultCode":"MKT.0154","resultMsg":"illegal token"}`)
		return
	}
	_, _ = io.WriteString(w, `{"resultCode":"MKT.0000","resultMsg":"success","orderInfo":{"orderId":"O1","orderType":"NEW","orderLine":[]}}`)
}

func (v *verifier) lastPath() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.paths[len(v.paths)-1]
}

func (v *verifier) last() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.errs[len(v.errs)-1]
}

// tamperTransport changes a request after the client signed it.
type tamperTransport struct{ tamper func(*http.Request) }

func (t tamperTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.tamper != nil {
		t.tamper(r)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestVerifyAKSKQueryOrder(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(*http.Request)
		ak      string
		skew    time.Duration // server clock minus real time
		wantErr string
	}{
		{name: "untouched"},
		{name: "tampered query", tamper: func(r *http.Request) { r.URL.RawQuery = "orderId=O2" }, wantErr: "signature mismatch"},
		{name: "added query parameter", tamper: func(r *http.Request) { r.URL.RawQuery += "&orderLineId=O1-000002" }, wantErr: "signature mismatch"},
		{name: "tampered path", tamper: func(r *http.Request) { r.URL.Path = strings.Replace(r.URL.Path, "/order/query", "/order/qvery", 1) }, wantErr: "signature mismatch"},
		{name: "tampered method", tamper: func(r *http.Request) { r.Method = http.MethodDelete }, wantErr: "signature mismatch"},
		{name: "tampered host", tamper: func(r *http.Request) { r.Host = "mkt.example.invalid" }, wantErr: "signature mismatch"},
		{name: "other fresh date", tamper: func(r *http.Request) {
			signed, err := time.Parse(koogallery.LayoutOpenAPI, r.Header.Get("X-Sdk-Date"))
			if err == nil {
				r.Header.Set("X-Sdk-Date", signed.Add(-time.Second).Format(koogallery.LayoutOpenAPI))
			}
		}, wantErr: "signature mismatch"},
		{name: "malformed date", tamper: func(r *http.Request) { r.Header.Set("X-Sdk-Date", "2024-01-01T00:00:00Z") }, wantErr: "X-Sdk-Date"},
		{name: "no authorization", tamper: func(r *http.Request) { r.Header.Del("Authorization") }, wantErr: "missing Authorization"},
		{name: "host not signed", tamper: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=host;x-sdk-date", "SignedHeaders=x-sdk-date", 1))
		}, wantErr: "host and x-sdk-date"},
		{name: "stale date", skew: 20 * time.Minute, wantErr: "X-Sdk-Date"},
		{name: "date from the future", skew: -20 * time.Minute, wantErr: "X-Sdk-Date"},
		{name: "wrong AK", ak: "OTHERAK", wantErr: "unknown access key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ak := testAK
			if tt.ak != "" {
				ak = tt.ak
			}
			v := &verifier{ak: ak, sk: testSK, now: func() time.Time { return time.Now().Add(tt.skew) }}
			srv := httptest.NewServer(v)
			t.Cleanup(srv.Close)
			c := newClient(t, koogallery.OpenAPIConfig{BaseURL: srv.URL,
				HTTPClient: &http.Client{Transport: tamperTransport{tamper: tt.tamper}}})
			_, qerr := c.QueryOrder(t.Context(), "O1", "O1-000001")
			err := v.last()
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, qerr)
				return
			}
			require.ErrorIs(t, err, koogallery.ErrAKSKInvalid)
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), testSK)
			require.Error(t, qerr)
		})
	}
}

// sdkRequest signs and converts a request with the SDK directly, the way a
// usage push with a body will be sent.
func sdkRequest(t *testing.T, endpoint, method, path, contentType, body string) *http.Request {
	t.Helper()
	host := strings.TrimPrefix(endpoint, "http://")
	r := request.NewHttpRequestBuilder().WithEndpoint(endpoint).WithPath(path).WithMethod(method).
		AddHeaderParam("Content-Type", contentType).
		AddHeaderParam("Host", host).
		AddHeaderParam("ts", "1700000000000").
		AddQueryParam("a", reflect.ValueOf("1")).
		WithBody("", body).
		Build()
	h, err := signer.Sign(r, testAK, testSK)
	require.NoError(t, err)
	for k, v := range h {
		r.AddHeaderParam(k, v)
	}
	req, err := r.ConvertRequest()
	require.NoError(t, err)
	return req.WithContext(t.Context())
}

func TestVerifyAKSKBody(t *testing.T) {
	v := &verifier{ak: testAK, sk: testSK, now: time.Now}
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	body := `{"usage_records":[{"instance_id":"i-1","usage_value":1.5}]}`

	send := func(req *http.Request) {
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
	}

	send(sdkRequest(t, srv.URL, http.MethodPost, "/api/mkp-openapi-public/global/v1/isv/usage-data", "application/json;charset=UTF-8", body))
	require.NoError(t, v.last())

	req := sdkRequest(t, srv.URL, http.MethodPost, "/api/mkp-openapi-public/global/v1/isv/usage-data", "application/json;charset=UTF-8", body)
	tampered := strings.Replace(body, "1.5", "9.5", 1)
	req.Body, req.ContentLength = io.NopCloser(strings.NewReader(tampered)), int64(len(tampered))
	send(req)
	require.ErrorContains(t, v.last(), "signature mismatch")

	req = sdkRequest(t, srv.URL, http.MethodPost, "/api/mkp-openapi-public/global/v1/isv/usage-data", "application/json;charset=UTF-8", body)
	req.Header.Set("ts", "1700000000001") // a signed extra header
	send(req)
	require.ErrorContains(t, v.last(), "signature mismatch")

	// A non-JSON Content-Type makes the SDK sign UNSIGNED-PAYLOAD, which
	// would leave the body unprotected.
	send(sdkRequest(t, srv.URL, http.MethodPost, "/x", "text/plain", body))
	require.ErrorContains(t, v.last(), "unsigned payloads are refused")
}

func TestOpenAPIErrorMessage(t *testing.T) {
	err := &koogallery.OpenAPIError{HTTPStatus: 401, Code: "MKT.0154", Message: "illegal token"}
	require.Equal(t, "koogallery open API: HTTP 401 MKT.0154: illegal token", err.Error())
	require.True(t, errors.Is(error(&koogallery.TransportError{Host: "h", Err: context.DeadlineExceeded}), context.DeadlineExceeded))
}

// TestVerifyAKSKPublicVector is the APIG vector of a public Ruby gem
// (§10): it signs Content-Type and x-stage, which the official
// Go SDK never does, and the gateway accepts it; so must the emulator.
func TestVerifyAKSKPublicVector(t *testing.T) {
	const signature = "77595ad624b6e4e49990b8c4e84bf1c287457fca61069c4e60b9b6765b52053d"
	signedAt := time.Date(2024, 3, 17, 14, 42, 37, 0, time.UTC)
	build := func(signedHeaders, sig string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "https://mkt.myhuaweicloud.com/api/mkp-openapi-public/global/v1/license/activate", nil)
		r.Header.Set("X-Stage", "RELEASE")
		r.Header.Set("X-Sdk-Date", "20240317T144237Z")
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=test, SignedHeaders="+signedHeaders+", Signature="+sig)
		return r
	}
	require.NoError(t, koogallery.VerifyAKSK(build("content-type;host;x-sdk-date;x-stage", signature), nil, "test", "123", signedAt, 0))
	require.NoError(t, koogallery.VerifyAKSK(build("content-type;host;x-sdk-date;x-stage", strings.ToUpper(signature)), nil, "test", "123", signedAt, 0))

	tests := []struct {
		name    string
		tamper  func(*http.Request) []byte
		wantErr string
	}{
		{"content type changed", func(r *http.Request) []byte { r.Header.Set("Content-Type", "text/plain"); return nil }, "signature mismatch"},
		{"stage changed", func(r *http.Request) []byte { r.Header.Set("X-Stage", "TEST"); return nil }, "signature mismatch"},
		{"signed header removed", func(r *http.Request) []byte { r.Header.Del("X-Stage"); return nil }, "signed header x-stage is missing"},
		{"body added", func(*http.Request) []byte { return []byte(`{}`) }, "signature mismatch"},
		{"other SK", nil, "signature mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := build("content-type;host;x-sdk-date;x-stage", signature)
			var body []byte
			sk := "123"
			if tc.tamper != nil {
				body = tc.tamper(r)
			} else {
				sk = "124"
			}
			err := koogallery.VerifyAKSK(r, body, "test", sk, signedAt, 0)
			require.ErrorIs(t, err, koogallery.ErrAKSKInvalid)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	for list, wantErr := range map[string]string{
		"content-type;x-sdk-date;x-stage":           "host and x-sdk-date",
		"content-type;host;x-stage":                 "host and x-sdk-date",
		"content-type;host;host;x-sdk-date;x-stage": "distinct names",
		"content-type;;host;x-sdk-date":             "distinct names",
		"authorization;host;x-sdk-date":             "names authorization",
		"host;x-sdk-date":                           "signature mismatch", // fewer headers than were signed
	} {
		err := koogallery.VerifyAKSK(build(list, signature), nil, "test", "123", signedAt, 0)
		require.ErrorContains(t, err, wantErr, list)
	}
}
