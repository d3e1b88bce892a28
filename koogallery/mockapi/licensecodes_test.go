package mockapi_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// The license-code open APIs: a sold code is activated once (from the
// given start), queried, released; an unknown code is 92020005; a bad
// AK/SK is refused.
func TestLicenseCodes(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	codes := mockapi.NewMemoryLicenseCodes()
	codes.Add(mockapi.LicenseCode{License: "PL-0001", ProductID: "p-1", OrderID: "CS1", Amount: 2, Validity: 30 * 24 * time.Hour})
	codes.Add(mockapi.LicenseCode{License: "PL-0002", ProductID: "p-1", OrderID: "CS2", Amount: 1, Validity: time.Hour})
	srv := httptest.NewServer(mockapi.New(mockapi.Config{AK: testAK, SK: testSK, LicenseCodes: codes}))
	defer srv.Close()
	c, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: testSK})
	require.NoError(t, err)
	ctx := context.Background()

	start := now.Add(-time.Hour)
	info, err := c.ActivateLicense(ctx, "PL-0001", start)
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseAlive, info.Status)
	require.Equal(t, "p-1", info.ProductID)
	require.Equal(t, "CS1", info.OrderID)
	require.Equal(t, int64(2), info.Amount)
	require.Equal(t, start.Add(30*24*time.Hour), *info.ExpireTime)

	again, err := c.ActivateLicense(ctx, "PL-0001", time.Time{})
	require.NoError(t, err)
	require.Equal(t, *info.ExpireTime, *again.ExpireTime, "the first activation counts")

	q, err := c.QueryLicense(ctx, "PL-0001")
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseAlive, q.Status)
	require.Equal(t, start, *q.ActivateTime)
	expired, err := c.ActivateLicense(ctx, "PL-0002", now.Add(-2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseExpired, expired.Status)
	codes.Release("PL-0001")
	q, err = c.QueryLicense(ctx, "PL-0001")
	require.NoError(t, err)
	require.Equal(t, koogallery.LicenseReleased, q.Status)

	_, err = c.ActivateLicense(ctx, "PL-none", time.Time{})
	var oe *koogallery.OpenAPIError
	require.True(t, errors.As(err, &oe), "%v", err)
	require.Equal(t, koogallery.LicenseAPINotFound, oe.Code)
	require.False(t, koogallery.IsRetryable(err))

	_, err = c.ActivateLicense(ctx, "bad code", time.Time{})
	require.ErrorIs(t, err, koogallery.ErrInvalidLicense)

	bad, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: "wrong" + testSK})
	require.NoError(t, err)
	_, err = bad.QueryLicense(ctx, "PL-0001")
	require.True(t, errors.As(err, &oe), "%v", err)
	require.Equal(t, koogallery.OpenAPIIllegalToken, oe.Code)
}
