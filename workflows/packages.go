package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// Packages whose content resets (套餐包 按月/按年重置): the quota comes back
// at each boundary of the package's validity, counted from its start, and
// the instances it covers that stopped for quota (用完即停) resume.

// packageResetChange is the GetVersion change ID of the cycles of packages
// whose content resets; packages provisioned before it never reset.
const packageResetChange = "package-reset-cycles"

// maxCatchUpCycles bounds the cycles a reset skips at once (a package
// that was frozen for years); nothing real comes near it.
const maxCatchUpCycles = 10000

// PackageCycle is where a package whose content resets stands: its quota
// is counted in cycle Number (0 the first), which runs from Start to End.
type PackageCycle struct {
	// Reset is activities.PackageResetMonthly or PackageResetYearly.
	Reset string
	// Anchor is the package's start, the first cycle's start; every
	// boundary is counted from it, so a clamped month end (28 February)
	// never shifts the next one (31 March).
	Anchor time.Time
	Number int
	// Scale > 1 runs the months that many times faster (a rehearsal
	// against the emulator's clock: Policy.PackageResetScale).
	Scale float64 `json:",omitempty"`
}

// Start is when the current cycle began.
func (c PackageCycle) Start() time.Time { return c.boundary(c.Number) }

// End is when the current cycle ends and the next begins.
func (c PackageCycle) End() time.Time { return c.boundary(c.Number + 1) }

// boundary is the start of cycle n, on a clock Scale times faster when
// rehearsing: the calendar's months from the anchor, shortened.
func (c PackageCycle) boundary(n int) time.Time {
	b := cycleBoundary(c.Anchor, c.Reset, n)
	if c.Scale <= 1 {
		return b
	}
	return c.Anchor.Add(time.Duration(float64(b.Sub(c.Anchor)) / c.Scale))
}

// cycleBoundary is the start of cycle n: n months (monthly) or n years
// (yearly) after anchor, at the same time of day (UTC), on the anchor's day
// of the month or the month's last day when it is shorter (a package from
// 31 January resets on 28 or 29 February, then on 31 March; one from 29
// February yearly on 28 February of common years).
func cycleBoundary(anchor time.Time, reset string, n int) time.Time {
	months := n
	if reset == activities.PackageResetYearly {
		months = 12 * n
	}
	anchor = anchor.UTC()
	y, m, d := anchor.Date()
	first := time.Date(y, m+time.Month(months), 1, 0, 0, 0, 0, time.UTC)
	if last := first.AddDate(0, 1, -1).Day(); d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, anchor.Hour(), anchor.Minute(), anchor.Second(), anchor.Nanosecond(), time.UTC)
}

// startCycles begins the cycles of a newly registered package whose
// content resets, from now.
func (p payPerUse) startCycles(ctx workflow.Context) {
	w := p.w
	if w.s.Policy.PackageReset == "" ||
		workflow.GetVersion(ctx, packageResetChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	w.s.PackageCycle = &PackageCycle{Reset: w.s.Policy.PackageReset, Anchor: workflow.Now(ctx).UTC(), Scale: w.s.Policy.PackageResetScale}
	c := w.s.PackageCycle
	w.record(ctx, "package/cycles", "package", fmt.Sprintf(
		"The package's content resets %s: its quota comes back on %s and at each %s boundary after it.",
		c.Reset, formatTime(c.End()), c.Reset))
}

// reset starts the package's next cycle. A cycle that ended while the
// package was out of service (frozen) is skipped: the quota of the cycle
// under way comes back.
func (p payPerUse) reset(ctx workflow.Context, key string) {
	w := p.w
	c := w.s.PackageCycle
	now := workflow.Now(ctx)
	for i := 0; !now.Before(c.End()) && i < maxCatchUpCycles; i++ {
		c.Number++
	}
	var covered []string
	err := execute(ctx, saveOptions, acts.ResetPackage, activities.ResetPackageInput{
		PackageInstanceID: w.s.InstanceID, CycleStart: c.Start(),
	}).Get(ctx, &covered)
	if err != nil {
		msg := fmt.Sprintf("The package's quota could not be reset for cycle %d (%s to %s): %s",
			c.Number, formatTime(c.Start()), formatTime(c.End()), errorMessage(err))
		w.record(ctx, key, "package", msg)
		w.save(ctx)
		w.alert(ctx, "package_reset_failed", msg)
		return
	}
	w.record(ctx, key, "package", fmt.Sprintf(
		"The package's content reset (%s): its whole quota is back for cycle %d, %s to %s; it covers %d pay-per-use instance(s).",
		c.Reset, c.Number, formatTime(c.Start()), formatTime(c.End()), len(covered)))
	w.save(ctx)
	p.tellCovered(ctx, covered, c.Reset)
}

// tellCovered tells the instances a package covers that its quota is
// available (bought, or reset); those stopped for quota resume.
func (p payPerUse) tellCovered(ctx workflow.Context, covered []string, reset string) {
	for _, id := range covered {
		if err := workflow.SignalExternalWorkflow(ctx, InstanceWorkflowID(id), "", InternalSignal,
			Internal{Kind: InternalQuotaRestored, Package: p.w.s.InstanceID, Reset: reset}).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Info("Covered instance not told of the package's quota", "instance", id, "error", err)
		}
	}
}
