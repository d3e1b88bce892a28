package koogallery_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

func TestEveryActivityHasADeliveryMode(t *testing.T) {
	require.Len(t, koogallery.Deliveries, len(koogallery.Activities), "no delivery mode for an unknown activity")
	for _, a := range koogallery.Activities {
		d, ok := koogallery.Deliveries[a]
		require.True(t, ok, "no delivery mode for %s", a)
		require.NotEmpty(t, d.Source, "%s cites no source", a)
		require.NotEmpty(t, d.Afterwards, "%s says nothing of what happens afterwards", a)
		if d.Window > 0 {
			require.True(t, d.Retried, "%s has a retry window but is not retried", a)
			require.Positive(t, d.Interval, "%s has a retry window without an interval", a)
			require.LessOrEqual(t, d.Interval, d.Window, "%s", a)
		}
	}
}

func TestDeliveryModes(t *testing.T) {
	tests := []struct {
		activity    koogallery.Activity
		retried     bool
		interval    time.Duration
		window      time.Duration
		sentOnce    bool
		mustNotFail bool
	}{
		// §4.1: hourly for 3 h, then the order is judged failed.
		{koogallery.ActivityNewInstance, true, time.Hour, 3 * time.Hour, false, false},
		{koogallery.ActivityUpgradeInstance, true, time.Hour, 3 * time.Hour, false, false},
		{koogallery.ActivityOrderNotify, true, time.Hour, 3 * time.Hour, false, false},
		// Expiry FREEZE: 1 h, at the assumed interval.
		{koogallery.ActivityUpdateInstanceStatus, true, koogallery.RetryInterval1h, time.Hour, false, false},
		// Release: 1 h on some pages, once on another: treated as once.
		{koogallery.ActivityReleaseInstance, true, koogallery.RetryInterval1h, time.Hour, true, true},
		// Renewal: called once only on one page.
		{koogallery.ActivityRefreshInstance, false, 0, 0, true, true},
		// Polled until it succeeds: retried, no window.
		{koogallery.ActivityQueryInstance, true, 0, 0, false, false},
		// Asked synchronously; the buyer retries.
		{koogallery.ActivityChangeInstanceCheck, false, 0, 0, false, true},
	}
	for _, tc := range tests {
		t.Run(string(tc.activity), func(t *testing.T) {
			d := koogallery.Deliveries[tc.activity]
			require.Equal(t, tc.retried, d.Retried, "Retried")
			require.Equal(t, tc.interval, d.Interval, "Interval")
			require.Equal(t, tc.window, d.Window, "Window")
			require.Equal(t, tc.sentOnce, d.SentOnceSomewhere, "SentOnceSomewhere")
			require.Equal(t, tc.mustNotFail, d.MustNotFail(), "MustNotFail")
		})
	}
}

func TestDeliveryOfRequests(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		retried     bool
		window      time.Duration
		mustNotFail bool
	}{
		{"newInstance", `{"activity":"newInstance","orderId":"O1","orderLineId":"O1-1","businessId":"b1"}`,
			true, 3 * time.Hour, false},
		{"queryInstance", `{"activity":"queryInstance","instanceId":"I1"}`, true, 0, false},
		{"refreshInstance", `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R1","orderLineId":"R1-1","instanceId":"I1","expireTime":"20301124023618256"}`,
			false, 0, true},
		{"FREEZE", `{"activity":"updateInstanceStatus","instanceId":"I1","status":"FREEZE"}`, true, time.Hour, false},
		// Only the expiry FREEZE's retry is documented.
		{"UNFREEZE", `{"activity":"updateInstanceStatus","instanceId":"I1","status":"UNFREEZE"}`, false, 0, true},
		{"releaseInstance", `{"activity":"releaseInstance","instanceId":"I1"}`, true, time.Hour, true},
		{"upgradeInstance", `{"activity":"upgradeInstance","instanceId":"I1","orderId":"U1","orderLineId":"U1-1"}`,
			true, 3 * time.Hour, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := koogallery.ParseRequest([]byte(tc.body))
			require.NoError(t, err)

			d := koogallery.DeliveryOf(req)

			require.Equal(t, tc.retried, d.Retried, "Retried")
			require.Equal(t, tc.window, d.Window, "Window")
			require.Equal(t, tc.mustNotFail, d.MustNotFail(), "MustNotFail")
			require.NotEmpty(t, d.Source)
			require.NotEmpty(t, d.Afterwards)
		})
	}

	t.Run("UNFREEZE is not the table's updateInstanceStatus", func(t *testing.T) {
		req, err := koogallery.ParseRequest([]byte(`{"activity":"updateInstanceStatus","instanceId":"I1","status":"UNFREEZE"}`))
		require.NoError(t, err)
		require.NotEqual(t, koogallery.Deliveries[koogallery.ActivityUpdateInstanceStatus], koogallery.DeliveryOf(req))
		require.True(t, koogallery.DeliveryOf(req).SentOnceSomewhere)
	})
}

func TestMustNotFail(t *testing.T) {
	tests := []struct {
		name string
		d    koogallery.Delivery
		want bool
	}{
		{"not retried", koogallery.Delivery{}, true},
		{"retried", koogallery.Delivery{Retried: true, Interval: time.Hour, Window: 3 * time.Hour}, false},
		{"retried, but once on some page", koogallery.Delivery{Retried: true, SentOnceSomewhere: true}, true},
		{"polled until it succeeds", koogallery.Delivery{Retried: true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.d.MustNotFail())
		})
	}
}
