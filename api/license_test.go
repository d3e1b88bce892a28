package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/store"
)

func licenseBody(t testing.TB, instanceID, event, fingerprint, effective, expire string) []byte {
	fields := map[string]any{"activity": "getLicenseAsync", "instanceId": instanceID, "eventId": event,
		"effectiveTime": effective}
	if fingerprint != "" {
		fields["deviceFingerprint"] = fingerprint
	}
	if expire != "" {
		fields["expireTime"] = expire
	}
	return jsonBody(t, fields)
}

// licensed is a provisioned yearly instance for n devices of product
// prod-lic, expiring at the end of 2027.
func (h *harness) licensed(t testing.TB, instanceID string, n int64) {
	t.Helper()
	h.allocate(t, instanceID)
	inst := instance(instanceID, "active")
	expiry := time.Date(2027, 12, 31, 15, 59, 59, 0, time.UTC)
	inst.ChargingMode, inst.PeriodType, inst.ProductID, inst.LinearValue, inst.ExpireTime = "PERIOD", "year", "prod-lic", &n, &expiry
	h.save(t, inst)
}

// TestGetLicenseAsyncAnswers: a request is recorded and delivered like any
// callback and answered 000004; redelivered, it is the same callback;
// once its licence is uploaded, it is answered 000000.
func TestGetLicenseAsyncAnswers(t *testing.T) {
	h := newHarness(t)
	h.licensed(t, "lic-1", 2)
	body := licenseBody(t, "lic-1", "EV1", "FP-1", "2026-12-01 00:00:00 z", "2027-12-01 00:00:00 z")

	requireResult(t, h.produce(t, body), "000004", "the licence is being issued and will be uploaded")
	h.settle(t)
	cbs := h.callbacksOf(t, "lic-1")
	require.Len(t, cbs, 2)
	require.Equal(t, "getLicenseAsync", cbs[1].Activity)
	require.Contains(t, cbs[1].DedupKey, "getLicenseAsync:lic-1:EV1:")
	require.True(t, cbs[1].Delivered())
	require.Len(t, h.signaller.delivered(), 1)

	requireResult(t, h.produce(t, body), "000004", "the licence is being issued and will be uploaded")
	h.settle(t)
	cbs = h.callbacksOf(t, "lic-1")
	require.Len(t, cbs, 2, "a redelivery is the same callback")
	require.Equal(t, 1, cbs[1].Redeliveries)

	// The workflow issued and uploaded the licence.
	key := store.LicenseKey{InstanceID: "lic-1", EventID: "EV1", DeviceFingerprint: "FP-1"}
	_, _, err := h.db.Licenses.Issue(t.Context(), store.License{InstanceID: "lic-1", EventID: "EV1", DeviceFingerprint: "FP-1",
		Seq: cbs[1].Seq, EffectiveAt: time.Now(), Kind: "CHARACTERS", FileName: "license.txt", Content: []byte("L"), SHA256: "x"})
	require.NoError(t, err)
	require.NoError(t, h.db.Licenses.MarkUploaded(t.Context(), key, "CBC.0000"))
	requireResult(t, h.produce(t, body), "000000", "success: the licence was uploaded")
	require.Len(t, h.callbacksOf(t, "lic-1"), 2)

	// Operators see the licence and its upload.
	status, raw := h.admin(t, "/v1/instances/lic-1/licenses")
	require.Equal(t, http.StatusOK, status)
	var listed struct {
		Licenses []struct {
			EventID      string     `json:"eventId"`
			Characters   string     `json:"characters"`
			UploadResult string     `json:"uploadResult"`
			UploadedAt   *time.Time `json:"uploadedAt"`
		} `json:"licenses"`
	}
	require.NoError(t, json.Unmarshal(raw, &listed))
	require.Len(t, listed.Licenses, 1)
	require.Equal(t, "EV1", listed.Licenses[0].EventID)
	require.Equal(t, "L", listed.Licenses[0].Characters)
	require.Equal(t, "CBC.0000", listed.Licenses[0].UploadResult)
	require.NotNil(t, listed.Licenses[0].UploadedAt)
	status, _ = h.admin(t, "/v1/instances/nobody/licenses")
	require.Equal(t, http.StatusNotFound, status)

	// An unknown instance is 000003, as for every callback.
	requireResult(t, h.produce(t, licenseBody(t, "nobody", "EV1", "FP-1", "2026-12-01 00:00:00 z", "")), "000003", "instance does not exist")
}

// TestGetLicenseAsyncRefusals: what the read model decides at once is
// refused with its code, recording a notice of the instance and nothing
// else: no callback to deliver, no signal.
func TestGetLicenseAsyncRefusals(t *testing.T) {
	h := newHarness(t, withNodeLocked("prod-lic"))
	h.licensed(t, "lic-2", 1)
	const start, end = "2026-12-01 00:00:00 z", "2027-12-01 00:00:00 z"

	cases := []struct {
		name, event, fp, effective, expire, code, msg string
	}{
		{"no fingerprint, node-locked", "E1", "", start, end, "000903", "a device fingerprint or hardware ID is required for this product"},
		{"no expiry, yearly", "E2", "FP-1", start, "", "000902", "a yearly/monthly licence needs expireTime"},
		{"end after the order's expiry", "E3", "FP-1", start, "2028-06-01 00:00:00 z", "000901", "expireTime is after the order's expiry 2027-12-31T15:59:59Z"},
		{"start after the order's expiry", "E4", "FP-1", "2028-01-01 00:00:00 z", "2028-06-01 00:00:00 z", "000901", "effectiveTime is after the order's expiry 2027-12-31T15:59:59Z"},
		{"end before start", "E5", "FP-1", end, start, "000901", "expireTime must be after effectiveTime"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.effects(t)
			requireResult(t, h.produce(t, licenseBody(t, "lic-2", tc.event, tc.fp, tc.effective, tc.expire)), tc.code, tc.msg)
			h.settle(t)
			after := h.effects(t)
			require.Equal(t, before.Callbacks+1, after.Callbacks, "a notice is recorded")
			require.Equal(t, before.Undelivered, after.Undelivered)
			require.Equal(t, before.SignalAttempts, after.SignalAttempts, "nothing reaches the workflow")
			cbs := h.callbacksOf(t, "lic-2")
			notice := cbs[len(cbs)-1]
			require.Contains(t, notice.DedupKey, "refused:"+tc.code+":getLicenseAsync:lic-2:"+tc.event)
			require.Contains(t, notice.Outcome, "refused "+tc.code+": "+tc.msg)
		})
	}

	// The quota: one device may hold a licence; it may ask again with
	// another event; another device may not.
	requireResult(t, h.produce(t, licenseBody(t, "lic-2", "E6", "FP-1", start, end)), "000004", "the licence is being issued and will be uploaded")
	h.settle(t)
	_, _, err := h.db.Licenses.Issue(t.Context(), store.License{InstanceID: "lic-2", EventID: "E6", DeviceFingerprint: "FP-1",
		Seq: 1, EffectiveAt: time.Now(), Kind: "CHARACTERS", Content: []byte("L"), SHA256: "x"})
	require.NoError(t, err)
	requireResult(t, h.produce(t, licenseBody(t, "lic-2", "E7", "FP-1", start, end)), "000004", "the licence is being issued and will be uploaded")
	before := h.effects(t)
	requireResult(t, h.produce(t, licenseBody(t, "lic-2", "E8", "FP-2", start, end)), "000900",
		"the order's available licence quota is used up: 1 of 1 device(s) licensed")
	h.settle(t)
	require.Equal(t, before.SignalAttempts, h.effects(t).SignalAttempts)

	// A request that has its licence is never refused, even when the
	// rules would refuse it now: it gets the licence issued before.
	requireResult(t, h.produce(t, licenseBody(t, "lic-2", "E6", "FP-1", start, end)), "000004", "the licence is being issued and will be uploaded")
}
