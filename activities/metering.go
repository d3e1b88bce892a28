package activities

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// UsagePusher sends usage records to the marketplace (SPEC §6.2), at most
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
		closed, err := a.Store.CloseUsagePeriod(ctx, store.ClosePeriod{
			InstanceID: in.InstanceID, Start: p.Start, End: p.End, Billable: in.Billable, At: in.At,
		})
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
// the marketplace accepts (the workflow comes back at once for the rest).
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
	expired, err := a.Store.ExpireUsagePeriods(ctx, in.InstanceID, in.Now.Add(-koogallery.UsageMaxAge+time.Hour))
	if err != nil {
		return res, err
	}
	res.Expired = len(expired)
	pending, err := a.Store.PendingUsagePeriods(ctx, in.InstanceID, koogallery.MaxUsageRecords+1)
	if err != nil {
		return res, err
	}
	// A period whose usage no record can carry is held for an operator
	// (who may split it or write it off) instead of blocking the periods
	// after it.
	pushable := pending[:0]
	for _, p := range pending {
		if _, err := koogallery.ParseUsageValue(p.Quantity); err != nil {
			reason := fmt.Sprintf("usage %s cannot be pushed as one record: %v (at most %s); split it or write it off",
				p.Quantity, err, koogallery.MaxUsageValue)
			held, err := a.Store.HoldUsagePeriod(ctx, in.InstanceID, p.PeriodStart, reason)
			if err != nil {
				return res, err
			}
			if held {
				res.Held = append(res.Held, fmt.Sprintf("period %s–%s: %s",
					p.PeriodStart.UTC().Format(time.RFC3339), p.PeriodEnd.UTC().Format(time.RFC3339), reason))
			}
			continue
		}
		pushable = append(pushable, p)
	}
	batch := pushable[:min(len(pushable), koogallery.MaxUsageRecords)]
	if len(batch) == 0 {
		res.Remaining = len(pushable)
		return res, nil
	}
	records, starts, err := usageRecords(batch, in.Now)
	if err != nil {
		return res, temporal.NewNonRetryableApplicationError(err.Error(), "BadUsagePeriod", nil)
	}
	if err := a.Usage.PushUsage(ctx, records); err != nil {
		res.Error = shorten(fmt.Sprintf("push %d usage period(s): %v", len(records), err))
		return res, a.Store.MarkUsagePushFailed(ctx, in.InstanceID, starts, res.Error)
	}
	if err := a.Store.MarkUsagePushed(ctx, in.InstanceID, starts, time.Now()); err != nil {
		return res, err
	}
	res.Pushed = len(batch)
	res.Remaining = len(pushable) - len(batch)
	if len(pending) > koogallery.MaxUsageRecords && res.Remaining == 0 {
		res.Remaining = 1 // more were pending than this call read
	}
	return res, nil
}

// usageRecords turns closed periods into usage push records.
func usageRecords(periods []store.UsagePeriod, now time.Time) ([]koogallery.UsageRecord, []time.Time, error) {
	records := make([]koogallery.UsageRecord, 0, len(periods))
	starts := make([]time.Time, 0, len(periods))
	for _, p := range periods {
		v, err := koogallery.ParseUsageValue(p.Quantity)
		if err != nil {
			return nil, nil, fmt.Errorf("period %s of %s: quantity %q: %w", p.PeriodStart.Format(time.RFC3339), p.InstanceID, p.Quantity, err)
		}
		records = append(records, koogallery.UsageRecord{
			InstanceID:        p.InstanceID,
			RecordTime:        koogallery.FormatUsageTime(now),
			BeginTime:         koogallery.FormatUsageTime(p.PeriodStart),
			EndTime:           koogallery.FormatUsageTime(p.PeriodEnd),
			UsageValue:        v,
			MeteringSN:        p.MeteringSN,
			RelatePkgInstance: p.RelatePkgInstance,
		})
		starts = append(starts, p.PeriodStart)
	}
	return records, starts, nil
}

// ExcludeFrozenUsage excludes from billing the usage reported for a
// stretch in which the instance was frozen.
func (a *Activities) ExcludeFrozenUsage(ctx context.Context, in ExcludeFrozenInput) error {
	_, err := a.Store.MarkUsageUnbilled(ctx, in.InstanceID, in.Span.Start, in.Span.End)
	return err
}

// RegisterPackage records a package's quota and returns the pay-per-use
// instances it covers.
func (a *Activities) RegisterPackage(ctx context.Context, in RegisterPackageInput) ([]string, error) {
	if in.Quota <= 0 {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("package %s has no quota (linearValue %d)", in.PackageInstanceID, in.Quota), "BadPackage", nil)
	}
	return a.Store.RegisterPackage(ctx, store.UsagePackage{
		PackageInstanceID: in.PackageInstanceID, CustomerID: in.CustomerID, SkuCode: in.SkuCode,
		Quota: strconv.FormatInt(in.Quota, 10),
	})
}

// DeactivatePackage stops a released package.
func (a *Activities) DeactivatePackage(ctx context.Context, packageInstanceID string) error {
	return a.Store.DeactivatePackage(ctx, packageInstanceID)
}

func shorten(s string) string {
	if r := []rune(s); len(r) > 500 {
		return string(r[:500]) + "…"
	}
	return s
}
