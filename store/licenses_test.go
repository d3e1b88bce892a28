package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/store"
)

// TestLicensesKeepTheFirstIssued: a request keeps the first licence stored
// for it, whatever is issued later; the key is (instance, event,
// fingerprint); the devices of an instance are counted once each.
func TestLicensesKeepTheFirstIssued(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	allocate(t, db, "I1")
	allocate(t, db, "I2")
	l := db.Licenses
	fp := strings.Repeat("f", 1024)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	first := store.License{InstanceID: "I1", EventID: "E1", DeviceFingerprint: fp, Seq: 7, EffectiveAt: at,
		Kind: "CHARACTERS", FileName: "license.txt", Content: []byte("LIC-1"), SHA256: "s1"}

	_, err := l.Get(ctx, first.Key())
	require.True(t, errors.Is(err, store.ErrNotFound))

	got, fresh, err := l.Issue(ctx, first)
	require.NoError(t, err)
	require.True(t, fresh)
	require.Equal(t, []byte("LIC-1"), got.Content)
	require.False(t, got.Uploaded())

	second := first
	second.Content, second.SHA256, second.Seq = []byte("LIC-2"), "s2", 8
	got, fresh, err = l.Issue(ctx, second)
	require.NoError(t, err)
	require.False(t, fresh)
	require.Equal(t, []byte("LIC-1"), got.Content, "the first licence is kept")
	require.Equal(t, int64(7), got.Seq)

	require.NoError(t, l.UploadFailed(ctx, first.Key(), "CBC.0999"))
	require.NoError(t, l.MarkUploaded(ctx, first.Key(), "CBC.0000"))
	got, err = l.Get(ctx, first.Key())
	require.NoError(t, err)
	require.True(t, got.Uploaded())
	require.Equal(t, 2, got.UploadAttempts)
	require.Empty(t, got.LastUploadError)

	// Another event of the same device, and another device.
	for _, k := range []store.License{
		{InstanceID: "I1", EventID: "E2", DeviceFingerprint: fp},
		{InstanceID: "I1", EventID: "E3", DeviceFingerprint: "other"},
		{InstanceID: "I2", EventID: "E1", DeviceFingerprint: fp},
	} {
		k.EffectiveAt, k.Kind, k.Content, k.SHA256 = at, "FILE", []byte{1}, "x"
		_, fresh, err := l.Issue(ctx, k)
		require.NoError(t, err)
		require.True(t, fresh)
	}
	n, err := l.Devices(ctx, "I1", "")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = l.Devices(ctx, "I1", fp)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	list, err := l.Of(ctx, "I1")
	require.NoError(t, err)
	require.Len(t, list, 3)
}
