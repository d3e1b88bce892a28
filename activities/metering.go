package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// UsagePusher sends usage records to the marketplace (contract §6.2), at most
// koogallery.MaxUsageRecords at a time.
type UsagePusher interface {
	PushUsage(ctx context.Context, records []koogallery.UsageRecord) error
}

// OpenAPIUsagePusher pushes with the open-API client, signing the body with
// the access key bound to 基础接口.
type OpenAPIUsagePusher struct {
	Client    *koogallery.OpenAPIClient
	AccessKey string
}

// PushUsage implements UsagePusher.
func (p OpenAPIUsagePusher) PushUsage(ctx context.Context, records []koogallery.UsageRecord) error {
	return p.Client.PushUsage(ctx, p.AccessKey, records)
}

// CloseUsagePeriods closes metering periods: their usage is summed, drawn
// on a package when one covers the instance, and left pending for the push.
func (a *Activities) CloseUsagePeriods(ctx context.Context, in ClosePeriodsInput) (ClosePeriodsResult, error) {
	var res ClosePeriodsResult
	for _, p := range in.Periods {
		closed, err := a.Store.Metering.CloseUsagePeriod(ctx, WithMeteringRules(store.ClosePeriod{
			InstanceID: in.InstanceID, Start: p.Start, End: p.End, Billable: in.Billable, At: in.At,
		}))
		if err != nil {
			return res, err
		}
		res.Closed++
		if closed.PackageExhausted != "" {
			res.PackageExhausted = closed.PackageExhausted
		}
	}
	return res, nil
}

// PushUsage pushes an instance's pending periods, oldest first, one batch
// the marketplace accepts (the workflow comes back at once for the rest):
// a release's final flush, a retry an operator asks for, and the hourly
// push of the instances whose metering has not moved to the collector yet.
// Periods too old for the marketplace are marked expired first. A push the
// marketplace refuses or that cannot reach it is not an activity failure:
// the result carries the error, so that the expired periods are reported
// either way, and the metering workflow's backoff tries again. Only this
// server's own faults (the database) fail the activity, for Temporal to
// retry; a retry after a push that went through sends the same metering_sn
// again, which the marketplace ignores.
func (a *Activities) PushUsage(ctx context.Context, in PushUsageInput) (PushUsageResult, error) {
	var res PushUsageResult
	// A margin under the 21 days: a record must still be young enough
	// when the marketplace checks it.
	expired, err := a.Store.Metering.ExpireUsagePeriods(ctx, in.InstanceID, in.Now.Add(-koogallery.UsageMaxAge+time.Hour))
	if err != nil {
		return res, err
	}
	res.Expired = len(expired)
	pending, err := a.Store.Metering.PendingUsagePeriods(ctx, in.InstanceID, koogallery.MaxUsageRecords+1)
	if err != nil {
		return res, err
	}
	batch := pending[:min(len(pending), koogallery.MaxUsageRecords)]
	if len(batch) == 0 {
		return res, nil
	}
	out, err := a.pushPeriods(ctx, batch, in.Now)
	res.Pushed, res.Held, res.Error = out.pushed, out.held, out.failure
	if err != nil || out.failure != "" {
		return res, err
	}
	res.Remaining = len(batch) - out.pushed - len(out.held)
	if len(pending) > len(batch) {
		res.Remaining++ // more were pending than this call read
	}
	return res, nil
}

// usageRecords turns closed periods into usage push records, usage_value
// written in form (a number unless it is UsageValueString).
func usageRecords(periods []store.UsagePeriod, now time.Time, form koogallery.UsageValueForm) ([]koogallery.UsageRecord, error) {
	records := make([]koogallery.UsageRecord, 0, len(periods))
	for _, p := range periods {
		// The database keeps four decimals; the push carries the shortest
		// form, which survives a marketplace that re-prints the numbers
		// it verifies (contract §11.3).
		v, err := koogallery.ShortestUsageValue(p.Quantity)
		if err != nil {
			return nil, fmt.Errorf("period %s of %s: quantity %q: %w", p.PeriodStart.Format(time.RFC3339), p.InstanceID, p.Quantity, err)
		}
		records = append(records, koogallery.UsageRecord{
			InstanceID:        p.InstanceID,
			RecordTime:        koogallery.FormatUsageTime(now),
			BeginTime:         koogallery.FormatUsageTime(p.PeriodStart),
			EndTime:           koogallery.FormatUsageTime(p.PeriodEnd),
			UsageValue:        form.In(v),
			MeteringSN:        p.MeteringSN,
			RelatePkgInstance: p.RelatePkgInstance,
		})
	}
	return records, nil
}

// ExcludeFrozenUsage excludes from billing the usage reported for a
// stretch in which the instance was frozen.
func (a *Activities) ExcludeFrozenUsage(ctx context.Context, in ExcludeFrozenInput) error {
	_, err := a.Store.Metering.MarkUsageUnbilled(ctx, in.InstanceID, in.Span.Start, in.Span.End)
	return err
}

// RegisterPackage records a package's quota and returns the pay-per-use
// instances it covers.
func (a *Activities) RegisterPackage(ctx context.Context, in RegisterPackageInput) ([]string, error) {
	if in.Quota <= 0 {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("package %s has no quota (linearValue %d)", in.PackageInstanceID, in.Quota), "BadPackage", nil)
	}
	return a.Store.Metering.RegisterPackage(ctx, store.UsagePackage{
		PackageInstanceID: in.PackageInstanceID, CustomerID: in.CustomerID, SkuCode: in.SkuCode,
		Quota: strconv.FormatInt(in.Quota, 10),
	})
}

// ResetPackage gives a package whose content resets its quota back for
// the cycle that begins at in.CycleStart, and returns the pay-per-use
// instances it covers (for the workflow to resume those stopped for quota).
// Running it again for the same cycle changes nothing.
func (a *Activities) ResetPackage(ctx context.Context, in ResetPackageInput) ([]string, error) {
	covered, err := a.Store.Metering.ResetPackage(ctx, in.PackageInstanceID, in.CycleStart)
	if errors.Is(err, store.ErrNotFound) {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("package %s is not registered", in.PackageInstanceID), "BadPackage", err)
	}
	return covered, err
}

// DeactivatePackage stops a released package.
func (a *Activities) DeactivatePackage(ctx context.Context, packageInstanceID string) error {
	return a.Store.Metering.DeactivatePackage(ctx, packageInstanceID)
}

func shorten(s string) string {
	if r := []rune(s); len(r) > 500 {
		return string(r[:500]) + "…"
	}
	return s
}

// WithMeteringRules completes a period to close with the metering rules:
// its serial number and how its usage draws on packages.
func WithMeteringRules(p store.ClosePeriod) store.ClosePeriod {
	p.MeteringSN = MeteringSN(p.InstanceID, p.Start)
	p.Draw = DrawOnPackages
	return p
}

// MeteringSN is the serial number of an instance's period: the same
// instance and period always give the same number, so the marketplace
// deduplicates any resend (contract §6.2: metering_sn, at most 64 characters).
func MeteringSN(instanceID string, periodStart time.Time) string {
	return MeteringSNPrefix(instanceID) + periodStart.UTC().Format("20060102150405")
}

// MeteringSNPrefix is what every metering_sn of an instance begins with;
// the collector's set-based close appends the period's start to it
// (yyyyMMddHHmmss, UTC) the same way.
func MeteringSNPrefix(instanceID string) string {
	sum := sha256.Sum256([]byte(instanceID))
	return "m" + hex.EncodeToString(sum[:10]) + "-"
}

// DrawOnPackages splits a closed period's total between the customer's
// package quota and what is not billed. Packages are drawn oldest first,
// one per period: the marketplace keeps one record per instance and
// period, so a period cannot be split between two packages; what exceeds
// the package it draws on is not billed. An instance that was ever covered
// by a package stays under the stop-when-used-up rule: once no package has
// quota left, its usage is not billed and it is reported exhausted.
// Without packages the whole total is billed as plain pay-per-use, and
// usage while frozen (not billable) is never billed.
func DrawOnPackages(total string, billable bool, packages store.Packages) (store.Draw, error) {
	used, ok := new(big.Rat).SetString(total)
	if !ok {
		return store.Draw{}, fmt.Errorf("period total %q is not a decimal", total)
	}
	switch {
	case !billable:
		return store.Draw{Billable: "0", Unbilled: total}, nil
	case len(packages.Open) == 0 && packages.Newest == "":
		return store.Draw{Billable: total, Unbilled: "0"}, nil
	case len(packages.Open) == 0:
		draw := store.Draw{Billable: "0", Unbilled: total}
		if used.Sign() > 0 {
			draw.Exhausted = packages.Newest
		}
		return draw, nil
	}
	pkg := packages.Open[0]
	left, ok := new(big.Rat).SetString(pkg.Left)
	if !ok {
		return store.Draw{}, fmt.Errorf("quota left %q of package %s is not a decimal", pkg.Left, pkg.ID)
	}
	take, over := used, new(big.Rat)
	if used.Cmp(left) >= 0 {
		take, over = left, new(big.Rat).Sub(used, left)
	}
	draw := store.Draw{Billable: decimal(take), Unbilled: decimal(over), Package: pkg.ID}
	if used.Cmp(left) >= 0 && used.Sign() > 0 && len(packages.Open) == 1 {
		// This package is used up and no other has quota left: the
		// service stops.
		draw.Exhausted = pkg.ID
	}
	return draw, nil
}

// decimal writes a quantity with the 4 decimals usage carries (the
// quantities are sums and differences of such, so nothing is rounded).
func decimal(r *big.Rat) string { return r.FloatString(4) }

// SplitHeldPeriod divides a held period's span into as many whole-second
// parts as its usage needs records, each with an equal share and a
// metering_sn of its own start (an operator's repair of a period the
// marketplace could not take in one record).
func SplitHeldPeriod(p store.UsagePeriod) ([]store.PeriodPart, error) {
	values, err := koogallery.SplitUsageValue(p.Quantity)
	if err != nil {
		return nil, fmt.Errorf("the period's usage cannot be split: %w", err)
	}
	seconds := int64(p.PeriodEnd.Sub(p.PeriodStart) / time.Second)
	k := int64(len(values))
	if k < 2 {
		return nil, errors.New("the period's usage fits one record: nothing to split")
	}
	if seconds < k {
		return nil, fmt.Errorf("the period lasts %d s, too short for the %d records its usage needs", seconds, k)
	}
	parts := make([]store.PeriodPart, k)
	for i := range k {
		parts[i] = store.PeriodPart{
			Start:    p.PeriodStart.Add(time.Duration(seconds*i/k) * time.Second),
			End:      p.PeriodStart.Add(time.Duration(seconds*(i+1)/k) * time.Second),
			Quantity: values[i].String(),
		}
		parts[i].MeteringSN = MeteringSN(p.InstanceID, parts[i].Start)
	}
	parts[k-1].End = p.PeriodEnd
	return parts, nil
}
