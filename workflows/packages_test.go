package workflows

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
)

// A package bought on 31 January: its monthly boundaries keep the day,
// clamped to the month's last day, and never drift after a short month.
var (
	pkgStart  = time.Date(2026, 1, 31, 8, 0, 0, 0, time.UTC)
	pkgExpire = time.Date(2027, 1, 31, 8, 0, 0, 0, time.UTC)
	// pkgResets are the boundaries within its year.
	pkgResets = []time.Time{
		time.Date(2026, 2, 28, 8, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 4, 30, 8, 0, 0, 0, time.UTC), time.Date(2026, 5, 31, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 6, 30, 8, 0, 0, 0, time.UTC), time.Date(2026, 7, 31, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 8, 31, 8, 0, 0, 0, time.UTC), time.Date(2026, 9, 30, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 31, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 8, 0, 0, 0, time.UTC),
	}
)

func TestCycleBoundary(t *testing.T) {
	for i, want := range pkgResets {
		require.Equal(t, want, cycleBoundary(pkgStart, activities.PackageResetMonthly, i+1), "boundary %d", i+1)
	}
	require.Equal(t, pkgStart, cycleBoundary(pkgStart.In(time.FixedZone("CST", 8*3600)), activities.PackageResetMonthly, 0))
	leap := time.Date(2028, 2, 29, 12, 30, 0, 0, time.UTC)
	require.Equal(t, time.Date(2029, 2, 28, 12, 30, 0, 0, time.UTC), cycleBoundary(leap, activities.PackageResetYearly, 1))
	require.Equal(t, time.Date(2032, 2, 29, 12, 30, 0, 0, time.UTC), cycleBoundary(leap, activities.PackageResetYearly, 4))
	c := PackageCycle{Reset: activities.PackageResetMonthly, Anchor: pkgStart, Number: 1}
	require.Equal(t, pkgResets[0], c.Start())
	require.Equal(t, pkgResets[1], c.End())
	// Rehearsing on the emulator's clock (a day in 10 s): 28 days in 280 s.
	c.Scale = 8640
	require.Equal(t, pkgStart.Add(28*10*time.Second), c.Start())
	require.Equal(t, pkgStart.Add((28+31)*10*time.Second), c.End())
}

// A year of a package whose content resets monthly: at each boundary its
// quota is reset for the new cycle (the store's ResetPackage) and the
// instances it covers are told, so that one stopped for quota resumes; the
// state shows the cycle and the next reset.
func TestPackageResetsMonthlyForAYear(t *testing.T) {
	app := newFakeApp()
	app.policy.PackageReset = activities.PackageResetMonthly
	app.resetCovered = []string{"ppu-1"}
	expire := pkgExpire
	in := app.withOrder(order("PKG", "ON_DEMAND_PKG", "NEW", "year", 1, &expire))
	env := newEnv(t, app)
	env.SetStartTime(pkgStart)
	var told []Internal
	env.OnSignalExternalWorkflow(mock.Anything, InstanceWorkflowID("ppu-1"), "", InternalSignal, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			told = append(told, arg.(Internal))
			return nil
		})
	inMay := stateAt(t, env, pkgResets[3].Add(time.Hour).Sub(pkgStart))
	signalAt(env, pkgExpire.Add(-time.Hour).Sub(pkgStart), releaseCB(2))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var resets []string
	for _, c := range app.Calls() {
		if strings.HasPrefix(c, "ResetPackage ") {
			resets = append(resets, strings.TrimPrefix(c, "ResetPackage "))
		}
	}
	var want []string
	for _, b := range pkgResets {
		want = append(want, b.Format(time.RFC3339))
		// Each reset fired at its boundary.
		e := eventByKey(t, app, "deadline/package-reset/"+b.Format(time.RFC3339))
		require.Equal(t, "package", e.Kind)
		require.Contains(t, e.Message, "its whole quota is back")
	}
	require.Equal(t, want, resets, "one reset per boundary, none at the expiry")
	require.Len(t, told, len(pkgResets), "the covered instance is told at each reset")
	for _, m := range told {
		require.Equal(t, Internal{Kind: InternalQuotaRestored, Package: "inst-1", Reset: activities.PackageResetMonthly}, m)
	}

	require.Equal(t, &PackageCycle{Reset: activities.PackageResetMonthly, Anchor: pkgStart, Number: 4}, inMay.PackageCycle)
	requireDeadline(t, inMay, DeadlinePackageReset, pkgResets[4])
	saved := lastSave(t, app)
	require.NotNil(t, saved.Details.PackageCycle)
	require.Equal(t, activities.PackageCycleDetails{Reset: "monthly", Number: 11, Start: pkgResets[10], End: pkgExpire},
		*saved.Details.PackageCycle)
	require.Len(t, eventsOfKind(app, "package"), 2+len(pkgResets), "registered, cycles, and each reset")
}

// A pay-per-use instance covered by that package uses up one month's quota
// early: it stops (frozen by quota) and resumes when the package's next
// cycle begins; the other resets change nothing for it. Periods are daily
// so that the year runs quickly.
func TestQuotaResetUnfreezesAnInstanceStoppedForQuota(t *testing.T) {
	app, in := payPerUseApp()
	app.policy.MeteringPeriod = 24 * time.Hour
	usedUp := pkgResets[1].Add(5 * 24 * time.Hour) // 5 April, in the cycle from 31 March
	app.setQuotaUsedUpAt(&usedUp)
	env := newEnv(t, app)
	env.SetStartTime(pkgStart)
	for _, b := range pkgResets {
		env.RegisterDelayedCallback(func() {
			if b.Equal(pkgResets[2]) {
				app.setQuotaUsedUpAt(nil) // the store's reset
			}
			env.SignalWorkflow(InternalSignal, Internal{Kind: InternalQuotaRestored, Package: "pkg-1", Reset: activities.PackageResetMonthly})
		}, b.Sub(pkgStart))
	}
	stopped := stateAt(t, env, pkgResets[2].Add(-time.Hour).Sub(pkgStart))
	resumed := stateAt(t, env, pkgResets[2].Add(time.Hour).Sub(pkgStart))
	signalAt(env, pkgExpire.Sub(pkgStart), releaseCB(2))

	env.ExecuteWorkflow(InstanceWorkflowName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, StateFrozen, stopped.State)
	require.Equal(t, FrozenByQuota, stopped.FrozenBy)
	require.Equal(t, StateActive, resumed.State)
	require.Equal(t, []string{"FetchOrder PPU", "Provision", "Freeze", "Unfreeze", "Release"}, app.tenantCalls())
	// The daily period that used the quota up ended at midnight on 6 April
	// and was closed 5 minutes later: the service stopped then, until the
	// reset of 30 April.
	stoppedAt := time.Date(2026, 4, 6, 0, 5, 0, 0, time.UTC)
	require.Equal(t, []Span{{Start: stoppedAt, End: pkgResets[2]}}, app.excluded)
	resumedEvents := slices.DeleteFunc(savedEvents(app), func(e Event) bool { return !strings.Contains(e.Message, "content reset") })
	require.Len(t, resumedEvents, 1, "only the reset that found it stopped resumes it")
	require.Contains(t, resumedEvents[0].Message, "Package pkg-1's content reset (monthly)")
}
