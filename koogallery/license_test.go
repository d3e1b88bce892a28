package koogallery

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseGetLicenseAsync(t *testing.T) {
	req, err := ParseRequest([]byte(requestBodies[ActivityGetLicenseAsync]))
	require.NoError(t, err)
	lic, ok := req.(*GetLicenseAsyncRequest)
	require.True(t, ok)
	require.Equal(t, "I1", lic.InstanceID)
	require.Equal(t, "E1", lic.EventID)
	require.Equal(t, "FP-1", lic.DeviceFingerprint)
	require.Equal(t, time.Date(2023, 10, 27, 10, 30, 15, 0, time.UTC), lic.EffectiveAt())
	require.Equal(t, time.Date(2024, 10, 27, 10, 30, 15, 0, time.UTC), lic.ExpireAt())
	require.True(t, Deliveries[ActivityGetLicenseAsync].Retried)
	require.Equal(t, 2*time.Minute, Deliveries[ActivityGetLicenseAsync].Interval)
	require.Equal(t, 2*time.Hour, Deliveries[ActivityGetLicenseAsync].Window)

	// Optional fields may be absent.
	body := withField(t, withField(t, requestBodies[ActivityGetLicenseAsync], "expireTime", ""), "deviceFingerprint", "")
	req, err = ParseRequest([]byte(body))
	require.NoError(t, err)
	require.True(t, req.(*GetLicenseAsyncRequest).ExpireAt().IsZero())
	require.Empty(t, req.(*GetLicenseAsyncRequest).DeviceFingerprint)
}

func TestParseGetLicenseAsyncRefusals(t *testing.T) {
	base := requestBodies[ActivityGetLicenseAsync]
	long := func(n int) string { return `"` + strings.Repeat("x", n) + `"` }
	cases := []struct{ field, raw, msg string }{
		{"instanceId", "", "missing field instanceId"},
		{"instanceId", `"a/b"`, "field instanceId must be letters, digits, '-', '_' or '.', starting with a letter or a digit"},
		{"effectiveTime", "", "missing field effectiveTime"},
		{"effectiveTime", `"tomorrow"`, `field effectiveTime must be a UTC time like "2023-10-27 10:30:15 z", RFC 3339 or yyyyMMddHHmmss`},
		{"effectiveTime", long(33), "field effectiveTime is longer than 32 characters"},
		{"expireTime", `"2023-13-01 00:00:00"`, `field expireTime must be a UTC time like "2023-10-27 10:30:15 z", RFC 3339 or yyyyMMddHHmmss`},
		{"expireTime", long(33), "field expireTime is longer than 32 characters"},
		{"eventId", "", "missing field eventId"},
		{"eventId", long(65), "field eventId is longer than 64 characters"},
		{"deviceFingerprint", long(1025), "field deviceFingerprint is longer than 1024 characters"},
		{"deviceFingerprint", `7`, "field deviceFingerprint has the wrong type"},
	}
	for _, tc := range cases {
		t.Run(tc.field+"/"+tc.raw[:min(len(tc.raw), 20)], func(t *testing.T) {
			_, err := ParseRequest([]byte(withField(t, base, tc.field, tc.raw)))
			requireRequestError(t, err, tc.msg)
		})
	}
	// The longest fingerprint is accepted.
	_, err := ParseRequest([]byte(withField(t, base, "deviceFingerprint", long(1024))))
	require.NoError(t, err)
	// Member names are exact: "EventId" is not eventId.
	_, err = ParseRequest([]byte(strings.Replace(base, `"eventId"`, `"EventId"`, 1)))
	requireRequestError(t, err, "missing field eventId")
}

func TestParseLicenseTime(t *testing.T) {
	want := time.Date(2023, 10, 27, 10, 30, 15, 0, time.UTC)
	for _, s := range []string{
		"2023-10-27 10:30:15 z", "2023-10-27 10:30:15 Z", "2023-10-27 10:30:15Z", "2023-10-27 10:30:15",
		"2023-10-27 10:30:15 UTC", "2023-10-27T10:30:15Z", "2023-10-27T18:30:15+08:00", "20231027103015",
		"20231027103015000", " 2023-10-27 10:30:15 z ",
	} {
		got, err := ParseLicenseTime(s)
		require.NoError(t, err, s)
		require.True(t, want.Equal(got), "%s: %s", s, got)
		require.Equal(t, time.UTC, got.Location())
	}
	for _, s := range []string{"", "2023-10-27", "27/10/2023 10:30:15", "2023-10-27 25:30:15 z"} {
		_, err := ParseLicenseTime(s)
		require.Error(t, err, s)
	}
	require.Equal(t, "2023-10-27 10:30:15 z", FormatLicenseTime(want))
}

func TestLicenseUploadRoundTrip(t *testing.T) {
	for _, f := range []LicenseFile{
		{Type: LicenseTypeCharacters, FileName: "license.txt", Content: []byte("LIC-abc")},
		{Type: LicenseTypeFile, FileName: "license.lic", Content: []byte{0, 1, 2, 0xff}},
	} {
		body, ct, err := EncodeLicenseUpload(f)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(ct, "multipart/form-data; boundary="))
		desc, content, err := DecodeLicenseUpload(ct, body)
		require.NoError(t, err)
		require.Equal(t, f.Type, desc.Type)
		require.Equal(t, f.FileName, desc.FileName)
		require.Equal(t, f.SHA256(), desc.SHA256)
		require.Equal(t, f.Content, content)
	}
	_, _, err := EncodeLicenseUpload(LicenseFile{Type: "TEXT"})
	require.Error(t, err)
	_, _, err = DecodeLicenseUpload("application/json", []byte("{}"))
	require.Error(t, err)
}

// TestUploadLicenseSigned: the upload is multipart, signed with its body's
// SHA-256 (no UNSIGNED-PAYLOAD), and the answer's codes are classified.
func TestUploadLicenseSigned(t *testing.T) {
	var code string
	var seen LicenseUploadRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		if err := VerifyAKSK(r, body, "AK1", "SK1", time.Now(), 0); err != nil || r.Header.Get(akskContentSHA256) != "" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error_code":"CBC.0150","error_msg":"auth"}`))
			return
		}
		require.Equal(t, "/api/mkp-openapi-public/global/v1/market-event/EV-1/file", r.URL.EscapedPath())
		desc, _, err := DecodeLicenseUpload(r.Header.Get("Content-Type"), body)
		require.NoError(t, err)
		seen = desc
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"error_code":"` + code + `","error_msg":"m"}`))
	}))
	defer srv.Close()
	c, err := NewOpenAPIClient(OpenAPIConfig{BaseURL: srv.URL, AK: "AK1", SK: "SK1"})
	require.NoError(t, err)
	f := LicenseFile{Type: LicenseTypeCharacters, FileName: "license.txt", Content: []byte("LIC-1")}

	code = LicenseUploadSuccess
	require.NoError(t, c.UploadLicense(context.Background(), "EV-1", f))
	require.Equal(t, "LIC-1", seen.Characters)

	code = LicenseUploadInvalidParam
	err = c.UploadLicense(context.Background(), "EV-1", f)
	require.ErrorContains(t, err, "CBC.0101")
	require.False(t, IsRetryable(err))

	bad, err := NewOpenAPIClient(OpenAPIConfig{BaseURL: srv.URL, AK: "AK1", SK: "wrong"})
	require.NoError(t, err)
	err = bad.UploadLicense(context.Background(), "EV-1", f)
	require.ErrorContains(t, err, "CBC.0150")
	require.False(t, IsRetryable(err))
}
