package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// meteringStepsPerRun bounds a metering run's history (a year of hourly
// periods is 8,760 steps).
var meteringStepsPerRun = 400

// MeteringWorkflow meters one pay-per-use instance. It hands the instance
// to the usage collector (UsageCollectorWorkflow), which closes and pushes
// the periods of all instances together, and then only carries the
// instance's freezes, unfreezes and release to it, pushing the instance's
// pending periods at once at those moments and on an operator's retry.
//
// Runs that began before the collector existed meter by themselves until
// their next close, as follows, and hand over then: at the end of every
// period it closes the period (the usage reported until then, late usage
// included, goes to it) and pushes what is pending to the marketplace,
// oldest first, each period under a metering_sn derived from the instance
// and the period, so that a retry can never bill twice. A push that fails
// is retried with a backoff and, after an outage, the missed periods are
// caught up, except those older than the marketplace accepts, which are
// reported (state and alert), never dropped silently. A frozen instance is
// not metered; before release the last partial period is flushed.
func MeteringWorkflow(ctx workflow.Context, in MeteringInput) error {
	m := in.Carried
	if m == nil {
		m = &MeteringSnapshot{InstanceID: in.InstanceID, Period: in.Period, PushDelay: in.PushDelay, OpenSince: nextWholeSecond(in.From)}
	}
	if m.Period <= 0 {
		return temporal.NewNonRetryableApplicationError("metering period must be positive", "BadMetering", nil)
	}
	var controls []MeteringControl
	if err := workflow.SetQueryHandler(ctx, MeteringQuery, func() (MeteringSnapshot, error) { return *m, nil }); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, MeteringSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var c MeteringControl
			ch.Receive(ctx, &c)
			controls = append(controls, c)
		}
	})
	mw := &meteringWorkflow{m: m}
	if !m.Batched {
		// A new run hands its periods to the usage collector at once.
		mw.handOver(ctx, fmt.Sprintf("start/%d", m.OpenSince.Unix()))
	}
	for steps := 0; ; steps++ {
		if len(controls) > 0 {
			c := controls[0]
			controls = controls[1:]
			if done := mw.control(ctx, c); done {
				return nil
			}
			continue
		}
		now := workflow.Now(ctx)
		if !m.Batched && !m.Paused && !now.Before(mw.closeAt()) {
			// A run that began before the collector existed hands over
			// at its next close (each such wake asks anew: a run being
			// replayed from an older history keeps its own closes).
			if mw.handOver(ctx, fmt.Sprintf("close/%d", mw.closeAt().Unix())) {
				continue
			}
			mw.closeDue(ctx, now)
			mw.push(ctx)
			continue
		}
		if m.NextPushAt != nil && !now.Before(*m.NextPushAt) {
			mw.push(ctx)
			continue
		}
		if steps >= meteringStepsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			for {
				var c MeteringControl
				if !ch.ReceiveAsync(&c) {
					break
				}
				controls = append(controls, c)
			}
			if len(controls) == 0 {
				carried := *m
				return workflow.NewContinueAsNewError(ctx, MeteringWorkflowName, MeteringInput{
					InstanceID: m.InstanceID, Period: m.Period, PushDelay: m.PushDelay, Carried: &carried,
				})
			}
			continue
		}
		wake, ok := mw.nextWake()
		ready := func() bool { return len(controls) > 0 }
		if !ok {
			if err := workflow.Await(ctx, ready); err != nil {
				return err
			}
			continue
		}
		if _, err := workflow.AwaitWithTimeout(ctx, wake.Sub(now), ready); err != nil {
			return err
		}
	}
}

type meteringWorkflow struct {
	m *MeteringSnapshot
}

// nextWholeSecond is t in UTC, rounded up to a whole second. Every period
// boundary is a whole second: the marketplace's times have no fraction
// (yyyyMMdd'T'HHmmss'Z') and the metering_sn is made from the start's
// second, so two periods never share a start, and none is shorter than a
// second. Rounding up keeps the first begin_time after the resource's start
// and puts the usage of a freeze's or a release's last fraction of a second
// in the period it closes.
func nextWholeSecond(t time.Time) time.Time {
	t = t.UTC()
	if whole := t.Truncate(time.Second); !whole.Equal(t) {
		return whole.Add(time.Second)
	}
	return t
}

// waitUntil sleeps until at, if it is ahead (less than a second, for a
// boundary rounded up), so that a period is closed only once it has ended.
func waitUntil(ctx workflow.Context, at time.Time) {
	if d := at.Sub(workflow.Now(ctx)); d > 0 {
		_ = workflow.Sleep(ctx, d)
	}
}

// closeAt is when the open period ends and is closed: its end plus the push
// delay, so that late usage reported in the first minutes is included.
func (mw *meteringWorkflow) closeAt() time.Time {
	return activities.PeriodBoundaryAfter(mw.m.OpenSince, mw.m.Period).Add(mw.m.PushDelay)
}

func (mw *meteringWorkflow) nextWake() (time.Time, bool) {
	var wake time.Time
	ok := false
	if !mw.m.Paused && !mw.m.Batched {
		wake, ok = mw.closeAt(), true
	}
	if p := mw.m.NextPushAt; p != nil && (!ok || p.Before(wake)) {
		wake, ok = *p, true
	}
	return wake, ok
}

// closeDue closes every full period that ended before now.
func (mw *meteringWorkflow) closeDue(ctx workflow.Context, now time.Time) {
	last := now.Add(-mw.m.PushDelay).Truncate(mw.m.Period)
	mw.close(ctx, mw.m.OpenSince, last, true)
}

// close closes [from, to) as periods; billable is false for a frozen
// stretch. It moves the open period to start at to.
func (mw *meteringWorkflow) close(ctx workflow.Context, from, to time.Time, billable bool) {
	all := activities.MeteringSpans(from, to, mw.m.Period)
	for len(all) > 0 {
		batch := all[:min(len(all), 500)]
		all = all[len(batch):]
		if !mw.closing(ctx, acts.CloseUsagePeriods, activities.ClosePeriodsInput{
			InstanceID: mw.m.InstanceID, Periods: batch, Billable: billable, At: workflow.Now(ctx),
		}) {
			return
		}
	}
	mw.openFrom(to)
}

// closing runs an activity that closes periods (CloseUsagePeriods,
// PauseMetering, StopMetering) and tells the instance when a closed period
// used up its package. It reports whether the periods were closed: only
// cancellation ends the unlimited retry of a local write.
func (mw *meteringWorkflow) closing(ctx workflow.Context, activity, input any) bool {
	var res struct{ PackageExhausted string }
	if err := execute(ctx, saveOptions, activity, input).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Error("Usage periods not closed", "error", err)
		return false
	}
	if res.PackageExhausted != "" {
		tellQuotaExhausted(ctx, mw.m.InstanceID, res.PackageExhausted)
	}
	return true
}

// openFrom moves the open period to start at to, once what precedes it is
// closed.
func (mw *meteringWorkflow) openFrom(to time.Time) {
	if to.After(mw.m.OpenSince) {
		mw.m.OpenSince = to
	}
}

// tellQuotaExhausted tells an instance that its package is used up: the
// instance stops (用完即停).
func tellQuotaExhausted(ctx workflow.Context, instanceID, pkg string) {
	err := workflow.SignalExternalWorkflow(ctx, InstanceWorkflowID(instanceID), "", InternalSignal,
		Internal{Kind: InternalQuotaExhausted, Package: pkg}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("Instance not told its package is used up", "instanceId", instanceID, "error", err)
	}
}

// batchedMeteringChange is the GetVersion change ID (with a suffix per
// point of decision) of the hand-over to the usage collector.
const batchedMeteringChange = "batched-metering"

// handOver hands the instance's periods to the usage collector, from the
// open one on, and reports whether it did. From then on this workflow only
// carries the freezes, unfreezes and the release to the collector's table
// and pushes at those moments; the hourly closes and pushes are the
// collector's. Nothing is closed twice or skipped: the collector starts at
// OpenSince, where this workflow stopped, and the periods already pending
// keep their metering_sn.
func (mw *meteringWorkflow) handOver(ctx workflow.Context, point string) bool {
	m := mw.m
	if workflow.GetVersion(ctx, batchedMeteringChange+"/"+point, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return false
	}
	in := activities.RegisterMeteringInput{InstanceID: m.InstanceID, Period: m.Period, PushDelay: m.PushDelay, OpenSince: m.OpenSince}
	if m.Paused {
		pausedAt := m.PausedAt
		in.PausedAt = &pausedAt
	}
	if err := execute(ctx, saveOptions, acts.RegisterMetering, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("Metering not handed to the usage collector; metering here", "error", err)
		return false
	}
	m.Batched = true
	return true
}

// closeMetered has the collector's table close the instance's periods
// until at, before a freeze (acts.PauseMetering) or the release
// (acts.StopMetering).
func (mw *meteringWorkflow) closeMetered(ctx workflow.Context, activity any, at time.Time) {
	if mw.closing(ctx, activity, activities.MeteringChangeInput{InstanceID: mw.m.InstanceID, At: at, Now: workflow.Now(ctx)}) {
		mw.openFrom(at)
	}
}

// push sends the pending periods; on failure it schedules a retry with a
// backoff, and tells operators when the failures go on.
func (mw *meteringWorkflow) push(ctx workflow.Context) {
	now := workflow.Now(ctx)
	var res activities.PushUsageResult
	err := execute(ctx, pushOptions, acts.PushUsage, activities.PushUsageInput{
		InstanceID: mw.m.InstanceID, Now: now,
	}).Get(ctx, &res)
	mw.m.Expired += res.Expired
	mw.m.ExpiredUnalerted += res.Expired
	mw.alertExpired(ctx, now, false)
	for _, held := range res.Held {
		mw.alert(ctx, "usage_period_held", fmt.Sprintf("Usage of instance %s is held for an operator: %s.", mw.m.InstanceID, held))
	}
	if err != nil || res.Error != "" {
		mw.m.PushFailures++
		mw.m.LastError = res.Error
		if err != nil {
			mw.m.LastError = errorMessage(err)
		}
		retry := now.Add(pushBackoff(mw.m.PushFailures, mw.m.Period))
		mw.m.NextPushAt = &retry
		mw.alertBodySignRefused(ctx)
		if mw.m.PushFailures == 3 {
			mw.alert(ctx, "usage_push_failing", fmt.Sprintf(
				"Usage of instance %s has not been pushed for 3 attempts: %s. Retrying; periods are kept for up to 21 days.",
				mw.m.InstanceID, mw.m.LastError))
		}
		return
	}
	mw.m.PushFailures, mw.m.LastError, mw.m.NextPushAt = 0, "", nil
	mw.m.Pending = res.Remaining
	if res.Pushed > 0 {
		mw.m.LastPushedAt = &now
	}
	if res.Remaining > 0 {
		// More than one batch was pending: carry on at once.
		mw.m.NextPushAt = &now
	}
}

// pushBackoff waits 1, 2, 4 … minutes between failed pushes, at most a
// quarter of the period, so that an outage is caught up within minutes of
// its end.
func pushBackoff(failures int, period time.Duration) time.Duration {
	d := time.Minute << min(failures-1, 10)
	return max(min(d, period/4), time.Second)
}

// control carries out a control from the instance workflow; it reports
// whether metering is over.
func (mw *meteringWorkflow) control(ctx workflow.Context, c MeteringControl) bool {
	m := mw.m
	at := nextWholeSecond(c.At)
	switch c.Kind {
	case MeterPause:
		if m.Paused {
			return false
		}
		waitUntil(ctx, at)
		if m.Batched {
			mw.closeMetered(ctx, acts.PauseMetering, at)
		} else {
			mw.close(ctx, m.OpenSince, at, true)
		}
		m.Paused, m.PausedAt = true, at
		mw.push(ctx)
	case MeterResume:
		if !m.Paused {
			return false
		}
		var err error
		if m.Batched {
			err = execute(ctx, saveOptions, acts.ResumeMetering, activities.MeteringChangeInput{
				InstanceID: m.InstanceID, At: at, Now: workflow.Now(ctx),
			}).Get(ctx, nil)
		} else {
			err = execute(ctx, saveOptions, acts.ExcludeFrozenUsage, activities.ExcludeFrozenInput{
				InstanceID: m.InstanceID, Span: Span{Start: m.PausedAt, End: at},
			}).Get(ctx, nil)
		}
		if err != nil {
			workflow.GetLogger(ctx).Error("Frozen usage not excluded", "error", err)
		}
		m.Paused, m.OpenSince = false, at
	case MeterRetryPush:
		mw.push(ctx)
	case MeterStop:
		switch {
		case m.Batched:
			if !m.Paused {
				waitUntil(ctx, at)
			}
			// Closes the last partial period and ends the collector's
			// metering of the instance (also when it is frozen).
			mw.closeMetered(ctx, acts.StopMetering, at)
		case !m.Paused:
			waitUntil(ctx, at)
			mw.close(ctx, m.OpenSince, at, true)
		}
		// The final flush: keep trying for a while, the release waits.
		for attempt := 0; attempt < 5; attempt++ {
			mw.push(ctx)
			if m.NextPushAt == nil {
				break
			}
			_ = workflow.Sleep(ctx, pushBackoff(attempt+1, m.Period))
		}
		mw.alertExpired(ctx, workflow.Now(ctx), true)
		if m.NextPushAt != nil {
			mw.alert(ctx, "usage_push_failing", fmt.Sprintf(
				"The last usage of instance %s could not be pushed before its release: %s.", m.InstanceID, m.LastError))
		}
		err := workflow.SignalExternalWorkflow(ctx, InstanceWorkflowID(m.InstanceID), "", InternalSignal,
			Internal{Kind: InternalMeteringFlushed}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Error("Instance not told its usage is flushed", "error", err)
		}
		return true
	}
	return false
}

// bodySignAlertChange is the GetVersion change ID of the alert on a
// refused body signature.
const bodySignAlertChange = "alert-usage-body-sign"

// alertBodySignRefused tells operators, at once and once, that the
// marketplace refused the usage push's body signature (MKT.0102): no
// retry fixes a wrong key or a form of the body the marketplace does not
// sign the same way (contract §11.3), and the periods expire after 21
// days.
func (mw *meteringWorkflow) alertBodySignRefused(ctx workflow.Context) {
	m := mw.m
	if m.BodySignAlerted || !strings.Contains(m.LastError, koogallery.OpenAPIInvalidBodySign) {
		return
	}
	if workflow.GetVersion(ctx, bodySignAlertChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	m.BodySignAlerted = true
	mw.alert(ctx, "usage_push_signature_refused", fmt.Sprintf(
		"The marketplace refused the body signature of the usage push of instance %s (%s): %s. Retrying will not help "+
			"until the cause is fixed: check KOOGALLERY_ACCESS_KEY (the 基础接口 key signs the body), then the form of "+
			"the body the marketplace verifies (contract §11.3 in docs/contract.md). Periods are kept for 21 days; retry-push pushes at once.",
		m.InstanceID, koogallery.OpenAPIInvalidBodySign, m.LastError))
}

// expiryAlertInterval spaces the alerts about expired periods.
const expiryAlertInterval = 24 * time.Hour

// alertExpired tells operators about the periods that expired since the
// last such alert, at most once a day unless forced (the metering ends).
func (mw *meteringWorkflow) alertExpired(ctx workflow.Context, now time.Time, force bool) {
	m := mw.m
	if m.ExpiredUnalerted == 0 {
		return
	}
	if !force && m.LastExpiryAlert != nil && now.Sub(*m.LastExpiryAlert) < expiryAlertInterval {
		return
	}
	mw.alert(ctx, "usage_expired", fmt.Sprintf(
		"%d usage period(s) of instance %s could not be pushed within the marketplace's 21 days and will not be billed "+
			"(%d in all); GET /v1/instances/%s/usage lists them.", m.ExpiredUnalerted, m.InstanceID, m.Expired, m.InstanceID))
	m.ExpiredUnalerted, m.LastExpiryAlert = 0, &now
}

func (mw *meteringWorkflow) alert(ctx workflow.Context, kind, message string) {
	err := execute(ctx, alertOptions, acts.Alert, activities.AlertInput{
		InstanceID: mw.m.InstanceID, Kind: kind, Message: message,
	}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("Alert not sent", "kind", kind, "error", err)
	}
}

// pushOptions: the push activity fails only on this server's own faults
// (the database), retried briefly; the marketplace's failures come back in
// the result and the workflow's own backoff takes over, so that an outage
// does not pin a worker slot.
var pushOptions = activityPolicy{startToClose: 30 * time.Second, scheduleToClose: 2 * time.Minute, maxInterval: 20 * time.Second}
