package activities_test

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

func TestMeteringSN(t *testing.T) {
	begin := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	a := activities.MeteringSN("ppu-1", begin)

	require.Equal(t, a, activities.MeteringSN("ppu-1", begin.In(time.FixedZone("CST", 8*3600))), "the same period in another zone")
	require.NotEqual(t, a, activities.MeteringSN("ppu-1", begin.Add(time.Hour)))
	require.NotEqual(t, a, activities.MeteringSN("ppu-2", begin))
	require.Regexp(t, regexp.MustCompile(`^m[0-9a-f]{20}-20260301100000$`), a)
	long := activities.MeteringSN(string(make([]byte, 64)), begin)
	require.LessOrEqual(t, len(long), 64, "contract §6.2: metering_sn is at most 64 characters")
}

func TestDrawOnPackages(t *testing.T) {
	open := func(ids ...string) []store.PackageQuota {
		var out []store.PackageQuota
		for _, id := range ids {
			out = append(out, store.PackageQuota{ID: id, Left: "10.5"})
		}
		return out
	}
	cases := []struct {
		name     string
		total    string
		billable bool
		packages store.Packages
		want     store.Draw
	}{
		{"plain pay-per-use bills everything", "12.25", true, store.Packages{},
			store.Draw{Billable: "12.25", Unbilled: "0"}},
		{"usage while frozen is never billed", "12.25", false, store.Packages{Open: open("pk-1"), Newest: "pk-1"},
			store.Draw{Billable: "0", Unbilled: "12.25"}},
		{"within the quota the package pays", "3", true, store.Packages{Open: open("pk-1"), Newest: "pk-1"},
			store.Draw{Billable: "3.0000", Unbilled: "0.0000", Package: "pk-1"}},
		{"over the last package's quota: the rest is not billed and the service stops", "12", true,
			store.Packages{Open: open("pk-1"), Newest: "pk-1"},
			store.Draw{Billable: "10.5000", Unbilled: "1.5000", Package: "pk-1", Exhausted: "pk-1"}},
		{"exactly the quota uses the package up", "10.5", true, store.Packages{Open: open("pk-1"), Newest: "pk-1"},
			store.Draw{Billable: "10.5000", Unbilled: "0.0000", Package: "pk-1", Exhausted: "pk-1"}},
		{"a used-up package with another left: the oldest pays, no stop", "12", true,
			store.Packages{Open: open("pk-1", "pk-2"), Newest: "pk-2"},
			store.Draw{Billable: "10.5000", Unbilled: "1.5000", Package: "pk-1"}},
		{"every package used up: nothing billed, exhausted", "0.0001", true, store.Packages{Newest: "pk-9"},
			store.Draw{Billable: "0", Unbilled: "0.0001", Exhausted: "pk-9"}},
		{"no usage with every package used up: no stop reported", "0", true, store.Packages{Newest: "pk-9"},
			store.Draw{Billable: "0", Unbilled: "0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := activities.DrawOnPackages(c.total, c.billable, c.packages)
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
	_, err := activities.DrawOnPackages("twelve", true, store.Packages{})
	require.ErrorContains(t, err, `"twelve" is not a decimal`)
}

// capturePusher keeps the records it is asked to push.
type capturePusher struct{ records []koogallery.UsageRecord }

func (c *capturePusher) PushUsage(_ context.Context, records []koogallery.UsageRecord) error {
	c.records = append(c.records, records...)
	return nil
}

// The usage value is pushed in its shortest form, as a number or, with
// UsageValueString, as a string (contract §11.3), and the body the client
// sends is signed over exactly those bytes (koogallery's tests).
func TestPushUsageValueForm(t *testing.T) {
	for _, tt := range []struct {
		form koogallery.UsageValueForm
		want string
	}{
		{"", `{"usage_value":1.75}`},
		{koogallery.UsageValueNumber, `{"usage_value":1.75}`},
		{koogallery.UsageValueString, `{"usage_value":"1.75"}`},
	} {
		t.Run(string(tt.form), func(t *testing.T) {
			db := testenv.NewStore(t)
			_, err := db.Callbacks.RecordNewInstance(t.Context(), "ppu-1", store.NewCallback{
				DedupKey: "newInstance:O:L", Activity: "newInstance", OrderID: "O", OrderLineID: "L", Body: []byte(`{}`),
			})
			require.NoError(t, err)
			now := time.Now().UTC().Truncate(time.Hour)
			_, _, err = db.Metering.InsertUsage(t.Context(), []store.Usage{
				{IdempotencyKey: "k1", InstanceID: "ppu-1", Meter: "m", Quantity: "1.25", OccurredAt: now.Add(-50 * time.Minute)},
				{IdempotencyKey: "k2", InstanceID: "ppu-1", Meter: "m", Quantity: "0.5", OccurredAt: now.Add(-40 * time.Minute)},
			}, koogallery.MaxUsageValue)
			require.NoError(t, err)
			pusher := &capturePusher{}
			a := &activities.Activities{Store: db, Usage: pusher, UsageValueForm: tt.form}
			_, err = a.CloseUsagePeriods(t.Context(), activities.ClosePeriodsInput{InstanceID: "ppu-1",
				Periods: []activities.Span{{Start: now.Add(-time.Hour), End: now}}, Billable: true, At: now})
			require.NoError(t, err)

			res, err := a.PushUsage(t.Context(), activities.PushUsageInput{InstanceID: "ppu-1", Now: now.Add(5 * time.Minute)})
			require.NoError(t, err)
			require.Equal(t, 1, res.Pushed, res.Error)
			require.Len(t, pusher.records, 1)
			value, err := json.Marshal(struct {
				V koogallery.UsageValue `json:"usage_value"`
			}{pusher.records[0].UsageValue})
			require.NoError(t, err)
			require.Equal(t, tt.want, string(value))
		})
	}
}
