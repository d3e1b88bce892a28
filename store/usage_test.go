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

var hour0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func at(h int, m int) time.Time {
	return hour0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// payPerUse creates an active pay-per-use instance of a customer and skuCode.
func payPerUse(t *testing.T, db *store.DB, id, customer, sku string) {
	t.Helper()
	rec := allocate(t, db, id)
	written, err := db.Instances.SaveInstance(t.Context(), store.Instance{
		InstanceID: id, OrderID: rec.Key.OrderID, OrderLineID: rec.Key.OrderLineID, State: "active",
		ChargingMode: "ON_DEMAND", CustomerID: customer, SkuCode: sku, Revision: 1,
	}, nil)
	require.NoError(t, err)
	require.True(t, written)
}

func usage(key, instance, quantity string, when time.Time) store.Usage {
	return store.Usage{IdempotencyKey: key, InstanceID: instance, Meter: "api-calls", Quantity: quantity, OccurredAt: when}
}

func closePeriod(t *testing.T, db *store.DB, instance string, h int, billable bool) store.ClosedPeriod {
	t.Helper()
	p, err := db.Metering.CloseUsagePeriod(t.Context(), activities.WithMeteringRules(store.ClosePeriod{
		InstanceID: instance, Start: at(h, 0), End: at(h+1, 0), Billable: billable, At: at(h+1, 5),
	}))
	require.NoError(t, err)
	return p
}

func TestInsertUsageStoresEachKeyOnce(t *testing.T) {
	db := newDB(t)
	payPerUse(t, db, "ppu-1", "cust", "sku")
	batch := []store.Usage{
		usage("k1", "ppu-1", "1.5", at(0, 1)),
		usage("k2", "ppu-1", "2", at(0, 2)),
		usage("k3", "ppu-1", "0.0001", at(0, 3)),
	}

	first, _, err := db.Metering.InsertUsage(t.Context(), batch, koogallery.MaxUsageValue)
	require.NoError(t, err)
	again, _, err := db.Metering.InsertUsage(t.Context(), append(batch, usage("k4", "ppu-1", "4", at(0, 4))), koogallery.MaxUsageValue)
	require.NoError(t, err)

	require.Equal(t, 3, first)
	require.Equal(t, 1, again, "only k4 is new")
	sum, err := db.Metering.UsageSummaryOf(t.Context(), "ppu-1")
	require.NoError(t, err)
	require.Equal(t, "7.5001", sum.Reported)
	require.Equal(t, "7.5001", sum.Unassigned)
}

func TestInsertUsageRefusesUnknownInstances(t *testing.T) {
	db := newDB(t)

	_, _, err := db.Metering.InsertUsage(t.Context(), []store.Usage{usage("k1", "nobody", "1", at(0, 1))}, koogallery.MaxUsageValue)

	require.Error(t, err)
}

func TestCloseUsagePeriod(t *testing.T) {
	db := newDB(t)
	payPerUse(t, db, "ppu-1", "cust", "sku")
	_, _, err := db.Metering.InsertUsage(t.Context(), []store.Usage{
		usage("a", "ppu-1", "1.5", at(0, 0)),
		usage("b", "ppu-1", "2.25", at(0, 59)),
		usage("c", "ppu-1", "3", at(1, 0)), // on the boundary: the next period
	}, koogallery.MaxUsageValue)
	require.NoError(t, err)

	first := closePeriod(t, db, "ppu-1", 0, true)
	again := closePeriod(t, db, "ppu-1", 0, true)
	// Usage of hour 0 reported after hour 0 was closed goes to the next
	// period to close: late, but billed once.
	_, _, err = db.Metering.InsertUsage(t.Context(), []store.Usage{usage("late", "ppu-1", "0.5", at(0, 30))}, koogallery.MaxUsageValue)
	require.NoError(t, err)
	second := closePeriod(t, db, "ppu-1", 1, true)
	empty := closePeriod(t, db, "ppu-1", 2, true)

	require.Equal(t, "3.7500", first.Quantity)
	require.Equal(t, store.PeriodPending, first.State)
	require.Equal(t, at(0, 0), first.PeriodStart.UTC())
	require.Equal(t, at(1, 0), first.PeriodEnd.UTC())
	require.Equal(t, activities.MeteringSN("ppu-1", at(0, 0)), first.MeteringSN)
	require.Empty(t, first.RelatePkgInstance)
	require.Equal(t, first, again, "closing twice changes nothing")
	require.Equal(t, "3.5000", second.Quantity)
	require.Equal(t, store.PeriodEmpty, empty.State)
	require.Equal(t, "0.0000", empty.Quantity)

	pending, err := db.Metering.PendingUsagePeriods(t.Context(), "ppu-1", 10)
	require.NoError(t, err)
	require.Len(t, pending, 2)
	require.Equal(t, at(0, 0), pending[0].PeriodStart.UTC(), "oldest first")
	require.Equal(t, at(1, 0), pending[1].PeriodStart.UTC())
	n, err := db.Metering.PendingUsageCount(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
}

func TestFrozenUsageIsNotBilled(t *testing.T) {
	db := newDB(t)
	payPerUse(t, db, "ppu-1", "cust", "sku")
	_, _, err := db.Metering.InsertUsage(t.Context(), []store.Usage{
		usage("before", "ppu-1", "1", at(0, 10)),
		usage("frozen", "ppu-1", "5", at(0, 40)),
		usage("after", "ppu-1", "2", at(1, 30)),
	}, koogallery.MaxUsageValue)
	require.NoError(t, err)

	// Frozen from 00:30 (its partial period closed) to 01:15.
	_, err = db.Metering.CloseUsagePeriod(t.Context(), activities.WithMeteringRules(store.ClosePeriod{InstanceID: "ppu-1", Start: at(0, 0), End: at(0, 30), Billable: true, At: at(0, 30)}))
	require.NoError(t, err)
	// Usage of 00:20, before the freeze, reported while frozen: late, but
	// billable.
	_, _, err = db.Metering.InsertUsage(t.Context(), []store.Usage{usage("late", "ppu-1", "0.25", at(0, 20))}, koogallery.MaxUsageValue)
	require.NoError(t, err)
	excluded, err := db.Metering.MarkUsageUnbilled(t.Context(), "ppu-1", at(0, 30), at(1, 15))
	require.NoError(t, err)
	resumed, err := db.Metering.CloseUsagePeriod(t.Context(), activities.WithMeteringRules(store.ClosePeriod{InstanceID: "ppu-1", Start: at(1, 15), End: at(2, 0), Billable: true, At: at(2, 5)}))
	require.NoError(t, err)

	require.Equal(t, 1, excluded)
	require.Equal(t, "2.2500", resumed.Quantity)
	sum, err := db.Metering.UsageSummaryOf(t.Context(), "ppu-1")
	require.NoError(t, err)
	require.Equal(t, "8.2500", sum.Reported)
	require.Equal(t, "3.2500", sum.Closed)
	require.Equal(t, "0.0000", sum.Unassigned)
}

func TestCloseUnbillableSpan(t *testing.T) {
	db := newDB(t)
	payPerUse(t, db, "ppu-1", "cust", "sku")
	_, _, err := db.Metering.InsertUsage(t.Context(), []store.Usage{usage("a", "ppu-1", "4", at(0, 10))}, koogallery.MaxUsageValue)
	require.NoError(t, err)

	p := closePeriod(t, db, "ppu-1", 0, false)

	require.Equal(t, store.PeriodEmpty, p.State)
	require.Equal(t, "0.0000", p.Quantity)
	require.Equal(t, "4.0000", p.Unbilled)
}

func TestPushedFailedAndExpiredPeriods(t *testing.T) {
	db := newDB(t)
	payPerUse(t, db, "ppu-1", "cust", "sku")
	for h := range 4 {
		_, _, err := db.Metering.InsertUsage(t.Context(), []store.Usage{usage(fmt.Sprint(h), "ppu-1", "1", at(h, 1))}, koogallery.MaxUsageValue)
		require.NoError(t, err)
		closePeriod(t, db, "ppu-1", h, true)
	}

	first3 := []string{activities.MeteringSN("ppu-1", at(0, 0)), activities.MeteringSN("ppu-1", at(1, 0)), activities.MeteringSN("ppu-1", at(2, 0))}
	require.NoError(t, db.Metering.MarkPeriodsPushFailed(t.Context(), first3, "HTTP 500 MKT.0999"))
	expired, err := db.Metering.ExpireUsagePeriods(t.Context(), "ppu-1", at(1, 0))
	require.NoError(t, err)
	require.NoError(t, db.Metering.MarkPeriodsPushed(t.Context(), first3, at(5, 0)))

	require.Len(t, expired, 1)
	require.Equal(t, at(0, 0), expired[0].PeriodStart.UTC())
	periods, err := db.Metering.UsagePeriodsOf(t.Context(), "ppu-1", at(0, 0), at(24, 0), 10)
	require.NoError(t, err)
	require.Len(t, periods, 4)
	require.Equal(t, store.PeriodExpired, periods[0].State, "an expired period is never pushed")
	require.Equal(t, 1, periods[0].Attempts)
	require.Equal(t, "HTTP 500 MKT.0999", periods[0].LastError)
	require.Equal(t, store.PeriodPushed, periods[1].State)
	require.Equal(t, 2, periods[1].Attempts)
	require.Empty(t, periods[1].LastError)
	require.Equal(t, at(5, 0), periods[1].PushedAt.UTC())
	require.Equal(t, store.PeriodPending, periods[3].State)

	sum, err := db.Metering.UsageSummaryOf(t.Context(), "ppu-1")
	require.NoError(t, err)
	require.Equal(t, store.UsageSummary{
		Reported: "4.0000", Unassigned: "0.0000", Closed: "3.0000", Billed: "3.0000", Pushed: "2.0000", Pending: 1, Expired: 1,
		Unbilled: "1.0000", LastClosedAt: sum.LastClosedAt,
	}, sum)
	require.Equal(t, at(4, 5), sum.LastClosedAt.UTC())
}

func TestPackagesStopWhenUsedUp(t *testing.T) {
	db := newDB(t)
	payPerUse(t, db, "ppu-a", "cust", "sku")
	payPerUse(t, db, "ppu-b", "cust", "sku")
	payPerUse(t, db, "ppu-other-sku", "cust", "sku-2")
	payPerUse(t, db, "ppu-other-customer", "cust-2", "sku")
	register := func(id, quota string) []string {
		covered, err := db.Metering.RegisterPackage(t.Context(), store.UsagePackage{PackageInstanceID: id, CustomerID: "cust", SkuCode: "sku", Quota: quota})
		require.NoError(t, err)
		return covered
	}
	report := func(key, instance, quantity string, h int) {
		_, _, err := db.Metering.InsertUsage(t.Context(), []store.Usage{usage(key, instance, quantity, at(h, 10))}, koogallery.MaxUsageValue)
		require.NoError(t, err)
	}

	covered := register("pkg-1", "10")
	require.Equal(t, []string{"ppu-a", "ppu-b"}, covered, "the customer's pay-per-use instances of the skuCode")
	require.Equal(t, covered, register("pkg-1", "10"), "registering again changes nothing")

	report("a0", "ppu-a", "6", 0)
	a0 := closePeriod(t, db, "ppu-a", 0, true)
	report("b0", "ppu-b", "7", 0)
	b0 := closePeriod(t, db, "ppu-b", 0, true)
	report("a1", "ppu-a", "1", 1)
	a1 := closePeriod(t, db, "ppu-a", 1, true)
	register("pkg-2", "5")
	report("a2", "ppu-a", "2", 2)
	a2 := closePeriod(t, db, "ppu-a", 2, true)
	register("pkg-3", "100")
	report("b1", "ppu-b", "3", 1)
	b1 := closePeriod(t, db, "ppu-b", 1, true)
	report("b2", "ppu-b", "2", 2)
	b2 := closePeriod(t, db, "ppu-b", 2, true)
	report("other", "ppu-other-sku", "50", 0)
	other := closePeriod(t, db, "ppu-other-sku", 0, true)

	require.Equal(t, "6.0000", a0.Quantity)
	require.Equal(t, "pkg-1", a0.RelatePkgInstance)
	require.Empty(t, a0.PackageExhausted)
	// 4 left in pkg-1: 4 billed to it, 3 over the quota are not billed and
	// the service stops.
	require.Equal(t, "4.0000", b0.Quantity)
	require.Equal(t, "3.0000", b0.Unbilled)
	require.Equal(t, "pkg-1", b0.RelatePkgInstance)
	require.Equal(t, "pkg-1", b0.PackageExhausted)
	// No quota anywhere: nothing billed, still exhausted.
	require.Equal(t, store.PeriodEmpty, a1.State)
	require.Equal(t, "1.0000", a1.Unbilled)
	require.Equal(t, "pkg-1", a1.PackageExhausted)
	// A new package: drawn on, and used up exactly; a third one arrives.
	require.Equal(t, "2.0000", a2.Quantity)
	require.Equal(t, "pkg-2", a2.RelatePkgInstance)
	require.Empty(t, a2.PackageExhausted)
	require.Equal(t, "3.0000", b1.Quantity)
	require.Equal(t, "pkg-2", b1.RelatePkgInstance)
	require.Empty(t, b1.PackageExhausted, "pkg-3 still has quota")
	require.Equal(t, "pkg-3", b2.RelatePkgInstance)
	require.Equal(t, "50.0000", other.Quantity, "other skuCodes are plain pay-per-use")
	require.Empty(t, other.RelatePkgInstance)

	totals, err := db.Metering.UsageTotals(t.Context(), []string{"pkg-1", "pkg-2", "ppu-a"})
	require.NoError(t, err)
	require.Len(t, totals["pkg-1"], 2)
	require.Equal(t, "ppu-a", totals["pkg-1"][0].Related)
	require.Equal(t, "6.0000", totals["pkg-1"][0].Quantity)
	require.Equal(t, "ppu-b", totals["pkg-1"][1].Related)
	require.Equal(t, "4.0000", totals["pkg-1"][1].Quantity)
	require.Len(t, totals["pkg-2"], 2)
	require.Len(t, totals["ppu-a"], 1)
	require.Equal(t, "8.0000", totals["ppu-a"][0].Quantity, "billed: 6 + 2")

	p1, err := db.Metering.Package(t.Context(), "pkg-1")
	require.NoError(t, err)
	require.Equal(t, "10.0000", p1.Consumed)
	require.Equal(t, p1.Quota, p1.Consumed)

	// A released package no longer covers anything; the instances stay
	// under the stop rule rather than overflow into pay-per-use billing.
	require.NoError(t, db.Metering.DeactivatePackage(t.Context(), "pkg-3"))
	report("b3", "ppu-b", "1", 3)
	b3 := closePeriod(t, db, "ppu-b", 3, true)
	require.Equal(t, store.PeriodEmpty, b3.State)
	require.Equal(t, "pkg-3", b3.PackageExhausted)
}

// A package whose content resets: at the boundary what it consumed becomes
// what periods ending after the boundary drew on it, so its quota is back;
// a reset run again (a retry) loses nothing drawn since; the instances it
// covers are returned; its current cycle's usage is read per instance.
func TestResetPackage(t *testing.T) {
	db := newDB(t)
	payPerUse(t, db, "ppu-a", "cust", "sku")
	payPerUse(t, db, "ppu-b", "cust", "sku")
	_, err := db.Metering.RegisterPackage(t.Context(), store.UsagePackage{PackageInstanceID: "pkg-r", CustomerID: "cust", SkuCode: "sku", Quota: "10"})
	require.NoError(t, err)
	report := func(key, instance, quantity string, h int) {
		_, _, err := db.Metering.InsertUsage(t.Context(), []store.Usage{usage(key, instance, quantity, at(h, 10))}, koogallery.MaxUsageValue)
		require.NoError(t, err)
	}

	report("a0", "ppu-a", "6", 0)
	closePeriod(t, db, "ppu-a", 0, true)
	report("b0", "ppu-b", "5", 0)
	b0 := closePeriod(t, db, "ppu-b", 0, true)
	require.Equal(t, "pkg-r", b0.PackageExhausted, "used up in the first cycle")

	// The boundary at 01:00: the quota is back.
	boundary := at(1, 0)
	covered, err := db.Metering.ResetPackage(t.Context(), "pkg-r", boundary)
	require.NoError(t, err)
	require.Equal(t, []string{"ppu-a", "ppu-b"}, covered)
	p, err := db.Metering.Package(t.Context(), "pkg-r")
	require.NoError(t, err)
	require.Equal(t, "0.0000", p.Consumed)

	report("a1", "ppu-a", "3", 1)
	a1 := closePeriod(t, db, "ppu-a", 1, true)
	require.Equal(t, "3.0000", a1.Quantity, "drawn on the new cycle's quota")
	require.Equal(t, "pkg-r", a1.RelatePkgInstance)
	require.Empty(t, a1.PackageExhausted)

	// A retried reset of the same cycle keeps what was drawn in it.
	_, err = db.Metering.ResetPackage(t.Context(), "pkg-r", boundary)
	require.NoError(t, err)
	p, err = db.Metering.Package(t.Context(), "pkg-r")
	require.NoError(t, err)
	require.Equal(t, "3.0000", p.Consumed)

	cycle, err := db.Metering.PackageUsageSince(t.Context(), "pkg-r", boundary)
	require.NoError(t, err)
	require.Len(t, cycle, 1)
	require.Equal(t, "ppu-a", cycle[0].Related)
	require.Equal(t, "3.0000", cycle[0].Quantity)
	all, err := db.Metering.PackageUsageSince(t.Context(), "pkg-r", time.Time{})
	require.NoError(t, err)
	require.Len(t, all, 2, "both instances over every cycle")

	_, err = db.Metering.ResetPackage(t.Context(), "pkg-unknown", boundary)
	require.ErrorIs(t, err, store.ErrNotFound)
}
