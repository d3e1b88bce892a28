package koogallery

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
)

// The merchant→marketplace open API (§6). Requests are signed with the API
// Gateway AK/SK scheme by the official Huawei Cloud SDK signer, so the
// canonicalisation quirks (trailing '/' on the path, unsigned Content-Type,
// strict percent-encoding) are exactly the gateway's and not a re-implementation.

// Open-API paths (§6.1, §6.2).
const (
	// QueryOrderPath is the Query Order endpoint (§6.1).
	QueryOrderPath = "/api/mkp-openapi-public/global/v1/order/query"
)

// Open-API result codes (§6.1, §6.3). They travel in resultCode (Query
// Order) or error_code (usage push, gateway errors).
const (
	OpenAPISuccess          = "MKT.0000" // success
	OpenAPIInternalError    = "MKT.0999" // other internal error: retry
	OpenAPIParamCheckFailed = "MKT.0100" // input validation failed; the mock also answers it for an unknown order
	OpenAPIInvalidParam     = "MKT.0101" // undefined, extra or missing parameters
	OpenAPIInvalidBodySign  = "MKT.0102" // body signature check failed
	OpenAPIRequestError     = "MKT.0199" // request parameter error, e.g. a required one is missing
	OpenAPIIllegalOperation = "MKT.0150" // e.g. the instance is not this ISV's product
	OpenAPINoAuthority      = "MKT.0151" // the token is not an ISV role
	OpenAPIIllegalToken     = "MKT.0154" // AK/SK signature rejected
	OpenAPIRateLimited      = "MKT.0250" // HTTP 406, access frequency over the limit: retry later
	OpenAPIInstanceNotFound = "MKT.9001" // usage push: instance ID not found
	OpenAPIInvalidUsage     = "MKT.9002" // usage push: invalid usage entities
	OpenAPITooManyRecords   = "MKT.9003" // usage push: more than 1000 records
	OpenAPIRecordTooOld     = "MKT.9004" // usage push: beginTime older than 21 days
)

const (
	// DefaultOpenAPITimeout bounds one attempt (request and response body)
	// when OpenAPIConfig.Timeout is zero.
	DefaultOpenAPITimeout = 10 * time.Second
	// DefaultAKSKMaxSkew is the clock skew VerifyAKSK allows when given a
	// non-positive maxSkew; it is the API Gateway's documented 15 minutes.
	DefaultAKSKMaxSkew = 15 * time.Minute

	// openAPIContentType is the documented Content-Type of every call (§6.0).
	// It contains "application/json", which makes the SDK signer hash the
	// body instead of marking it UNSIGNED-PAYLOAD.
	openAPIContentType = "application/json;charset=UTF-8"
	// openAPIMaxResponse bounds how much of an answer is read, so a broken or
	// hostile peer cannot exhaust memory. Query Order answers are a few KiB.
	openAPIMaxResponse = 4 << 20
	// akskAlgorithm is the only scheme the SDK's default signer produces.
	akskAlgorithm = "SDK-HMAC-SHA256"
	// akskContentSHA256 lets a signer replace the body hash; VerifyAKSK
	// accepts it only when it equals the real hash (see there).
	akskContentSHA256 = "X-Sdk-Content-Sha256"
)

// OpenAPIConfig configures an OpenAPIClient. Its String method hides the
// keys, so it may be logged.
type OpenAPIConfig struct {
	// BaseURL is the open-API host, e.g. https://mkt.myhuaweicloud.com
	// (China), https://mkt-intl.myhuaweicloud.com, https://mkt.myhuaweicloud.eu
	// (§6.0). A path prefix is kept (useful for a local emulator); plain http
	// is accepted only so that local mocks work.
	BaseURL string
	// FallbackURL is optional, e.g. https://mkt.myhuaweicloud.cn. It is
	// tried when BaseURL cannot be reached at all (a network error, not an
	// HTTP answer), as the docs advise for the China site.
	FallbackURL string
	// AK and SK are the merchant's API-gateway access key pair.
	AK, SK string
	// HTTPClient is optional. A client whose transport skips certificate
	// verification is refused for https URLs (§6.0: strict validation).
	HTTPClient *http.Client
	// Timeout bounds each attempt; zero means DefaultOpenAPITimeout.
	Timeout time.Duration
}

// String describes the configuration without the keys.
func (c OpenAPIConfig) String() string {
	set := func(v string) string {
		if v == "" {
			return "[empty]"
		}
		return "[set]"
	}
	return fmt.Sprintf("OpenAPIConfig{BaseURL:%q FallbackURL:%q AK:%s SK:%s Timeout:%s}",
		c.BaseURL, c.FallbackURL, set(c.AK), set(c.SK), c.Timeout)
}

// GoString hides the keys from %#v too.
func (c OpenAPIConfig) GoString() string { return c.String() }

// OpenAPIClient calls the KooGallery open API. It is safe for concurrent use.
type OpenAPIClient struct {
	bases   []*url.URL // primary, then the optional fallback
	ak, sk  string
	hc      *http.Client
	timeout time.Duration
	now     func() time.Time // X-Sdk-Date source; tests move it
}

// String describes the client without its keys, so that logging it by
// accident does not leak the SK.
func (c *OpenAPIClient) String() string {
	hosts := make([]string, len(c.bases))
	for i, b := range c.bases {
		hosts[i] = b.Host
	}
	return "OpenAPIClient{" + strings.Join(hosts, ",") + "}"
}

// NewOpenAPIClient validates cfg and returns a client. Errors name the
// offending setting, never a key's value.
func NewOpenAPIClient(cfg OpenAPIConfig) (*OpenAPIClient, error) {
	base, err := parseOpenAPIBase("BaseURL", cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	bases := []*url.URL{base}
	if strings.TrimSpace(cfg.FallbackURL) != "" {
		fb, err := parseOpenAPIBase("FallbackURL", cfg.FallbackURL)
		if err != nil {
			return nil, err
		}
		bases = append(bases, fb)
	}
	if cfg.AK == "" {
		return nil, errors.New("koogallery open API: OpenAPIConfig.AK is required")
	}
	if cfg.SK == "" {
		return nil, errors.New("koogallery open API: OpenAPIConfig.SK is required")
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("koogallery open API: OpenAPIConfig.Timeout must not be negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultOpenAPITimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultOpenAPIHTTPClient()
	} else if skipsCertificateCheck(hc) && slices.ContainsFunc(bases, func(u *url.URL) bool { return u.Scheme == "https" }) {
		return nil, errors.New("koogallery open API: OpenAPIConfig.HTTPClient skips TLS certificate verification (InsecureSkipVerify); the marketplace certificate must be validated")
	}
	return &OpenAPIClient{bases: bases, ak: cfg.AK, sk: cfg.SK, hc: hc, timeout: timeout, now: time.Now}, nil
}

func parseOpenAPIBase(setting, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	// The URL itself is not echoed: a mistyped value may hold credentials.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("koogallery open API: OpenAPIConfig.%s must be an absolute http or https URL", setting)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("koogallery open API: OpenAPIConfig.%s must not contain user info, a query or a fragment", setting)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// defaultOpenAPIHTTPClient verifies certificates (never disabled), requires
// TLS 1.2 or newer (TLS 1.2 stays enabled because the FAQ names it, §7.15)
// and does not follow redirects: a redirect would replay the signed request
// to a URL it was not signed for, and the gateway has no reason to send one.
func defaultOpenAPIHTTPClient() *http.Client {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	// A fresh config also discards anything a program set on the shared
	// default transport.
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// skipsCertificateCheck reports a transport that is known to skip
// verification. Only *http.Transport can be inspected; other round-trippers
// are the caller's responsibility.
func skipsCertificateCheck(hc *http.Client) bool {
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	return ok && t.TLSClientConfig != nil && t.TLSClientConfig.InsecureSkipVerify
}

// OpenAPIError is an HTTP answer from the open API (or its gateway) that is
// not a success. Message is the marketplace's text, never request headers.
type OpenAPIError struct {
	HTTPStatus int    // 0 when no answer was received
	Code       string // resultCode or error_code, e.g. "MKT.0154", "APIGW.0301"; may be empty
	Message    string // resultMsg or error_msg, or a short excerpt of an unexpected body
}

// Error implements error.
func (e *OpenAPIError) Error() string {
	var b strings.Builder
	b.WriteString("koogallery open API: ")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
	} else {
		b.WriteString("no answer")
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Retryable reports whether the same call may succeed later: network
// failures, rate limiting (MKT.0250, HTTP 406 or 429), the marketplace's internal
// error MKT.0999, gateway/proxy unavailability (502/503/504, 408) and other
// 5xx answers without a documented permanent code. The documented parameter,
// signature, authority and usage-data codes are permanent even though some
// arrive with HTTP 500 (§6.3), and so is every other 4xx.
func (e *OpenAPIError) Retryable() bool {
	switch e.Code {
	case OpenAPIRateLimited, OpenAPIInternalError:
		return true
	case OpenAPIParamCheckFailed, OpenAPIInvalidParam, OpenAPIInvalidBodySign, OpenAPIRequestError,
		OpenAPIIllegalOperation, OpenAPINoAuthority, OpenAPIIllegalToken,
		OpenAPIInstanceNotFound, OpenAPIInvalidUsage, OpenAPITooManyRecords, OpenAPIRecordTooOld:
		return false
	}
	switch {
	case e.HTTPStatus == 0:
		return true
	case e.HTTPStatus == http.StatusRequestTimeout, e.HTTPStatus == http.StatusTooManyRequests,
		e.HTTPStatus == http.StatusNotAcceptable: // 406 is the documented rate-limit status (MKT.0250)
		return true
	case e.HTTPStatus >= 500:
		// Covers 502/503/504, APIGW.* gateway failures and unknown MKT codes.
		return true
	default:
		return false
	}
}

// TransportError means no HTTP answer was received from any configured host
// (connection refused, DNS, TLS handshake or certificate failure, timeout,
// connection reset while reading). It is always retryable.
type TransportError struct {
	Host string // the host(s) tried
	Err  error
}

// Error implements error.
func (e *TransportError) Error() string {
	return fmt.Sprintf("koogallery open API %s unreachable: %v", e.Host, e.Err)
}

// Unwrap returns the network error.
func (e *TransportError) Unwrap() error { return e.Err }

// Retryable is always true: the marketplace may be reachable later.
func (e *TransportError) Retryable() bool { return true }

// IsRetryable reports whether an error from OpenAPIClient is worth retrying:
// err, or an error it wraps, has a Retryable method that returns true.
// Context cancellation and local errors are not retryable.
func IsRetryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

// QueryOrder fetches an order (§6.1). orderLineID may be empty. On success
// (HTTP 200, MKT.0000) the result carries the raw body in Raw; any other
// answer is an *OpenAPIError, and an unreachable marketplace a
// *TransportError, both wrapped and both classified by IsRetryable.
func (c *OpenAPIClient) QueryOrder(ctx context.Context, orderID, orderLineID string) (*QueryOrderResult, error) {
	if orderID == "" {
		return nil, errors.New("query order: orderId is required")
	}
	q := url.Values{"orderId": {orderID}}
	if orderLineID != "" {
		q.Set("orderLineId", orderLineID)
	}
	status, body, err := c.do(ctx, http.MethodGet, QueryOrderPath, q, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("query order %s: %w", orderID, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("query order %s: %w", orderID, parseOpenAPIError(status, body))
	}
	var res QueryOrderResult
	if err := json.Unmarshal(body, &res); err != nil {
		// A 200 that is not the documented JSON will not become valid by
		// asking again; treat it as permanent and keep an excerpt.
		return nil, fmt.Errorf("query order %s: %w", orderID,
			&OpenAPIError{HTTPStatus: status, Message: "undecodable answer: " + bodyExcerpt(body)})
	}
	if res.ResultCode != OpenAPISuccess {
		return nil, fmt.Errorf("query order %s: %w", orderID,
			&OpenAPIError{HTTPStatus: status, Code: res.ResultCode, Message: res.ResultMsg})
	}
	if res.OrderInfo == nil {
		return nil, fmt.Errorf("query order %s: %w", orderID,
			&OpenAPIError{HTTPStatus: status, Code: res.ResultCode, Message: "answer has no orderInfo"})
	}
	res.Raw = body
	return &res, nil
}

// parseOpenAPIError reads either body style: Query Order's
// resultCode/resultMsg or the usage push's and gateway's error_code/error_msg.
func parseOpenAPIError(status int, body []byte) *OpenAPIError {
	var e struct {
		ResultCode string `json:"resultCode"`
		ResultMsg  string `json:"resultMsg"`
		ErrorCode  string `json:"error_code"`
		ErrorMsg   string `json:"error_msg"`
	}
	oe := &OpenAPIError{HTTPStatus: status}
	if json.Unmarshal(body, &e) == nil {
		switch {
		case e.ResultCode != "":
			oe.Code, oe.Message = e.ResultCode, e.ResultMsg
			return oe
		case e.ErrorCode != "":
			oe.Code, oe.Message = e.ErrorCode, e.ErrorMsg
			return oe
		}
	}
	if len(body) > 0 {
		oe.Message = bodyExcerpt(body)
	} else {
		oe.Message = http.StatusText(status)
	}
	return oe
}

// bodyExcerpt keeps error messages short and printable when a proxy answers
// with an HTML page.
func bodyExcerpt(body []byte) string {
	const maxExcerpt = 200
	s := strings.ToValidUTF8(string(body), "?")
	if len(s) > maxExcerpt {
		s = s[:maxExcerpt]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.Join(strings.Fields(s), " ")
}

// do sends one signed open-API call and returns the HTTP status and body,
// whatever the status. path is relative to the base URL; body is signed
// byte-for-byte (nil for none); extraHeaders are added before signing, so
// they are signed too, except Content-Type and names containing '_', which the
// SDK signer never signs. When the primary host cannot be reached and a
// fallback is configured, the call is re-signed for and sent to the fallback.
// The error is a *TransportError when no host answered.
func (c *OpenAPIClient) do(ctx context.Context, method, path string, query url.Values, body []byte, extraHeaders map[string]string) (int, []byte, error) {
	var failures []*TransportError
	for _, base := range c.bases {
		status, respBody, err := c.attempt(ctx, base, method, path, query, body, extraHeaders)
		var te *TransportError
		if err == nil || !errors.As(err, &te) {
			return status, respBody, err
		}
		if ctx.Err() != nil {
			// The caller gave up; the fallback would fail the same way.
			return 0, nil, fmt.Errorf("koogallery open API %s %s: %w", method, path, context.Cause(ctx))
		}
		failures = append(failures, te)
	}
	if len(failures) == 1 {
		return 0, nil, failures[0]
	}
	hosts := make([]string, len(failures))
	errs := make([]error, len(failures))
	for i, f := range failures {
		hosts[i], errs[i] = f.Host, f.Err
	}
	return 0, nil, &TransportError{Host: strings.Join(hosts, ", then "), Err: errors.Join(errs...)}
}

func (c *OpenAPIClient) attempt(ctx context.Context, base *url.URL, method, path string, query url.Values, body []byte, extraHeaders map[string]string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newSignedRequest(ctx, base, method, path, query, body, extraHeaders)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, &TransportError{Host: base.Host, Err: err}
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, openAPIMaxResponse+1))
	if err != nil {
		return 0, nil, &TransportError{Host: base.Host, Err: fmt.Errorf("read answer: %w", err)}
	}
	if len(respBody) > openAPIMaxResponse {
		return 0, nil, &OpenAPIError{HTTPStatus: resp.StatusCode, Message: "answer larger than 4 MiB"}
	}
	return resp.StatusCode, respBody, nil
}

// newSignedRequest builds the call as an SDK DefaultHttpRequest, signs it
// with the SDK signer and lets the SDK convert it, so that what is sent is
// exactly what was signed (query encoding included).
func (c *OpenAPIClient) newSignedRequest(ctx context.Context, base *url.URL, method, path string, query url.Values, body []byte, extraHeaders map[string]string) (*http.Request, error) {
	b := request.NewHttpRequestBuilder().
		WithEndpoint(base.Scheme+"://"+base.Host).
		WithPath(base.Path+path).
		WithMethod(method).
		AddHeaderParam("Content-Type", openAPIContentType).
		AddHeaderParam("Host", base.Host).
		AddHeaderParam(signer.HeaderXDate, c.now().UTC().Format(signer.BasicDateFormat))
	for k, v := range extraHeaders {
		if k != sendContentType {
			b.AddHeaderParam(k, v)
		}
	}
	addSDKQuery(b, query)
	if body != nil {
		// A string body is signed and sent byte-for-byte; anything else would
		// be re-encoded by the SDK with a trailing newline.
		b.WithBody("", string(body))
	}
	sreq := b.Build()
	signed, err := signer.Sign(sreq, c.ak, c.sk)
	if err != nil {
		// The SDK's messages name the missing key, never its value.
		return nil, fmt.Errorf("sign open API request: %w", err)
	}
	for k, v := range signed {
		sreq.AddHeaderParam(k, v)
	}
	req, err := sreq.ConvertRequest()
	if err != nil {
		return nil, fmt.Errorf("build open API request: %w", err)
	}
	if ct, ok := extraHeaders[sendContentType]; ok {
		// Content-Type is never among the signed headers; the JSON type
		// above only made the signer hash the body (see sendContentType).
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Del("Host") // carried by req.Host; net/http ignores the header anyway
	req.Host = base.Host
	return req.WithContext(ctx), nil
}

// sendContentType, as an extra header of do, is the Content-Type sent
// instead of the JSON one. The SDK signer marks every body that is not JSON
// UNSIGNED-PAYLOAD; a licence upload (multipart, §13.3) is signed with its
// body's SHA-256 like every other call, so it is signed as JSON, and the
// real type, which is not a signed header, replaces it afterwards.
const sendContentType = "\x00send-content-type"

// addSDKQuery adds query parameters the way the SDK's generated clients do:
// as reflect.Values (plain strings are silently skipped by both the signer
// and ConvertRequest), one string or a slice for repeated keys.
func addSDKQuery(b *request.HttpRequestBuilder, query url.Values) {
	for k, vs := range query {
		if len(vs) == 1 {
			b.AddQueryParam(k, reflect.ValueOf(vs[0]))
		} else {
			b.AddQueryParam(k, reflect.ValueOf(slices.Clone(vs)))
		}
	}
}
