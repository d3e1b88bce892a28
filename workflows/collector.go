package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// The usage collector: one workflow for all pay-per-use instances. At each
// period's end plus the push delay it runs one activity that closes the
// due periods of every metered instance with set-based SQL and pushes all
// pending periods, 1,000 records per call (contract §6.2). Its Temporal work
// is one activity and one timer per pass, whatever the number of
// instances; an instance's own metering workflow only speaks at freezes,
// unfreezes and the release.

const (
	// UsageCollectorWorkflowName is the registered name of
	// UsageCollectorWorkflow.
	UsageCollectorWorkflowName = "UsageCollectorWorkflow"
	// UsageCollectorSignal asks the collector for a pass now (an operator
	// after an outage, with no payload).
	UsageCollectorSignal = "collect-now"
	// UsageCollectorQuery returns the collector's state (CollectorState).
	UsageCollectorQuery = "collector"
	// UsageCollectorSettingsSignal gives the running collector the
	// metering settings of a server that starts (UsageCollectorSettings),
	// so that a changed METERING_PERIOD or METERING_PUSH_DELAY applies
	// from the next pass.
	UsageCollectorSettingsSignal = "settings"
)

// UsageCollectorWorkflowID is the workflow ID of the collector of the
// deployment whose workers poll taskQueue: one per deployment, and
// deployments that share a Temporal namespace (a rehearsal beside the
// real one) each have their own, working on their own database.
func UsageCollectorWorkflowID(taskQueue string) string { return "usage-collector/" + taskQueue }

// UsageCollectorSettings are the metering settings the collector passes by.
type UsageCollectorSettings struct {
	Period    time.Duration
	PushDelay time.Duration
}

// UsageCollectorInput starts the collector.
type UsageCollectorInput struct {
	// Period and PushDelay are the metering settings (METERING_PERIOD,
	// METERING_PUSH_DELAY): the collector passes at every period boundary
	// plus the delay, and sooner when a metered instance's period closes
	// earlier.
	Period    time.Duration
	PushDelay time.Duration
	Carried   *CollectorState `json:",omitempty"`
}

// CollectorState is the collector's state, carried across runs.
type CollectorState struct {
	// Settings are those the collector passes by now.
	Settings   UsageCollectorSettings
	Passes     int
	LastPassAt *time.Time `json:",omitempty"`
	// Last is the last pass's result.
	Last activities.CollectUsageResult
	// Pushed and Calls total the records accepted and the calls made.
	Pushed, Calls int64
	// Failures counts the consecutive passes whose push failed; LastError
	// says why.
	Failures  int
	LastError string `json:",omitempty"`
	// BodySignAlerted: operators were told that the marketplace refuses
	// the pushes' body signature (MKT.0102), until a push goes through.
	BodySignAlerted bool `json:",omitempty"`
	// ExpiredUnalerted counts the periods expired since the last alert
	// about them, sent at most once a day (LastExpiryAlert).
	ExpiredUnalerted int        `json:",omitempty"`
	LastExpiryAlert  *time.Time `json:",omitempty"`
}

// collectorPassesPerRun bounds a run's history (a month of hourly passes).
var collectorPassesPerRun = 720

// collectOptions: a pass of 100,000 instances takes minutes; the activity
// heartbeats, and a pass that fails is tried again by the next one.
var collectOptions = activityPolicy{startToClose: 30 * time.Minute, scheduleToClose: 45 * time.Minute,
	maxInterval: time.Minute, heartbeat: time.Minute}

// UsageCollectorWorkflow closes and pushes the usage of every metered
// instance, pass after pass, for ever (continuing as new).
func UsageCollectorWorkflow(ctx workflow.Context, in UsageCollectorInput) error {
	st := in.Carried
	if st == nil {
		st = &CollectorState{}
	}
	if in.Period <= 0 {
		in.Period = time.Hour
	}
	if err := workflow.SetQueryHandler(ctx, UsageCollectorQuery, func() (CollectorState, error) { return *st, nil }); err != nil {
		return err
	}
	st.Settings = UsageCollectorSettings{Period: in.Period, PushDelay: in.PushDelay}
	asked := false
	ch := workflow.GetSignalChannel(ctx, UsageCollectorSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			ch.Receive(ctx, nil)
			asked = true
		}
	})
	settings := workflow.GetSignalChannel(ctx, UsageCollectorSettingsSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var s UsageCollectorSettings
			settings.Receive(ctx, &s)
			if s.Period > 0 && s.PushDelay >= 0 && s != st.Settings {
				// The next wake is computed anew with them.
				st.Settings, asked = s, true
			}
		}
	})
	c := &collector{st: st}
	for passes := 1; ; passes++ {
		asked = false
		next := c.pass(ctx)
		if passes >= collectorPassesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			for ch.ReceiveAsync(nil) {
				// A pass is due at once in the next run anyway.
			}
			carried := *st
			return workflow.NewContinueAsNewError(ctx, UsageCollectorWorkflowName, UsageCollectorInput{
				Period: st.Settings.Period, PushDelay: st.Settings.PushDelay, Carried: &carried,
			})
		}
		if _, err := workflow.AwaitWithTimeout(ctx, next.Sub(workflow.Now(ctx)), func() bool { return asked }); err != nil {
			return err
		}
	}
}

type collector struct {
	st *CollectorState
}

// pass runs one CollectUsage, tells operators what needs them, and returns
// when the next pass is due.
func (c *collector) pass(ctx workflow.Context) time.Time {
	st := c.st
	now := workflow.Now(ctx)
	var res activities.CollectUsageResult
	err := execute(ctx, collectOptions, acts.CollectUsage, activities.CollectUsageInput{Now: now}).Get(ctx, &res)
	st.Passes++
	st.LastPassAt = &now
	st.Last = res
	st.Pushed += int64(res.Pushed)
	st.Calls += int64(res.Calls)
	for _, e := range res.Exhausted {
		tellQuotaExhausted(ctx, e.InstanceID, e.Package)
	}
	c.alertHeld(ctx, res.Held)
	for _, e := range res.Expired {
		st.ExpiredUnalerted += e.Periods
	}
	c.alertExpired(ctx, now, res)

	next := c.tick(now)
	if res.NextClose != nil && res.NextClose.Before(next) {
		next = *res.NextClose
	}
	failure := res.Error
	if err != nil {
		failure = "the pass failed: " + errorMessage(err)
	}
	if failure == "" {
		st.Failures, st.LastError, st.BodySignAlerted = 0, "", false
		return maxTime(next, now.Add(time.Second))
	}
	st.Failures++
	st.LastError = failure
	c.alertFailing(ctx)
	if retry := now.Add(pushBackoff(st.Failures, st.Settings.Period)); retry.Before(next) {
		next = retry
	}
	return maxTime(next, now.Add(time.Second))
}

// tick is the next period boundary plus the push delay after now: when the
// periods of the instances metered with the default settings close.
func (c *collector) tick(now time.Time) time.Time {
	s := c.st.Settings
	return activities.PeriodBoundaryAfter(now.Add(-s.PushDelay), s.Period).Add(s.PushDelay)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// alertFailing tells operators at once that the marketplace refuses the
// pushes' body signature (no retry fixes that), and after three failed
// passes that the pushes are failing.
func (c *collector) alertFailing(ctx workflow.Context) {
	st := c.st
	if !st.BodySignAlerted && strings.Contains(st.LastError, koogallery.OpenAPIInvalidBodySign) {
		st.BodySignAlerted = true
		c.alert(ctx, "usage_push_signature_refused", fmt.Sprintf(
			"The marketplace refused the body signature of the usage pushes (%s): %s. Retrying will not help until the "+
				"cause is fixed: check KOOGALLERY_ACCESS_KEY (the 基础接口 key signs the body), then the form of the body "+
				"the marketplace verifies (contract §11.3 in docs/contract.md). Periods are kept for 21 days.",
			koogallery.OpenAPIInvalidBodySign, st.LastError))
	}
	if st.Failures == 3 {
		c.alert(ctx, "usage_push_failing", fmt.Sprintf(
			"Usage has not been pushed for 3 passes: %s. Retrying; periods are kept for up to 21 days.", st.LastError))
	}
}

// alertHeld tells operators about the periods taken out of the pushes.
func (c *collector) alertHeld(ctx workflow.Context, held []string) {
	if len(held) == 0 {
		return
	}
	shown := held[:min(len(held), 10)]
	more := ""
	if len(held) > len(shown) {
		more = fmt.Sprintf(" (and %d more)", len(held)-len(shown))
	}
	c.alert(ctx, "usage_period_held", fmt.Sprintf(
		"%d usage period(s) are held for an operator%s; the other periods go on: %s. "+
			"GET /v1/instances/{id}/usage lists them; POST …/usage/periods/{begin}/split or /write-off repairs them.",
		len(held), more, strings.Join(shown, "; ")))
}

// alertExpired tells operators about the periods that expired, at most
// once a day.
func (c *collector) alertExpired(ctx workflow.Context, now time.Time, res activities.CollectUsageResult) {
	st := c.st
	if st.ExpiredUnalerted == 0 || (st.LastExpiryAlert != nil && now.Sub(*st.LastExpiryAlert) < expiryAlertInterval) {
		return
	}
	var instances []string
	for _, e := range res.Expired[:min(len(res.Expired), 10)] {
		instances = append(instances, e.InstanceID)
	}
	c.alert(ctx, "usage_expired", fmt.Sprintf(
		"%d usage period(s) could not be pushed within the marketplace's 21 days and will not be billed "+
			"(instances %s…); GET /v1/instances/{id}/usage lists them.", st.ExpiredUnalerted, strings.Join(instances, ", ")))
	st.ExpiredUnalerted, st.LastExpiryAlert = 0, &now
}

func (c *collector) alert(ctx workflow.Context, kind, message string) {
	err := execute(ctx, alertOptions, acts.Alert, activities.AlertInput{Kind: kind, Message: message}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("Alert not sent", "kind", kind, "error", err)
	}
}
