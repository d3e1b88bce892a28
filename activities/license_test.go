package activities_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
)

// flipProvisioner is the demo whose licences change on every call, as a
// broken generator's might: the server must upload only the first.
type flipProvisioner struct {
	*provisioner.Demo
	n   int
	err error
}

func (p *flipProvisioner) IssueLicense(_ context.Context, req provisioner.LicenseRequest) (provisioner.License, error) {
	if p.err != nil {
		return provisioner.License{}, p.err
	}
	p.n++
	l := provisioner.DemoLicense(req)
	l.Characters += string(rune('a' + p.n))
	return l, nil
}

// newLicenseFixture is the activities with a licence generator whose
// licences change on every call and the mock open API that takes uploads.
func newLicenseFixture(t *testing.T) (*directoryFixture, *mockapi.Server, *flipProvisioner, *activities.Activities) {
	t.Helper()
	f := newDirectoryFixture(t)
	mock := mockapi.New(mockapi.Config{AK: "ak", SK: "sk"})
	srv := httptest.NewServer(mock)
	t.Cleanup(srv.Close)
	client, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: "ak", SK: "sk"})
	require.NoError(t, err)
	gen := &flipProvisioner{Demo: f.demo}
	return f, mock, gen, &activities.Activities{Provisioner: gen, Store: f.db, Licenses: client}
}

// TestIssueLicenseOnceAndUploadOnce: a request is issued and uploaded;
// applied again (a redelivery under another seq, or a retried activity) it
// uploads nothing more; a failed upload is retried with the same licence
// even when the generator would answer otherwise; the quota counts other
// devices only.
func TestIssueLicenseOnceAndUploadOnce(t *testing.T) {
	f, mock, gen, acts := newLicenseFixture(t)
	uploads := func() []mockapi.LicenseUpload { return mock.Licenses().(*mockapi.MemoryLicenses).Uploads() }

	expire := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	record := func(key, event, fp string) int64 {
		payload, err := json.Marshal(activities.LicenseRequest{EventID: event, DeviceFingerprint: fp,
			EffectiveTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ExpireTime: &expire})
		require.NoError(t, err)
		rec, err := f.db.Callbacks.RecordCallback(t.Context(), store.NewCallback{
			DedupKey: key, Activity: "getLicenseAsync", InstanceID: "inst-k", Body: []byte(`{}`), Payload: payload})
		require.NoError(t, err)
		return rec.Callback.Seq
	}

	seq := record("getLicenseAsync:a", "E1", "FP-1")
	// The first upload fails for a while: the licence is stored, the
	// error is retryable.
	mock.FailLicenseUploads(1, http.StatusServiceUnavailable, "CBC.0999")
	_, err := acts.IssueLicense(t.Context(), activities.LicenseInput{InstanceID: "inst-k", Seq: seq, Quota: 2})
	require.Error(t, err)
	require.False(t, nonRetryable(err), "%v", err)
	stored, err := f.db.Licenses.Get(t.Context(), store.LicenseKey{InstanceID: "inst-k", EventID: "E1", DeviceFingerprint: "FP-1"})
	require.NoError(t, err)
	require.False(t, stored.Uploaded())
	require.Contains(t, stored.LastUploadError, "CBC.0999")

	done, err := acts.IssueLicense(t.Context(), activities.LicenseInput{InstanceID: "inst-k", Seq: seq, Quota: 2})
	require.NoError(t, err)
	require.Contains(t, done.Summary, "issued and uploaded")
	require.Len(t, uploads(), 1)
	require.Equal(t, stored.Content, uploads()[0].Content, "the licence stored first is the one uploaded")
	require.Equal(t, 1, gen.n, "the generator was asked once")

	// The same request again, under another callback: nothing is sent.
	again := record("getLicenseAsync:b", "E1", "FP-1")
	done, err = acts.IssueLicense(t.Context(), activities.LicenseInput{InstanceID: "inst-k", Seq: again, Quota: 2})
	require.NoError(t, err)
	require.Contains(t, done.Summary, "uploaded before")
	require.Len(t, uploads(), 1)

	// The same device with another event uses no more quota; a second
	// device fits; a third does not.
	for i, tc := range []struct{ event, fp string }{{"E2", "FP-1"}, {"E3", "FP-2"}} {
		done, err := acts.IssueLicense(t.Context(), activities.LicenseInput{InstanceID: "inst-k", Seq: record("k"+tc.event, tc.event, tc.fp), Quota: 2})
		require.NoError(t, err, i)
		require.Empty(t, done.Refused)
	}
	done, err = acts.IssueLicense(t.Context(), activities.LicenseInput{InstanceID: "inst-k", Seq: record("kE4", "E4", "FP-3"), Quota: 2})
	require.NoError(t, err)
	require.Contains(t, done.Refused, "allows 2 device(s)")
	require.Len(t, uploads(), 3)

	// A generator that refuses for good fails the activity for good.
	gen.err = provisioner.Permanent("license", "no such product")
	_, err = acts.IssueLicense(t.Context(), activities.LicenseInput{InstanceID: "inst-k", Seq: record("kE5", "E5", "FP-1")})
	require.True(t, nonRetryable(err), "%v", err)

	// A refused upload fails for good.
	gen.err = nil
	mock.FailLicenseUploads(1, http.StatusBadRequest, koogallery.LicenseUploadInvalidParam)
	_, err = acts.IssueLicense(t.Context(), activities.LicenseInput{InstanceID: "inst-k", Seq: record("kE6", "E6", "FP-1")})
	require.True(t, nonRetryable(err), "%v", err)
}

// TestDemoLicenseIsDeterministic: the demo generator answers the same
// request with the same licence, and another request with another.
func TestDemoLicenseIsDeterministic(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	req := provisioner.LicenseRequest{InstanceID: "I", EventID: "E", DeviceFingerprint: "F", EffectiveTime: at}
	a, b := provisioner.DemoLicense(req), provisioner.DemoLicense(req)
	require.Equal(t, a, b)
	require.Equal(t, provisioner.LicenseCharacters, a.Type)
	req.DeviceFingerprint = "G"
	require.NotEqual(t, a.Characters, provisioner.DemoLicense(req).Characters)
}

// TestIssueLicenseInAnswerUploadsNothing: a 联营License's licence (V1
// getLicense) is issued once and stored for the call's answer; nothing is
// uploaded, and applied again it is not issued again.
func TestIssueLicenseInAnswerUploadsNothing(t *testing.T) {
	f, mock, gen, acts := newLicenseFixture(t)
	payload, err := json.Marshal(activities.LicenseRequest{EventID: "CSLIC1", InAnswer: true,
		EffectiveTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	rec, err := f.db.Callbacks.RecordCallback(t.Context(), store.NewCallback{
		DedupKey: "v1:getLicense:k", Activity: "getLicenseAsync", InstanceID: "inst-k", Body: []byte(`{}`), Payload: payload})
	require.NoError(t, err)

	for range 2 {
		done, err := acts.IssueLicense(t.Context(), activities.LicenseInput{InstanceID: "inst-k", Seq: rec.Callback.Seq, Quota: 1})
		require.NoError(t, err)
		require.Contains(t, done.Summary, "getLicense answers it")
	}
	require.Equal(t, 1, gen.n, "issued once")
	require.Empty(t, mock.Licenses().(*mockapi.MemoryLicenses).Uploads(), "never uploaded")
	stored, err := f.db.Licenses.Get(t.Context(), store.LicenseKey{InstanceID: "inst-k", EventID: "CSLIC1"})
	require.NoError(t, err)
	require.NotEmpty(t, stored.Content)
}
