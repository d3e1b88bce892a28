package activities_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
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
