package mockapi_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

func TestUploadLicense(t *testing.T) {
	m, srv, c := setup(t, nil)
	ctx := context.Background()
	f := koogallery.LicenseFile{Type: koogallery.LicenseTypeCharacters, FileName: "license.txt", Content: []byte("LIC-1")}
	require.NoError(t, c.UploadLicense(ctx, "EV1", f))
	got := m.Licenses().(*mockapi.MemoryLicenses).Uploads()
	require.Len(t, got, 1)
	require.Equal(t, "EV1", got[0].EventID)
	require.Equal(t, []byte("LIC-1"), got[0].Content)
	require.Equal(t, f.SHA256(), got[0].SHA256)

	// A wrong SK is CBC.0150, permanent.
	bad, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: "other"})
	require.NoError(t, err)
	err = bad.UploadLicense(ctx, "EV1", f)
	require.ErrorContains(t, err, koogallery.LicenseUploadAuthFailed)
	require.False(t, koogallery.IsRetryable(err))

	// An injected outage is retryable.
	m.FailLicenseUploads(1, http.StatusServiceUnavailable, "CBC.0999")
	err = c.UploadLicense(ctx, "EV2", f)
	require.True(t, koogallery.IsRetryable(err), "%v", err)

	// An unsigned request is refused before its body is read.
	resp, err := http.Post(srv.URL+"/api/mkp-openapi-public/global/v1/market-event/EV3/file", "multipart/form-data; boundary=x", bytes.NewReader(nil))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Len(t, m.Licenses().(*mockapi.MemoryLicenses).Uploads(), 1)
}
