package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// Batched metering: the usage collector closes the due periods of every
// metered instance and pushes the pending ones in calls of up to 1,000
// records (contract §6.2); an instance's metering workflow only tells it
// when the instance is frozen, unfrozen or released.

// PeriodBoundaryAfter is the first metering period boundary strictly after t.
func PeriodBoundaryAfter(t time.Time, period time.Duration) time.Time {
	return store.PeriodBoundaryAfter(t, period)
}

// MeteringSpans splits [from, to) at the metering period boundaries.
func MeteringSpans(from, to time.Time, period time.Duration) []Span {
	return store.PeriodSpans(from, to, period)
}

// closeChunk is how many instances one set-based close handles: a
// transaction of a few seconds at most, so that a freeze waiting for an
// instance's row is not held up long.
const closeChunk = 2000

// RegisterMeteringInput hands an instance's metering to the collector.
type RegisterMeteringInput struct {
	InstanceID string
	Period     time.Duration
	PushDelay  time.Duration
	// OpenSince is where the open period starts; PausedAt is set when
	// the instance is frozen now.
	OpenSince time.Time
	PausedAt  *time.Time `json:",omitempty"`
}

// RegisterMetering hands an instance's metering to the collector. Doing it
// again changes nothing.
func (a *Activities) RegisterMetering(ctx context.Context, in RegisterMeteringInput) error {
	_, err := a.Store.Metering.RegisterMetered(ctx, store.MeteredInstance{
		InstanceID: in.InstanceID, Period: in.Period, Delay: in.PushDelay, OpenSince: in.OpenSince,
		PausedAt: in.PausedAt, SNPrefix: MeteringSNPrefix(in.InstanceID),
	})
	if err != nil && (in.Period < time.Second || in.Period%time.Millisecond != 0 || in.PushDelay%time.Millisecond != 0) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "BadMetering", err)
	}
	return err
}

// MeteringChangeInput is a freeze, unfreeze or release of a metered
// instance at At (a whole second), as of Now.
type MeteringChangeInput struct {
	InstanceID string
	At, Now    time.Time
}

// MeteringChangeResult says what a freeze or a release closed.
type MeteringChangeResult struct {
	Periods int
	// PackageExhausted is a package that the closed periods used up.
	PackageExhausted string `json:",omitempty"`
}

// PauseMetering closes a metered instance's periods until it froze, and
// stops metering it until it is unfrozen.
func (a *Activities) PauseMetering(ctx context.Context, in MeteringChangeInput) (MeteringChangeResult, error) {
	return a.closeMetered(ctx, store.MeteringPause, in)
}

// StopMetering closes a metered instance's last partial period at its
// release; metering is over (the workflow then flushes with PushUsage).
func (a *Activities) StopMetering(ctx context.Context, in MeteringChangeInput) (MeteringChangeResult, error) {
	return a.closeMetered(ctx, store.MeteringStop, in)
}

func (a *Activities) closeMetered(ctx context.Context, change string, in MeteringChangeInput) (MeteringChangeResult, error) {
	closed, err := a.Store.Metering.CloseMetered(ctx, store.CloseMetered{
		InstanceID: in.InstanceID, Change: change, At: in.At, Now: in.Now, Rules: WithMeteringRules,
	})
	if errors.Is(err, store.ErrNotMetered) {
		return MeteringChangeResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "NotMetered", err)
	}
	return MeteringChangeResult{Periods: closed.Periods, PackageExhausted: closed.PackageExhausted}, err
}

// ResumeMetering meters an unfrozen instance again from At; the usage of
// the frozen stretch is not billed.
func (a *Activities) ResumeMetering(ctx context.Context, in MeteringChangeInput) error {
	err := a.Store.Metering.ResumeMetered(ctx, in.InstanceID, in.At)
	if errors.Is(err, store.ErrNotMetered) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "NotMetered", err)
	}
	return err
}

// CollectUsageInput is one pass of the collector, as of Now.
type CollectUsageInput struct {
	Now time.Time
}

// ExhaustedPackage is an instance whose package a closed period used up.
type ExhaustedPackage struct {
	InstanceID string
	Package    string
}

// CollectUsageResult says what a pass did.
type CollectUsageResult struct {
	Instances int // instances whose due periods were closed
	Periods   int // periods closed with usage to push
	Pushed    int // records the marketplace accepted
	Calls     int // push calls made, refused ones included
	// Expired counts by instance the periods that became older than the
	// marketplace accepts (21 days) before they could be pushed.
	Expired []store.ExpiredPeriods `json:",omitempty"`
	// Held describes the periods taken out of the pushes (their usage
	// cannot be pushed as it is, or the marketplace refused that record
	// alone): they wait for an operator, the others go on.
	Held      []string           `json:",omitempty"`
	Exhausted []ExhaustedPackage `json:",omitempty"`
	// Error says why a push failed as a whole (the marketplace could not
	// be reached, or refused the call itself); what was not pushed stays
	// pending for the next pass.
	Error string `json:",omitempty"`
	// NextClose is when the next metered period closes (nil: none is
	// metered).
	NextClose *time.Time `json:",omitempty"`
}

// CollectUsage is one pass of the collector: it closes the due periods of
// every metered instance (set-based for those no package covers, one by one
// under the package rules for the others), expires the periods too old to
// push, then pushes all pending periods, oldest first, 1,000 records per
// call, until none is left or a call fails as a whole. Every record keeps
// its metering_sn, so a pass run again after a crash bills nothing twice.
func (a *Activities) CollectUsage(ctx context.Context, in CollectUsageInput) (CollectUsageResult, error) {
	defer heartbeatWhileRunning(ctx)()
	var res CollectUsageResult
	for {
		closed, err := a.Store.Metering.CloseDueUncovered(ctx, in.Now, closeChunk)
		if err != nil {
			return res, err
		}
		res.Instances += closed.Instances
		res.Periods += closed.Periods
		if closed.Instances < closeChunk {
			break
		}
	}
	if err := a.closeCovered(ctx, in.Now, &res); err != nil {
		return res, err
	}
	// A margin under the 21 days: a record must still be young enough
	// when the marketplace checks it.
	expired, err := a.Store.Metering.ExpireAllUsagePeriods(ctx, in.Now.Add(-koogallery.UsageMaxAge+time.Hour))
	if err != nil {
		return res, err
	}
	res.Expired = expired
	for ctx.Err() == nil {
		pending, err := a.Store.Metering.OldestPendingPeriods(ctx, koogallery.MaxUsageRecords)
		if err != nil {
			return res, err
		}
		if len(pending) == 0 {
			break
		}
		out, err := a.pushPeriods(ctx, pending, in.Now)
		res.Pushed += out.pushed
		res.Calls += out.calls
		res.Held = append(res.Held, out.held...)
		if err != nil {
			return res, err
		}
		if out.failure != "" {
			res.Error = out.failure
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.NextClose, err = a.Store.Metering.NextMeteringClose(ctx)
	return res, err
}

// closeCovered closes the due periods of the instances packages cover, one
// by one: each period draws on the customer's package quota.
func (a *Activities) closeCovered(ctx context.Context, now time.Time, res *CollectUsageResult) error {
	for {
		ids, err := a.Store.Metering.DueCovered(ctx, now, closeChunk)
		if err != nil {
			return err
		}
		progress := res.Instances
		for _, id := range ids {
			closed, err := a.Store.Metering.CloseMetered(ctx, store.CloseMetered{
				InstanceID: id, Change: store.MeteringDue, Now: now, Rules: WithMeteringRules,
			})
			if err != nil {
				return err
			}
			if closed.Periods > 0 {
				res.Instances++
			}
			res.Periods += closed.Periods
			if closed.PackageExhausted != "" {
				res.Exhausted = append(res.Exhausted, ExhaustedPackage{InstanceID: id, Package: closed.PackageExhausted})
			}
		}
		// A full list again only if this one closed something: an
		// instance that stays due without closing (it cannot, but a
		// hand-edited row could) must not keep the pass going for ever.
		if len(ids) < closeChunk || progress == res.Instances {
			return nil
		}
	}
}

// pushOutcome is what pushing some periods did.
type pushOutcome struct {
	pushed, calls int
	held          []string
	// failure says why a call failed as a whole; the periods not pushed
	// stay pending.
	failure string
}

// pushPeriods pushes up to koogallery.MaxUsageRecords periods in one call.
// A period whose usage no record can carry is held first. When the
// marketplace refuses the call for what a record says (refusesARecord),
// the periods are split in halves and pushed again until the refused
// records are alone; each of those is held with the marketplace's answer,
// the others go through. Any other failure leaves them all pending. Only
// this server's own faults (the database) are returned as errors.
func (a *Activities) pushPeriods(ctx context.Context, periods []store.UsagePeriod, now time.Time) (pushOutcome, error) {
	var out pushOutcome
	periods, held, err := a.holdUnpushable(ctx, periods)
	out.held = held
	if err != nil || len(periods) == 0 {
		return out, err
	}
	records, err := usageRecords(periods, now, a.UsageValueForm)
	if err != nil {
		return out, temporal.NewNonRetryableApplicationError(err.Error(), "BadUsagePeriod", nil)
	}
	sns := make([]string, len(periods))
	for i, p := range periods {
		sns[i] = p.MeteringSN
	}
	out.calls++
	perr := a.Usage.PushUsage(ctx, records)
	reason := ""
	if perr != nil {
		reason = shorten(fmt.Sprintf("push %d usage period(s): %v", len(records), perr))
	}
	switch {
	case perr == nil:
		out.pushed = len(periods)
		return out, a.Store.Metering.MarkPeriodsPushed(ctx, sns, time.Now())
	case !refusesARecord(perr):
		out.failure = reason
		return out, a.Store.Metering.MarkPeriodsPushFailed(ctx, sns, reason)
	case len(periods) == 1:
		p := periods[0]
		if _, err := a.Store.Metering.HoldPeriod(ctx, p.MeteringSN, reason); err != nil {
			return out, err
		}
		out.held = append(out.held, describeHeld(p, reason))
		return out, nil
	}
	half := len(periods) / 2
	for _, part := range [][]store.UsagePeriod{periods[:half], periods[half:]} {
		sub, err := a.pushPeriods(ctx, part, now)
		out.pushed += sub.pushed
		out.calls += sub.calls
		out.held = append(out.held, sub.held...)
		if err != nil || sub.failure != "" {
			out.failure = sub.failure
			return out, err
		}
	}
	return out, nil
}

// refusesARecord reports whether the marketplace refused a usage push for
// what one of its records says (an unknown or foreign instance, an invalid
// value or time, a record too old), so that pushing the records apart
// isolates it. A refused signature (MKT.0102) or token, rate limiting and
// outages concern the whole call.
func refusesARecord(err error) bool {
	var apiErr *koogallery.OpenAPIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.Code {
	case koogallery.OpenAPIParamCheckFailed, koogallery.OpenAPIInvalidParam, koogallery.OpenAPIRequestError,
		koogallery.OpenAPIIllegalOperation, koogallery.OpenAPIInstanceNotFound, koogallery.OpenAPIInvalidUsage,
		koogallery.OpenAPITooManyRecords, koogallery.OpenAPIRecordTooOld:
		return true
	}
	return false
}

// holdUnpushable holds the periods whose usage no record can carry (an
// operator may split them or write them off) and returns the others.
func (a *Activities) holdUnpushable(ctx context.Context, periods []store.UsagePeriod) ([]store.UsagePeriod, []string, error) {
	var held []string
	pushable := make([]store.UsagePeriod, 0, len(periods))
	for _, p := range periods {
		if _, err := koogallery.ParseUsageValue(p.Quantity); err != nil {
			reason := fmt.Sprintf("usage %s cannot be pushed as one record: %v (at most %s); split it or write it off",
				p.Quantity, err, koogallery.MaxUsageValue)
			ok, err := a.Store.Metering.HoldPeriod(ctx, p.MeteringSN, reason)
			if err != nil {
				return nil, held, err
			}
			if ok {
				held = append(held, describeHeld(p, reason))
			}
			continue
		}
		pushable = append(pushable, p)
	}
	return pushable, held, nil
}

// describeHeld says which period is held and why, for an alert.
func describeHeld(p store.UsagePeriod, reason string) string {
	return fmt.Sprintf("instance %s, period %s–%s: %s", p.InstanceID,
		p.PeriodStart.UTC().Format(time.RFC3339), p.PeriodEnd.UTC().Format(time.RFC3339), reason)
}
