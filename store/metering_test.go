package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// metered registers a pay-per-use instance with the collector, metered
// hourly from openSince and closed 5 minutes after each hour.
func metered(t *testing.T, db *store.DB, id string, openSince time.Time) {
	t.Helper()
	payPerUse(t, db, id, "cust-"+id, "sku")
	ok, err := db.Metering.RegisterMetered(t.Context(), store.MeteredInstance{
		InstanceID: id, Period: time.Hour, Delay: 5 * time.Minute, OpenSince: openSince,
		SNPrefix: activities.MeteringSNPrefix(id),
	})
	require.NoError(t, err)
	require.True(t, ok)
}

func report(t *testing.T, db *store.DB, records ...store.Usage) {
	t.Helper()
	_, refused, err := db.Metering.InsertUsage(t.Context(), records, koogallery.MaxUsageValue)
	require.NoError(t, err)
	require.Empty(t, refused)
}

// ledger lists an instance's periods.
func ledger(t *testing.T, db *store.DB, id string) []string {
	t.Helper()
	periods, err := db.Metering.UsagePeriodsOf(t.Context(), id, at(-24, 0), at(48, 0), 1000)
	require.NoError(t, err)
	var out []string
	for _, p := range periods {
		require.Equal(t, activities.MeteringSN(id, p.PeriodStart), p.MeteringSN, "the serial number the per-instance close gives")
		out = append(out, fmt.Sprintf("%s–%s %s %s", p.PeriodStart.UTC().Format("15:04:05"), p.PeriodEnd.UTC().Format("15:04:05"), p.Quantity, p.State))
	}
	return out
}

// The set-based close of all instances gives the periods the close of one
// instance at a time gives (CloseUsagePeriod's rules): the first period
// from the start to the next hour, late usage in the first period closed,
// catch-up of every hour after an outage, and nothing closed before the
// delay has passed.
func TestCloseDueUncoveredMatchesThePerInstanceClose(t *testing.T) {
	start := at(0, 20)
	setBased, oneByOne := newDB(t), newDB(t)
	for _, db := range []*store.DB{setBased, oneByOne} {
		metered(t, db, "ppu-1", start)
		report(t, db,
			usage("a", "ppu-1", "1.5", at(0, 25)),
			usage("b", "ppu-1", "2", at(0, 59)),
			usage("c", "ppu-1", "3", at(1, 0)), // on the boundary: the next period
			usage("d", "ppu-1", "0.25", at(3, 10)),
			usage("e", "ppu-1", "7", at(5, 0)), // not closed yet
		)
	}
	closeSetBased := func(now time.Time) store.CloseDueResult {
		res, err := setBased.Metering.CloseDueUncovered(t.Context(), now, 100)
		require.NoError(t, err)
		return res
	}
	closeOne := func(now time.Time) {
		_, err := oneByOne.Metering.CloseMetered(t.Context(), store.CloseMetered{
			InstanceID: "ppu-1", Change: store.MeteringDue, Now: now, Rules: activities.WithMeteringRules,
		})
		require.NoError(t, err)
	}

	require.Equal(t, store.CloseDueResult{}, closeSetBased(at(1, 4)), "not before the delay")
	closeOne(at(1, 4))
	require.Equal(t, store.CloseDueResult{Instances: 1, Periods: 1, Records: 2}, closeSetBased(at(1, 5)))
	closeOne(at(1, 5))
	require.Equal(t, store.CloseDueResult{}, closeSetBased(at(1, 6)), "closed once")
	for _, db := range []*store.DB{setBased, oneByOne} {
		report(t, db, usage("late", "ppu-1", "0.5", at(0, 30)))
	}
	// Down until 04:40: hours 1, 2 and 3 are caught up in one close.
	require.Equal(t, store.CloseDueResult{Instances: 1, Periods: 2, Records: 3}, closeSetBased(at(4, 40)))
	closeOne(at(4, 40))

	want := []string{
		"10:20:00–11:00:00 3.5000 pending",
		"11:00:00–12:00:00 3.5000 pending", // 3 at 11:00, and the late 0.5
		"12:00:00–13:00:00 0.0000 empty",
		"13:00:00–14:00:00 0.2500 pending",
	}
	require.Equal(t, want, ledger(t, setBased, "ppu-1"))
	require.Equal(t, want, ledger(t, oneByOne, "ppu-1"))
	next, err := setBased.Metering.NextMeteringClose(t.Context())
	require.NoError(t, err)
	require.Equal(t, at(5, 5), next.UTC())
}

// One close takes at most limit instances; the next takes the others.
func TestCloseDueUncoveredInChunks(t *testing.T) {
	db := newDB(t)
	for i := range 5 {
		id := fmt.Sprintf("ppu-%d", i)
		metered(t, db, id, at(0, 0))
		report(t, db, usage("u-"+id, id, "1", at(0, 10)))
	}
	var closed []int
	for {
		res, err := db.Metering.CloseDueUncovered(t.Context(), at(1, 5), 2)
		require.NoError(t, err)
		closed = append(closed, res.Instances)
		if res.Instances < 2 {
			break
		}
	}
	require.Equal(t, []int{2, 2, 1}, closed)
	pending, err := db.Metering.OldestPendingPeriods(t.Context(), 10)
	require.NoError(t, err)
	require.Len(t, pending, 5)
}

// An instance a package covers is left to CloseMetered, which draws its
// usage on the package.
func TestCoveredInstancesCloseOneByOne(t *testing.T) {
	db := newDB(t)
	metered(t, db, "ppu-1", at(0, 0))
	metered(t, db, "ppu-2", at(0, 0))
	_, err := db.Metering.RegisterPackage(t.Context(), store.UsagePackage{PackageInstanceID: "pkg", CustomerID: "cust-ppu-2", SkuCode: "sku", Quota: "10"})
	require.NoError(t, err)
	report(t, db, usage("u1", "ppu-1", "4", at(0, 10)), usage("u2", "ppu-2", "4", at(0, 10)))

	res, err := db.Metering.CloseDueUncovered(t.Context(), at(1, 5), 100)
	require.NoError(t, err)
	require.Equal(t, 1, res.Instances)
	covered, err := db.Metering.DueCovered(t.Context(), at(1, 5), 100)
	require.NoError(t, err)
	require.Equal(t, []string{"ppu-2"}, covered)
	closed, err := db.Metering.CloseMetered(t.Context(), store.CloseMetered{
		InstanceID: "ppu-2", Change: store.MeteringDue, Now: at(1, 5), Rules: activities.WithMeteringRules,
	})
	require.NoError(t, err)
	require.Equal(t, 1, closed.Periods)
	pending, err := db.Metering.OldestPendingPeriods(t.Context(), 10)
	require.NoError(t, err)
	require.Len(t, pending, 2)
	require.Equal(t, "pkg", pending[1].RelatePkgInstance)
	covered, err = db.Metering.DueCovered(t.Context(), at(1, 5), 100)
	require.NoError(t, err)
	require.Empty(t, covered)
}

// A freeze closes the partial period and stops the closes; the usage
// reported while frozen is not billed; the unfreeze meters again from its
// moment; the release closes the last partial period and ends the
// metering.
func TestMeteredFreezeUnfreezeRelease(t *testing.T) {
	db := newDB(t)
	metered(t, db, "ppu-1", at(0, 0))
	report(t, db,
		usage("before", "ppu-1", "1", at(0, 10)),
		usage("frozen", "ppu-1", "5", at(0, 40)),
		usage("after", "ppu-1", "2", at(1, 20)),
		usage("last", "ppu-1", "3", at(2, 10)),
	)
	change := func(kind string, when time.Time) {
		_, err := db.Metering.CloseMetered(t.Context(), store.CloseMetered{
			InstanceID: "ppu-1", Change: kind, At: when, Now: when, Rules: activities.WithMeteringRules,
		})
		require.NoError(t, err)
	}
	change(store.MeteringPause, at(0, 30))
	res, err := db.Metering.CloseDueUncovered(t.Context(), at(3, 5), 100)
	require.NoError(t, err)
	require.Zero(t, res.Instances, "a frozen instance is not metered")
	require.NoError(t, db.Metering.ResumeMetered(t.Context(), "ppu-1", at(1, 15)))
	require.NoError(t, db.Metering.ResumeMetered(t.Context(), "ppu-1", at(1, 16)), "a second unfreeze changes nothing")
	res, err = db.Metering.CloseDueUncovered(t.Context(), at(2, 5), 100)
	require.NoError(t, err)
	require.Equal(t, 1, res.Instances)
	change(store.MeteringStop, at(2, 30))
	change(store.MeteringStop, at(2, 45)) // redelivered: nothing more
	res, err = db.Metering.CloseDueUncovered(t.Context(), at(9, 5), 100)
	require.NoError(t, err)
	require.Zero(t, res.Instances, "a released instance is not metered")

	require.Equal(t, []string{
		"10:00:00–10:30:00 1.0000 pending",
		"11:15:00–12:00:00 2.0000 pending",
		"12:00:00–12:30:00 3.0000 pending",
	}, ledger(t, db, "ppu-1"), "nothing between the freeze and the unfreeze")
	summary, err := db.Metering.UsageSummaryOf(t.Context(), "ppu-1")
	require.NoError(t, err)
	require.Equal(t, "11.0000", summary.Reported)
	require.Equal(t, "6.0000", summary.Closed, "the usage while frozen is not billed")
	require.Equal(t, "0.0000", summary.Unassigned, "and not left open")
}

// The pushes read the oldest pending periods of all instances, and mark,
// hold and expire them by serial number.
func TestPushesAcrossInstances(t *testing.T) {
	db := newDB(t)
	metered(t, db, "ppu-b", at(0, 0))
	metered(t, db, "ppu-a", at(0, 0))
	report(t, db,
		usage("b0", "ppu-b", "1", at(0, 10)), usage("a0", "ppu-a", "1", at(0, 10)),
		usage("b1", "ppu-b", "1", at(1, 10)), usage("a1", "ppu-a", "1", at(1, 10)),
	)
	_, err := db.Metering.CloseDueUncovered(t.Context(), at(2, 5), 100)
	require.NoError(t, err)
	pending, err := db.Metering.OldestPendingPeriods(t.Context(), 3)
	require.NoError(t, err)
	var order []string
	for _, p := range pending {
		order = append(order, p.InstanceID+" "+p.PeriodStart.UTC().Format("15:04"))
	}
	require.Equal(t, []string{"ppu-a 10:00", "ppu-b 10:00", "ppu-a 11:00"}, order, "oldest first")

	require.NoError(t, db.Metering.MarkPeriodsPushed(t.Context(), []string{pending[0].MeteringSN, pending[1].MeteringSN}, at(2, 6)))
	held, err := db.Metering.HoldPeriod(t.Context(), pending[2].MeteringSN, "MKT.9001 instance_id not found")
	require.NoError(t, err)
	require.True(t, held)
	held, err = db.Metering.HoldPeriod(t.Context(), pending[2].MeteringSN, "again")
	require.NoError(t, err)
	require.False(t, held, "only a pending period is held")
	require.NoError(t, db.Metering.MarkPeriodsPushFailed(t.Context(), []string{pending[0].MeteringSN}, "late"))

	left, err := db.Metering.OldestPendingPeriods(t.Context(), 10)
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, "ppu-b", left[0].InstanceID)
	expired, err := db.Metering.ExpireAllUsagePeriods(t.Context(), at(1, 1))
	require.NoError(t, err)
	require.Equal(t, []store.ExpiredPeriods{{InstanceID: "ppu-b", Periods: 1}}, expired)
	summary, err := db.Metering.UsageSummaryOf(t.Context(), "ppu-a")
	require.NoError(t, err)
	require.Equal(t, "1.0000", summary.Pushed, "a failure recorded after the push changes nothing")
	require.Equal(t, 1, summary.Held)
}

// Registering twice keeps the first registration: the row may have moved
// on since.
func TestRegisterMeteredOnce(t *testing.T) {
	db := newDB(t)
	metered(t, db, "ppu-1", at(0, 20))
	ok, err := db.Metering.RegisterMetered(t.Context(), store.MeteredInstance{
		InstanceID: "ppu-1", Period: time.Hour, Delay: 5 * time.Minute, OpenSince: at(3, 0), SNPrefix: "x",
	})
	require.NoError(t, err)
	require.False(t, ok)
	next, err := db.Metering.NextMeteringClose(t.Context())
	require.NoError(t, err)
	require.Equal(t, at(1, 5), next.UTC())
	_, err = db.Metering.RegisterMetered(t.Context(), store.MeteredInstance{
		InstanceID: "ppu-2", Period: 1500 * time.Microsecond, OpenSince: at(0, 0), SNPrefix: "x",
	})
	require.ErrorContains(t, err, "whole milliseconds")
}
