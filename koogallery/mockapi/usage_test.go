package mockapi_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
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

const testAccessKey = "mockTestBodyAccessKey0001"

// usageSetup starts a mock that accepts usage pushes signed with
// testAccessKey, on the real clock, and a client for it. It returns the
// mock's default in-memory sink and the last request the mock received.
func usageSetup(t *testing.T, cfg mockapi.Config) (*mockapi.Server, *httptest.Server, *koogallery.OpenAPIClient, *mockapi.MemoryUsage, func() capturedRequest) {
	t.Helper()
	cfg.AK, cfg.SK = testAK, testSK
	if cfg.AccessKey == "" {
		cfg.AccessKey = testAccessKey
	}
	m := mockapi.New(cfg)
	var (
		mu   sync.Mutex
		last capturedRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		mu.Lock()
		last = capturedRequest{header: r.Header.Clone(), body: body}
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		m.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: testSK})
	require.NoError(t, err)
	mem, _ := m.Usage().(*mockapi.MemoryUsage)
	return m, srv, c, mem, func() capturedRequest {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
}

type capturedRequest struct {
	header http.Header
	body   []byte
}

// baseHour is fixed once, so that records built by different calls of
// record agree on their periods even if a test runs across an hour boundary.
var baseHour = time.Now().UTC().Truncate(time.Hour)

// record is a valid record for the hour that began hoursAgo hours before
// baseHour.
func record(instance, sn, value string, hoursAgo int) koogallery.UsageRecord {
	now := baseHour
	begin := now.Add(-time.Duration(hoursAgo) * time.Hour)
	v, err := koogallery.ParseUsageValue(value)
	if err != nil {
		panic(err)
	}
	return koogallery.UsageRecord{
		InstanceID: instance,
		RecordTime: koogallery.FormatUsageTime(now),
		BeginTime:  koogallery.FormatUsageTime(begin),
		EndTime:    koogallery.FormatUsageTime(begin.Add(time.Hour)),
		UsageValue: v,
		MeteringSN: sn,
	}
}

func requireOpenAPIError(t *testing.T, err error, status int, code string, retryable bool) {
	t.Helper()
	var oe *koogallery.OpenAPIError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, status, oe.HTTPStatus)
	require.Equal(t, code, oe.Code)
	require.Equal(t, retryable, koogallery.IsRetryable(err))
	require.NotContains(t, err.Error(), testAccessKey)
	require.NotContains(t, err.Error(), testSK)
}

func TestPushUsage(t *testing.T) {
	m, _, c, mem, last := usageSetup(t, mockapi.Config{})
	require.NotNil(t, mem, "a nil Config.Usage means a MemoryUsage")

	batch := []koogallery.UsageRecord{
		record("inst-1", "sn-1", "0.1", 2),
		record("inst-1", "sn-2", "0.2", 1),
		record("inst-2", "sn-3", "12.3456", 1),
	}
	batch[2].RelatePkgInstance = "pkg-1"
	require.NoError(t, c.PushUsage(t.Context(), testAccessKey, batch))
	require.Equal(t, batch, mem.Records())
	require.Equal(t, map[string]string{"inst-1": "0.3", "inst-2": "12.3456"}, mem.Totals())
	require.Equal(t, 1, m.UsageCalls())

	// What went over the wire: the canonical body, the documented headers,
	// all covered by the AK/SK signature.
	req := last()
	canonical, err := koogallery.CanonicalJSON(req.body)
	require.NoError(t, err)
	require.Equal(t, string(canonical), string(req.body))
	require.True(t, strings.HasPrefix(string(req.body), `{"usage_records":[{"begin_time":`), string(req.body))
	require.Contains(t, string(req.body), `"usage_value":0.1}`)
	require.Contains(t, string(req.body), `"relate_pkg_instance":"pkg-1","usage_value":12.3456}`)
	require.Equal(t, 1, strings.Count(string(req.body), "relate_pkg_instance"), "omitted when empty")
	require.Equal(t, "application/json;charset=UTF-8", req.header.Get("Content-Type"))
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}$`), req.header.Get("nonce"))
	ts, err := strconv.ParseInt(req.header.Get("ts"), 10, 64)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), time.UnixMilli(ts), time.Minute)
	require.Contains(t, req.header.Get("Authorization"), "SignedHeaders=host;nonce;signature;ts;x-sdk-date,")
	form, err := koogallery.VerifyUsageBodySignature(req.header, testAccessKey, req.body, time.Now(), time.Minute)
	require.NoError(t, err)
	require.Equal(t, koogallery.UsageSignedRaw, form, "the signature covers the bytes sent")
	require.Equal(t, []koogallery.UsageSignatureForm{koogallery.UsageSignedRaw}, mem.SignedForms())
	require.NotContains(t, req.header.Get("Authorization"), testAccessKey)

	t.Run("resent batch stores nothing new", func(t *testing.T) {
		require.NoError(t, c.PushUsage(t.Context(), testAccessKey, batch))
		require.Equal(t, batch, mem.Records())
		require.Equal(t, map[string]string{"inst-1": "0.3", "inst-2": "12.3456"}, mem.Totals())
		require.Equal(t, 2, m.UsageCalls())
	})

	t.Run("same instance and period under a new sn is ignored", func(t *testing.T) {
		dup := record("inst-1", "sn-new", "5", 1)
		require.Equal(t, batch[1].BeginTime, dup.BeginTime)
		require.NoError(t, c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{dup}))
		require.Equal(t, batch, mem.Records())
	})

	t.Run("same sn for another period is ignored", func(t *testing.T) {
		dup := record("inst-1", "sn-1", "5", 3)
		require.NoError(t, c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{dup}))
		require.Equal(t, batch, mem.Records())
	})

	t.Run("a new record after duplicates is stored", func(t *testing.T) {
		fresh := record("inst-1", "sn-4", "0.0001", 3)
		require.NoError(t, c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{batch[0], fresh}))
		require.Equal(t, append(batch[:3:3], fresh), mem.Records())
		require.Equal(t, "0.3001", mem.Totals()["inst-1"])
	})
}

func TestPushUsageClientRefusals(t *testing.T) {
	m, _, c, _, _ := usageSetup(t, mockapi.Config{})
	tooMany := make([]koogallery.UsageRecord, koogallery.MaxUsageRecords+1)
	for i := range tooMany {
		tooMany[i] = record("inst-1", fmt.Sprintf("sn-%d", i), "1", 1)
	}
	stale := record("inst-1", "sn-old", "1", 0)
	stale.BeginTime = koogallery.FormatUsageTime(time.Now().Add(-koogallery.UsageMaxAge - time.Hour))

	for _, tt := range []struct {
		name     string
		key      string
		records  []koogallery.UsageRecord
		wantCode string
	}{
		{"1001 records", testAccessKey, tooMany, koogallery.OpenAPITooManyRecords},
		{"no records", testAccessKey, nil, koogallery.OpenAPIParamCheckFailed},
		{"stale begin", testAccessKey, []koogallery.UsageRecord{stale}, koogallery.OpenAPIRecordTooOld},
		{"five decimals", testAccessKey, []koogallery.UsageRecord{{InstanceID: "inst-1", MeteringSN: "x",
			RecordTime: stale.RecordTime, BeginTime: stale.RecordTime, EndTime: stale.RecordTime,
			UsageValue: mustValue(t, "1.23456")}}, koogallery.OpenAPIParamCheckFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := c.PushUsage(t.Context(), tt.key, tt.records)
			var ue *koogallery.UsageRecordError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, tt.wantCode, ue.Code)
			require.False(t, koogallery.IsRetryable(err))
		})
	}
	require.Error(t, c.PushUsage(t.Context(), "", []koogallery.UsageRecord{record("inst-1", "sn", "1", 1)}))
	require.Equal(t, 0, m.UsageCalls(), "nothing was sent")
}

func mustValue(t *testing.T, s string) koogallery.UsageValue {
	t.Helper()
	var v koogallery.UsageValue
	require.NoError(t, json.Unmarshal([]byte(s), &v))
	return v
}

func TestPushUsageRejections(t *testing.T) {
	m, srv, c, mem, _ := usageSetup(t, mockapi.Config{})

	t.Run("wrong SK", func(t *testing.T) {
		bad, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: "wrong" + testSK})
		require.NoError(t, err)
		err = bad.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{record("inst-1", "sn-1", "1", 1)})
		requireOpenAPIError(t, err, http.StatusUnauthorized, koogallery.OpenAPIIllegalToken, false)
	})

	t.Run("wrong body-signing key", func(t *testing.T) {
		err := c.PushUsage(t.Context(), "wrong"+testAccessKey, []koogallery.UsageRecord{record("inst-1", "sn-1", "1", 1)})
		requireOpenAPIError(t, err, http.StatusBadRequest, koogallery.OpenAPIInvalidBodySign, false)
		require.NotContains(t, err.Error(), "wrong"+testAccessKey)
	})
	require.Equal(t, 0, m.UsageCalls(), "badly signed pushes are not counted")

	t.Run("unknown instance refuses the whole batch", func(t *testing.T) {
		mem.KnownInstances("inst-1")
		t.Cleanup(func() { mem.KnownInstances("inst-2") })
		err := c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{
			record("inst-1", "sn-1", "1", 1), record("inst-2", "sn-2", "1", 1),
		})
		requireOpenAPIError(t, err, http.StatusInternalServerError, koogallery.OpenAPIInstanceNotFound, false)
		require.Contains(t, err.Error(), "usage record 1")
		require.Empty(t, mem.Records())
	})

	t.Run("failure switch", func(t *testing.T) {
		m.FailUsage(1, http.StatusServiceUnavailable, koogallery.OpenAPIInternalError)
		batch := []koogallery.UsageRecord{record("inst-1", "sn-1", "1", 1)}
		err := c.PushUsage(t.Context(), testAccessKey, batch)
		requireOpenAPIError(t, err, http.StatusServiceUnavailable, koogallery.OpenAPIInternalError, true)
		require.Empty(t, mem.Records())
		require.NoError(t, c.PushUsage(t.Context(), testAccessKey, batch))
		require.Equal(t, batch, mem.Records())

		m.FailUsage(2, http.StatusBadGateway, "APIGW.0202")
		m.FailUsage(0, 0, "") // disarmed
		require.NoError(t, c.PushUsage(t.Context(), testAccessKey, batch))
	})
	require.Equal(t, 4, m.UsageCalls())
}

// signedPost signs a usage push with the SDK and the body signature at the
// given time, so tests can send what the client refuses to.
func signedPost(t *testing.T, base string, at time.Time, accessKey string, body []byte) *http.Request {
	t.Helper()
	return signedPostOver(t, base, at, accessKey, body, body)
}

// signedPostOver is signedPost with the body signature computed over
// signed, another text of the body (UsageBodySignature sorts it first; an
// HMAC over the text as given shows a client that signs another form).
func signedPostOver(t *testing.T, base string, at time.Time, accessKey string, body, signed []byte) *http.Request {
	t.Helper()
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	nonce := "0123456789abcdef0123456789abcdef"
	b := request.NewHttpRequestBuilder().WithEndpoint(base).WithPath(koogallery.UsageDataPath).WithMethod(http.MethodPost).
		AddHeaderParam("Content-Type", "application/json;charset=UTF-8").
		AddHeaderParam("Host", strings.TrimPrefix(base, "http://")).
		AddHeaderParam("X-Sdk-Date", at.UTC().Format(koogallery.LayoutOpenAPI)).
		AddHeaderParam("ts", ts).
		AddHeaderParam("nonce", nonce)
	// No key: no signature header. A body that is not JSON cannot be
	// signed; a well-formed dummy lets the mock get as far as the body.
	if accessKey != "" {
		sig, err := koogallery.UsageBodySignature(accessKey, ts, nonce, body)
		if err != nil {
			sig = base64.StdEncoding.EncodeToString(make([]byte, 32))
		}
		if !bytes.Equal(signed, body) {
			mac := hmac.New(sha256.New, []byte(accessKey))
			mac.Write([]byte("ts=" + ts + "&nonce=" + nonce + "&body="))
			mac.Write(signed)
			sig = base64.StdEncoding.EncodeToString(mac.Sum(nil))
		}
		b.AddHeaderParam("signature", sig)
	}
	b.WithBody("", string(body))
	r := b.Build()
	h, err := signer.Sign(r, testAK, testSK)
	require.NoError(t, err)
	for k, v := range h {
		r.AddHeaderParam(k, v)
	}
	req, err := r.ConvertRequest()
	require.NoError(t, err)
	return req.WithContext(t.Context())
}

func recordsJSON(t *testing.T, records ...koogallery.UsageRecord) string {
	t.Helper()
	b, err := json.Marshal(records)
	require.NoError(t, err)
	return string(b)
}

func TestUsageEndpointAnswers(t *testing.T) {
	m, srv, _, mem, _ := usageSetup(t, mockapi.Config{})
	now := time.Now()
	good := record("inst-1", "sn-1", "1", 1)
	old := record("inst-1", "sn-old", "1", 0)
	old.BeginTime = koogallery.FormatUsageTime(now.Add(-koogallery.UsageMaxAge - time.Minute))
	many := make([]koogallery.UsageRecord, koogallery.MaxUsageRecords+1)
	for i := range many {
		many[i] = record("inst-1", fmt.Sprintf("sn-%d", i), "1", 1)
	}

	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"1001 records", `{"usage_records":` + recordsJSON(t, many...) + `}`, 500, "MKT.9003"},
		{"stale begin", `{"usage_records":` + recordsJSON(t, good, old) + `}`, 500, "MKT.9004"},
		{"five decimals", `{"usage_records":[` + strings.Replace(recordsJSON(t, good)[1:], `"usage_value":1`, `"usage_value":1.23456`, 1) + `}`, 500, "MKT.0100"},
		{"value zero", `{"usage_records":[` + strings.Replace(recordsJSON(t, good)[1:], `"usage_value":1`, `"usage_value":0`, 1) + `}`, 500, "MKT.0100"},
		{"value a string that is no number", `{"usage_records":[` + strings.Replace(recordsJSON(t, good)[1:], `"usage_value":1`, `"usage_value":"one"`, 1) + `}`, 400, "MKT.0101"},
		{"value as an array", `{"usage_records":[` + strings.Replace(recordsJSON(t, good)[1:], `"usage_value":1`, `"usage_value":[1]`, 1) + `}`, 400, "MKT.0101"},
		{"missing metering_sn", `{"usage_records":[` + strings.Replace(recordsJSON(t, good)[1:], `"metering_sn":"sn-1"`, `"metering_sn":""`, 1) + `}`, 500, "MKT.0100"},
		{"empty batch", `{"usage_records":[]}`, 500, "MKT.0100"},
		{"missing usage_records", `{}`, 400, "MKT.0101"},
		{"null usage_records", `{"usage_records":null}`, 400, "MKT.0101"},
		{"unknown top-level field", `{"usage_records":` + recordsJSON(t, good) + `,"product_id":"x"}`, 400, "MKT.0101"},
		{"unknown record field", `{"usage_records":[{"product_id":"x",` + recordsJSON(t, good)[2:] + `}`, 400, "MKT.0101"},
		{"not an object", `[]`, 400, "MKT.0101"},
		{"not JSON", `usage_records=1`, 400, "MKT.0101"},
		{"repeated key", `{"usage_records":[],"usage_records":[]}`, 400, "MKT.0101"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, signedPost(t, srv.URL, now, testAccessKey, []byte(tt.body)))
			require.Equal(t, tt.status, resp.status, string(resp.body))
			var a struct {
				ErrorCode string `json:"error_code"`
				ErrorMsg  string `json:"error_msg"`
			}
			require.NoError(t, json.Unmarshal(resp.body, &a))
			require.Equal(t, tt.code, a.ErrorCode, a.ErrorMsg)
			require.NotEmpty(t, a.ErrorMsg)
		})
	}
	require.Empty(t, mem.Records())

	t.Run("success answer", func(t *testing.T) {
		resp := send(t, signedPost(t, srv.URL, now, testAccessKey, []byte(`{"usage_records":`+recordsJSON(t, good)+`}`)))
		require.Equal(t, http.StatusOK, resp.status)
		require.JSONEq(t, `{"error_code":"MKT.0000","error_msg":"success"}`, string(resp.body))
		require.Len(t, mem.Records(), 1)
	})

	t.Run("body signature", func(t *testing.T) {
		calls := m.UsageCalls()
		body := []byte(`{"usage_records":` + recordsJSON(t, good) + `}`)
		for name, req := range map[string]*http.Request{
			"wrong key":           signedPost(t, srv.URL, now, "other", body),
			"no signature header": signedPost(t, srv.URL, now, "", body),
			"stale ts":            staleTS(t, srv.URL, now, body),
		} {
			resp := send(t, req)
			require.Equal(t, http.StatusBadRequest, resp.status, name)
			require.JSONEq(t, `{"error_code":"MKT.0102","error_msg":"invalid body sign"}`, string(resp.body), name)
		}
		require.Equal(t, calls, m.UsageCalls())
	})

	t.Run("unsigned", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+koogallery.UsageDataPath, strings.NewReader(`{}`))
		require.NoError(t, err)
		resp := send(t, req)
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.JSONEq(t, `{"error_code":"MKT.0154","error_msg":"illegal token"}`, string(resp.body))
	})
}

// staleTS signs a push whose ts header is an hour old while X-Sdk-Date is
// current, so only the body-signature check can refuse it.
func staleTS(t *testing.T, base string, now time.Time, body []byte) *http.Request {
	t.Helper()
	ts := strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10)
	nonce := "fedcba9876543210fedcba9876543210"
	sig, err := koogallery.UsageBodySignature(testAccessKey, ts, nonce, body)
	require.NoError(t, err)
	b := request.NewHttpRequestBuilder().WithEndpoint(base).WithPath(koogallery.UsageDataPath).WithMethod(http.MethodPost).
		AddHeaderParam("Content-Type", "application/json;charset=UTF-8").
		AddHeaderParam("Host", strings.TrimPrefix(base, "http://")).
		AddHeaderParam("X-Sdk-Date", now.UTC().Format(koogallery.LayoutOpenAPI)).
		AddHeaderParam("ts", ts).AddHeaderParam("nonce", nonce).AddHeaderParam("signature", sig)
	b.WithBody("", string(body))
	r := b.Build()
	h, err := signer.Sign(r, testAK, testSK)
	require.NoError(t, err)
	for k, v := range h {
		r.AddHeaderParam(k, v)
	}
	req, err := r.ConvertRequest()
	require.NoError(t, err)
	return req.WithContext(t.Context())
}

func TestUsageNotConfigured(t *testing.T) {
	m := mockapi.New(mockapi.Config{AK: testAK, SK: testSK})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	c, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: testSK})
	require.NoError(t, err)
	err = c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{record("inst-1", "sn-1", "1", 1)})
	requireOpenAPIError(t, err, http.StatusInternalServerError, koogallery.OpenAPIInternalError, true)
	require.Contains(t, err.Error(), "usage push not configured")
	require.Equal(t, 0, m.UsageCalls())
}

// failingSink is a UsageSink whose existence check fails.
type failingSink struct{ *mockapi.MemoryUsage }

func (failingSink) InstanceExists(context.Context, string) (bool, error) {
	return false, errors.New("database down: secret detail")
}

func TestUsageSinkConfigured(t *testing.T) {
	sink := mockapi.NewMemoryUsage()
	m, _, c, mem, _ := usageSetup(t, mockapi.Config{Usage: sink})
	require.Same(t, sink, mem)
	require.NoError(t, c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{record("inst-1", "sn-1", "1", 1)}))
	require.Len(t, sink.Records(), 1)
	require.Equal(t, 1, m.UsageCalls())

	_, _, c, _, _ = usageSetup(t, mockapi.Config{Usage: failingSink{mockapi.NewMemoryUsage()}})
	err := c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{record("inst-1", "sn-1", "1", 1)})
	requireOpenAPIError(t, err, http.StatusInternalServerError, koogallery.OpenAPIInternalError, true)
	require.NotContains(t, err.Error(), "secret detail")
}

func TestPushUsageConcurrentResends(t *testing.T) {
	_, _, c, mem, _ := usageSetup(t, mockapi.Config{})
	batch := []koogallery.UsageRecord{record("inst-1", "sn-1", "0.1", 2), record("inst-1", "sn-2", "0.2", 1)}
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() { errs <- c.PushUsage(t.Context(), testAccessKey, batch) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, batch, mem.Records())
	require.Equal(t, map[string]string{"inst-1": "0.3"}, mem.Totals())
}

func TestMemoryUsage(t *testing.T) {
	mem := mockapi.NewMemoryUsage()
	ok, err := mem.InstanceExists(t.Context(), "anything")
	require.NoError(t, err)
	require.True(t, ok, "every instance exists until some are registered")
	mem.KnownInstances("a", "b")
	for id, want := range map[string]bool{"a": true, "b": true, "c": false} {
		ok, err := mem.InstanceExists(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, want, ok, id)
	}

	r1 := record("a", "sn-1", "0.1", 1)
	r2 := record("a", "sn-2", "0.2", 2)
	r3 := record("a", "sn-1", "9", 3) // same sn: ignored
	r4 := record("a", "sn-4", "9", 1) // same period as r1: ignored
	n, err := mem.Record(t.Context(), []koogallery.UsageRecord{r1, r2, r3, r4}, mockapi.UsagePush{ReceivedAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []koogallery.UsageRecord{r1, r2}, mem.Records())
	require.Equal(t, map[string]string{"a": "0.3"}, mem.Totals())

	// Records returns a copy.
	mem.Records()[0].MeteringSN = "changed"
	require.Equal(t, "sn-1", mem.Records()[0].MeteringSN)

	// A bad value fails the call and stores nothing.
	bad := record("a", "sn-9", "1", 5)
	bad.UsageValue = koogallery.UsageValue{}
	_, err = mem.Record(t.Context(), []koogallery.UsageRecord{record("a", "sn-8", "1", 4), bad}, mockapi.UsagePush{ReceivedAt: time.Now()})
	require.Error(t, err)
	require.Len(t, mem.Records(), 2)

	// Large totals stay exact.
	big := record("b", "sn-b1", "922337203685477.5807", 1)
	n, err = mem.Record(t.Context(), []koogallery.UsageRecord{big, record("b", "sn-b2", "0.0001", 2)}, mockapi.UsagePush{ReceivedAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, "922337203685477.5808", mem.Totals()["b"])
}

// orderSource is an OrderSource backed by a map, counting lookups.
type orderSource struct {
	mu      sync.Mutex
	orders  map[string]*koogallery.OrderInfo
	lookups int
	err     error
}

func (s *orderSource) Order(_ context.Context, id string) (*koogallery.OrderInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	if s.err != nil {
		return nil, s.err
	}
	return s.orders[id], nil
}

func TestOrderSource(t *testing.T) {
	src := &orderSource{orders: map[string]*koogallery.OrderInfo{
		mockapi.OrderOnDemand: {OrderID: mockapi.OrderOnDemand, OrderType: koogallery.OrderTypeNew, CreateTime: "20240101000000",
			OrderLines: []koogallery.OrderLine{
				{OrderLineID: "emu-1", ChargingMode: koogallery.ChargingOnDemand},
				{OrderLineID: "emu-2", ChargingMode: koogallery.ChargingOnDemand},
			}},
		"EMU-ORDER-1": {OrderID: "EMU-ORDER-1", OrderType: koogallery.OrderTypeNew, CreateTime: "20240101000000",
			OrderLines: []koogallery.OrderLine{{OrderLineID: "EMU-ORDER-1-000001", ChargingMode: koogallery.ChargingPeriod}}},
	}}
	m, _, c, _, _ := usageSetup(t, mockapi.Config{Orders: src})

	// The source is consulted before the built-in mock orders.
	res, err := c.QueryOrder(t.Context(), mockapi.OrderOnDemand, "")
	require.NoError(t, err)
	require.Equal(t, "emu-1", res.OrderInfo.OrderLines[0].OrderLineID)
	require.Equal(t, "20240101000000", res.OrderInfo.CreateTime)

	res, err = c.QueryOrder(t.Context(), "EMU-ORDER-1", "EMU-ORDER-1-000001")
	require.NoError(t, err)
	require.Equal(t, koogallery.ChargingPeriod, res.OrderInfo.OrderLines[0].ChargingMode)

	// Narrowing to one line does not modify the source's order.
	res, err = c.QueryOrder(t.Context(), mockapi.OrderOnDemand, "emu-2")
	require.NoError(t, err)
	require.Len(t, res.OrderInfo.OrderLines, 1)
	require.Len(t, src.orders[mockapi.OrderOnDemand].OrderLines, 2)

	// An order the source does not know falls back to the built-in mocks.
	res, err = c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, "")
	require.NoError(t, err)
	require.Equal(t, mockapi.OrderPeriodYearNew+"-000001", res.OrderInfo.OrderLines[0].OrderLineID)
	_, err = c.QueryOrder(t.Context(), "NOSUCHORDER", "")
	requireOpenAPIError(t, err, http.StatusBadRequest, koogallery.OpenAPIParamCheckFailed, false)
	require.Equal(t, 5, src.lookups)

	// AddOrder registrations come first.
	m.AddOrder(koogallery.OrderInfo{OrderID: "EMU-ORDER-1", OrderType: koogallery.OrderTypeRenew,
		OrderLines: []koogallery.OrderLine{{OrderLineID: "added", ChargingMode: koogallery.ChargingPeriod}}})
	res, err = c.QueryOrder(t.Context(), "EMU-ORDER-1", "")
	require.NoError(t, err)
	require.Equal(t, "added", res.OrderInfo.OrderLines[0].OrderLineID)
	require.Equal(t, 5, src.lookups)

	// A failing source is the marketplace's internal error, without detail.
	src.mu.Lock()
	src.err = errors.New("database down: secret detail")
	src.mu.Unlock()
	_, err = c.QueryOrder(t.Context(), mockapi.OrderMonthRenew, "")
	requireOpenAPIError(t, err, http.StatusInternalServerError, koogallery.OpenAPIInternalError, true)
	require.NotContains(t, err.Error(), "secret detail")
}

// The mock accepts a signature over the raw bytes, the top-level-sorted
// body or the fully sorted body, and usage_value as a number or a string,
// and tells its sink which form the signature covered.
func TestUsageSignatureForms(t *testing.T) {
	_, srv, c, mem, last := usageSetup(t, mockapi.Config{})
	now := time.Now()

	// This server's own client, both usage_value forms: the bytes sent are
	// the bytes signed.
	num := record("inst-1", "sn-num", "1.5", 3)
	str := record("inst-1", "sn-str", "2.25", 2)
	str.UsageValue = koogallery.UsageValueString.In(str.UsageValue)
	require.NoError(t, c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{num}))
	require.Contains(t, string(last().body), `"usage_value":1.5}`)
	require.NoError(t, c.PushUsage(t.Context(), testAccessKey, []koogallery.UsageRecord{str}))
	require.Contains(t, string(last().body), `"usage_value":"2.25"}`)

	// Another client: record keys in the contract's table order, signed
	// over that text (top-level sorted), or over the fully sorted body.
	tableOrder := func(sn string, hoursAgo int, value string) []byte {
		r := record("inst-1", sn, "1", hoursAgo)
		return []byte(fmt.Sprintf(`{"usage_records":[{"instance_id":%q,"record_time":%q,"begin_time":%q,"end_time":%q,"usage_value":%s,"metering_sn":%q}]}`,
			r.InstanceID, r.RecordTime, r.BeginTime, r.EndTime, value, r.MeteringSN))
	}
	top := tableOrder("sn-top", 4, `"3"`)
	spaced := append([]byte("  "), top...) // the raw bytes differ, the top-level-sorted form does not
	resp := send(t, signedPostOver(t, srv.URL, now, testAccessKey, spaced, top))
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	sorted := tableOrder("sn-sorted", 5, "4")
	resp = send(t, signedPost(t, srv.URL, now, testAccessKey, sorted))
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))

	// Refused: the signature covers the numbers as a Java double prints
	// them (4 as 4.0), which is none of the three forms of what was sent.
	reprinted := tableOrder("sn-refused", 6, "4")
	resp = send(t, signedPostOver(t, srv.URL, now, testAccessKey, reprinted,
		bytes.Replace(reprinted, []byte(`"usage_value":4`), []byte(`"usage_value":4.0`), 1)))
	require.Equal(t, http.StatusBadRequest, resp.status)
	require.Contains(t, string(resp.body), koogallery.OpenAPIInvalidBodySign)

	require.Equal(t, []koogallery.UsageSignatureForm{koogallery.UsageSignedRaw, koogallery.UsageSignedRaw,
		koogallery.UsageSignedTopLevelSorted, koogallery.UsageSignedSorted}, mem.SignedForms())
	var forms []koogallery.UsageValueForm
	for _, r := range mem.Records() {
		forms = append(forms, r.UsageValue.Form())
	}
	require.Equal(t, []koogallery.UsageValueForm{koogallery.UsageValueNumber, koogallery.UsageValueString,
		koogallery.UsageValueString, koogallery.UsageValueNumber}, forms)
	require.Equal(t, map[string]string{"inst-1": "10.75"}, mem.Totals())
}
