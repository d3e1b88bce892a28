package store_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/store"
)

func activate(t *testing.T, db *store.DB, license string) store.Recorded {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	expire := now.Add(30 * 24 * time.Hour)
	_, rec, err := db.LicenseCodes.RecordActivation(t.Context(), store.LicenseCode{
		License: license, Status: store.LicenseActive, MarketplaceStatus: "ALIVE", ProductID: "P", OrderID: "O",
		Amount: 1, ExpireTime: &expire, ActivatedAt: now, CheckedAt: now,
	}, store.NewCallback{DedupKey: "activateLicenseCode:" + strconv.Quote(license), Activity: "activateLicenseCode",
		License: license, Body: []byte(`{}`)})
	require.NoError(t, err)
	return rec
}

// codeStatus is a license-code status change keyed by its episode.
func codeStatus(license, status string) store.NewCallback {
	in := store.NewCallback{Activity: "updateLicenseCodeStatus", License: license, Status: status, Body: []byte(`{}`)}
	in.StatusChange = func(_ bool, last store.StatusEpisode) (store.StatusEpisode, string) {
		episode := last
		if last.Status != status {
			episode = store.StatusEpisode{Status: status, Number: last.Number + 1}
		}
		return episode, fmt.Sprintf("updateLicenseCodeStatus:%s:%s:%d", license, status, episode.Number)
	}
	return in
}

// TestLicenseCodeCallbacksAreRecordedUnderTheCode: the activation and the
// code's callbacks are rows of the code, in arrival order, each status
// change keyed by its episode; an unknown code records nothing; the
// activation repeated is the same row.
func TestLicenseCodeCallbacksAreRecordedUnderTheCode(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	first := activate(t, db, "PL:1")
	require.True(t, first.Fresh)
	require.Equal(t, "license-code/PL:1", first.Callback.Owner())
	again := activate(t, db, "PL:1")
	require.False(t, again.Fresh)
	require.Equal(t, first.Callback.Seq, again.Callback.Seq)

	_, err := db.Callbacks.RecordLicenseCodeCallback(ctx, codeStatus("PL-unknown", "FREEZE"))
	require.ErrorIs(t, err, store.ErrUnknownLicenseCode)

	freeze, err := db.Callbacks.RecordLicenseCodeCallback(ctx, codeStatus("PL:1", "FREEZE"))
	require.NoError(t, err)
	require.Equal(t, "updateLicenseCodeStatus:PL:1:FREEZE:1", freeze.Callback.DedupKey)
	retried, err := db.Callbacks.RecordLicenseCodeCallback(ctx, codeStatus("PL:1", "FREEZE"))
	require.NoError(t, err)
	require.False(t, retried.Fresh)
	unfreeze, err := db.Callbacks.RecordLicenseCodeCallback(ctx, codeStatus("PL:1", "UNFREEZE"))
	require.NoError(t, err)
	refreeze, err := db.Callbacks.RecordLicenseCodeCallback(ctx, codeStatus("PL:1", "FREEZE"))
	require.NoError(t, err)
	require.Equal(t, "updateLicenseCodeStatus:PL:1:FREEZE:3", refreeze.Callback.DedupKey)

	// Delivery order is per code: the FREEZE waits for the activation.
	waiting, err := db.Callbacks.HasEarlierUndelivered(ctx, freeze.Callback)
	require.NoError(t, err)
	require.True(t, waiting)
	require.NoError(t, db.Callbacks.MarkDelivered(ctx, first.Callback.Seq, "signalled"))
	waiting, err = db.Callbacks.HasEarlierUndelivered(ctx, freeze.Callback)
	require.NoError(t, err)
	require.False(t, waiting)
	waiting, err = db.Callbacks.HasEarlierUndelivered(ctx, unfreeze.Callback)
	require.NoError(t, err)
	require.True(t, waiting)
}

// TestLicenseCodeStateSavesInOrder: a save with an older revision than
// the last one saved changes nothing.
func TestLicenseCodeStateSavesInOrder(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	activate(t, db, "PL2")
	now := time.Now().UTC().Truncate(time.Millisecond)
	retain := now.Add(15 * 24 * time.Hour)
	require.NoError(t, db.LicenseCodes.SaveLicenseCodeState(ctx, store.LicenseCodeState{
		License: "PL2", Status: store.LicenseFrozen, FrozenAt: &now, RetainUntil: &retain, Revision: 2}))
	require.NoError(t, db.LicenseCodes.SaveLicenseCodeState(ctx, store.LicenseCodeState{
		License: "PL2", Status: store.LicenseActive, Revision: 1}))
	got, err := db.LicenseCodes.LicenseCode(ctx, "PL2")
	require.NoError(t, err)
	require.Equal(t, store.LicenseFrozen, got.Status)
	require.Equal(t, retain, got.RetainUntil.UTC())
	require.NotNil(t, got.ExpireTime, "a save without an expiry keeps the known one")

	// A check by the open API does not revive a released code.
	require.NoError(t, db.LicenseCodes.SaveLicenseCodeState(ctx, store.LicenseCodeState{
		License: "PL2", Status: store.LicenseReleased, ReleasedAt: &now, Revision: 3}))
	got, err = db.LicenseCodes.RecordCheck(ctx, "PL2", "ALIVE", store.LicenseActive, nil, now)
	require.NoError(t, err)
	require.Equal(t, store.LicenseReleased, got.Status)
}
