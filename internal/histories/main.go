// Command histories records the workflow histories that the replay test
// (workflows/replay_test.go) checks every change against: it plays a few
// purchases against a Temporal dev server, with fake activities and
// timers of seconds, and writes each complete history as JSON.
//
//	make histories   # go run ./internal/histories -out workflows/testdata/histories
//	go run ./internal/histories -only payperuse   # one scenario
//
// Re-record only on purpose: a history that no longer replays means a code
// change would break purchases already running, which needs workflow
// versioning (workflow.GetVersion), not a new recording.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/workflows"
)

func main() {
	out := flag.String("out", "workflows/testdata/histories", "directory for the history files")
	cli := flag.String("temporal", "bin/temporal", "the Temporal CLI")
	only := flag.String("only", "", "record only this scenario (default: all)")
	flag.Parse()
	if err := run(context.Background(), *out, *cli, *only); err != nil {
		fmt.Fprintln(os.Stderr, "histories:", err)
		os.Exit(1)
	}
}

const taskQueue = "histories"

// policy: timers of seconds, so that a whole life records in seconds.
var policy = workflows.Policy{
	FreezeGrace: 2 * time.Second, Retention: 4 * time.Second, ReleasePolicy: workflows.ReleasePolicyHold,
	SupervisionSyncDelay: 2 * time.Second, DebugTTL: time.Hour,
	MeteringPeriod: time.Second, MeteringPushDelay: 200 * time.Millisecond,
}

func run(ctx context.Context, out, cli, only string) error {
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{Logger: quiet},
		LogLevel:      "error",
		SearchAttributes: temporal.NewSearchAttributes(
			workflows.InstanceIDAttribute.ValueSet(""), workflows.OrderIDAttribute.ValueSet(""), workflows.StateAttribute.ValueSet(""),
		),
	})
	if err != nil {
		return fmt.Errorf("start dev server: %w", err)
	}
	defer srv.Stop()
	c := srv.Client()

	acts := &fakes{provisionFailures: map[string]int{"parked-retry": 1}, pushFailures: 2, quotaUsedUp: 1}
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.InstanceWorkflow, workflow.RegisterOptions{Name: workflows.InstanceWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.MeteringWorkflow, workflow.RegisterOptions{Name: workflows.MeteringWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.UsageCollectorWorkflow, workflow.RegisterOptions{Name: workflows.UsageCollectorWorkflowName})
	for name, fn := range map[string]any{
		"FetchOrder": acts.FetchOrder, "Provision": acts.Provision,
		"Freeze": acts.Step, "Unfreeze": acts.Step, "Release": acts.Step,
		"Upgrade": acts.Upgrade, "CheckChange": acts.CheckChange,
		"SaveInstance": acts.Save, "Policy": acts.Policy, "Alert": acts.Alert,
		"CloseUsagePeriods": acts.ClosePeriods, "PushUsage": acts.PushUsage,
		"ExcludeFrozenUsage": acts.ExcludeFrozen, "RegisterPackage": acts.RegisterPackage,
		"DeactivatePackage": acts.DeactivatePackage, "DropDirectory": acts.DropDirectory,
		"RegisterMetering": acts.RegisterMetering, "PauseMetering": acts.CloseMetered, "StopMetering": acts.CloseMetered,
		"ResumeMetering": acts.ResumeMetering, "CollectUsage": acts.CollectUsage,
	} {
		w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, sc := range scenarios {
		if only != "" && sc.name != only {
			continue
		}
		rec := record
		if sc.collector {
			rec = recordCollector
		}
		if err := rec(ctx, c, out, sc); err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		fmt.Println("recorded", sc.name)
	}
	return nil
}

// scenario is one purchase's life: steps run in order, each a signal or a
// wait for a state.
type scenario struct {
	name  string
	steps []step
	// collector records the usage collector instead of a purchase.
	collector bool
	// file names the recording (default: the name). A scenario whose
	// workflow changed behaviour is recorded under a new file, so that the
	// recording of the earlier behaviour stays: running purchases may
	// still replay it.
	file string
}

func (sc scenario) fileName() string { return cmp.Or(sc.file, sc.name) + ".json" }

type step struct {
	callback *workflows.Callback
	operator *workflows.OperatorRequest
	internal *workflows.Internal
	waitFor  workflows.State
	// applied waits until the callback with this key was applied.
	applied string
	sleep   time.Duration
}

func cb(seq int64, activity, key string, mod func(*workflows.Callback)) step {
	c := workflows.Callback{Key: key, Seq: seq, Activity: activity}
	if mod != nil {
		mod(&c)
	}
	return step{callback: &c}
}

func op(name string, mod func(*workflows.OperatorRequest)) step {
	o := workflows.OperatorRequest{ID: "op-" + name, Name: name, Reason: "recorded scenario"}
	if mod != nil {
		mod(&o)
	}
	return step{operator: &o}
}

func waitFor(s workflows.State) step { return step{waitFor: s} }

func applied(key string) step { return step{applied: key} }

// sleep lets the metering close a few periods.
func sleep(d time.Duration) step { return step{sleep: d} }

var far = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)

var scenarios = []scenario{
	// The standard life of a yearly purchase, each callback applied before
	// the next is sent, so that its history is the same every time: what
	// TestStandardLifeHistory measures (queryInstance, answered from the
	// read model, never reaches the workflow).
	{name: "standard", file: "standard-generation3", steps: []step{
		waitFor(workflows.StateActive),
		cb(1, workflows.ActivityNewInstance, "newInstance:o:l", nil),
		applied("newInstance:o:l"),
		cb(2, workflows.ActivityRefreshInstance, "refreshInstance:standard:R1:R1-1", func(c *workflows.Callback) {
			c.Scene, c.ExpireTime, c.OrderID, c.OrderLineID = "RENEWAL", far.AddDate(1, 0, 0), "R1", "R1-1"
		}),
		applied("refreshInstance:standard:R1:R1-1"),
		cb(3, workflows.ActivityUpdateInstanceStatus, "updateInstanceStatus:standard:FREEZE:1", func(c *workflows.Callback) { c.Status = "FREEZE" }),
		waitFor(workflows.StateFrozen),
		cb(4, workflows.ActivityUpdateInstanceStatus, "updateInstanceStatus:standard:UNFREEZE:2", func(c *workflows.Callback) { c.Status = "UNFREEZE" }),
		waitFor(workflows.StateActive),
		cb(5, workflows.ActivityReleaseInstance, "releaseInstance:standard", nil),
		waitFor(workflows.StateReleased),
	}},
	{name: "lifecycle", steps: []step{
		waitFor(workflows.StateActive),
		cb(1, workflows.ActivityNewInstance, "newInstance:o:l", nil),
		cb(2, workflows.ActivityRefreshInstance, "refreshInstance:lifecycle:R1:R1-1", func(c *workflows.Callback) {
			c.Scene, c.ExpireTime, c.OrderID, c.OrderLineID = "RENEWAL", far, "R1", "R1-1"
		}),
		cb(3, workflows.ActivityUpdateInstanceStatus, "updateInstanceStatus:lifecycle:FREEZE:1", func(c *workflows.Callback) { c.Status = "FREEZE" }),
		waitFor(workflows.StateFrozen),
		cb(4, workflows.ActivityUpdateInstanceStatus, "updateInstanceStatus:lifecycle:UNFREEZE:2", func(c *workflows.Callback) { c.Status = "UNFREEZE" }),
		waitFor(workflows.StateActive),
		cb(5, workflows.ActivityUpgradeInstance, "upgradeInstance:lifecycle:U1:U1-1", func(c *workflows.Callback) { c.OrderID, c.OrderLineID = "U1", "U1-1" }),
		cb(6, workflows.ActivityReleaseInstance, "releaseInstance:lifecycle", nil),
		waitFor(workflows.StateReleased),
	}},
	{name: "self-freeze-hold", steps: []step{
		waitFor(workflows.StateGrace),
		waitFor(workflows.StateFrozen),
		waitFor(workflows.StateReleaseOverdue),
		op(workflows.OpForceRelease, nil),
		waitFor(workflows.StateReleased),
	}},
	// The supervision flow with the requirements step (supervision.json,
	// recorded before it, keeps the older flow's replay: it is not
	// re-recorded).
	{name: "supervision-requirements", steps: []step{
		waitFor(workflows.StateAwaitingRequirements),
		op(workflows.OpSubmitRequirements, nil),
		waitFor(workflows.StateRequirementsSubmitted),
		op(workflows.OpRejectRequirements, nil),
		waitFor(workflows.StateAwaitingRequirements),
		op(workflows.OpSubmitRequirements, func(o *workflows.OperatorRequest) { o.ID = "op-submit-again" }),
		waitFor(workflows.StateRequirementsSubmitted),
		op(workflows.OpConfirmRequirements, nil),
		waitFor(workflows.StateAwaitingDelivery),
		op(workflows.OpConfirmDelivery, func(o *workflows.OperatorRequest) { o.Evidence, o.Result = "acceptance.pdf", "tenant configured" }),
		waitFor(workflows.StateDelivered),
		op(workflows.OpAppeal, nil),
		waitFor(workflows.StateAppealed),
		op(workflows.OpResolveAppeal, nil),
		op(workflows.OpAccept, nil),
		waitFor(workflows.StateAccepted),
		waitFor(workflows.StateActive),
		cb(1, workflows.ActivityReleaseInstance, "releaseInstance:supervision-requirements", nil),
		waitFor(workflows.StateReleased),
	}},
	// Pay-per-use: metered every second, the first pushes refused, arrears
	// (FREEZE, UNFREEZE), then a package used up and a new one.
	{name: "payperuse", file: "payperuse-batched", steps: []step{
		waitFor(workflows.StateActive),
		sleep(3 * time.Second),
		cb(1, workflows.ActivityUpdateInstanceStatus, "updateInstanceStatus:payperuse:FREEZE:1", func(c *workflows.Callback) { c.Status = "FREEZE" }),
		waitFor(workflows.StateFrozen),
		sleep(2 * time.Second),
		cb(2, workflows.ActivityUpdateInstanceStatus, "updateInstanceStatus:payperuse:UNFREEZE:2", func(c *workflows.Callback) { c.Status = "UNFREEZE" }),
		waitFor(workflows.StateActive),
		// The package is used up: what the usage collector tells the
		// instance (a metering run from before the collector found it
		// itself, in its first close after the unfreeze).
		step{internal: &workflows.Internal{Kind: workflows.InternalQuotaExhausted, Package: "pkg-1"}},
		waitFor(workflows.StateFrozen),
		step{internal: &workflows.Internal{Kind: workflows.InternalQuotaRestored, Package: "pkg-2"}},
		waitFor(workflows.StateActive),
		sleep(2 * time.Second),
		cb(3, workflows.ActivityReleaseInstance, "releaseInstance:payperuse", nil),
		waitFor(workflows.StateReleased),
	}},
	// The usage collector: passes that close, push, fail once and find a
	// package used up; it runs for ever, so the recording ends it.
	{name: "usage-collector", collector: true},
	{name: "parked-retry", steps: []step{
		waitFor(workflows.StateParked),
		op(workflows.OpRetry, nil),
		waitFor(workflows.StateActive),
		cb(1, workflows.ActivityReleaseInstance, "releaseInstance:parked-retry", nil),
		waitFor(workflows.StateReleased),
	}},
}

func record(ctx context.Context, c client.Client, out string, sc scenario) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	id := workflows.InstanceWorkflowID(sc.name)
	// Started as the inbox starts it: with its search attributes.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.InstanceIDAttribute.ValueSet(sc.name),
			workflows.OrderIDAttribute.ValueSet("order-"+sc.name), workflows.StateAttribute.ValueSet(string(workflows.StateProvisioning)))},
		workflows.InstanceWorkflowName, workflows.InstanceInput{InstanceID: sc.name, OrderID: "order-" + sc.name, OrderLineID: "line-" + sc.name,
			Generation: workflows.InstanceGeneration})
	if err != nil {
		return err
	}
	for _, s := range sc.steps {
		switch {
		case s.callback != nil:
			err = c.SignalWorkflow(ctx, id, "", workflows.CallbackSignal, *s.callback)
		case s.operator != nil:
			s.operator.At = time.Now().UTC()
			err = c.SignalWorkflow(ctx, id, "", workflows.OperatorSignal, *s.operator)
		case s.internal != nil:
			err = c.SignalWorkflow(ctx, id, "", workflows.InternalSignal, *s.internal)
		case s.sleep > 0:
			time.Sleep(s.sleep)
		case s.applied != "":
			err = waitApplied(ctx, c, id, s.applied)
		default:
			err = waitState(ctx, c, id, s.waitFor)
		}
		if err != nil {
			return err
		}
	}
	if err := run.Get(ctx, nil); err != nil {
		return fmt.Errorf("workflow ended with %w", err)
	}
	if err := writeHistory(ctx, c, id, filepath.Join(out, sc.fileName())); err != nil {
		return err
	}
	// A metered purchase's metering is a workflow of its own, ended by the
	// release's final flush.
	metering := workflows.MeteringWorkflowID(sc.name)
	if _, err := c.DescribeWorkflowExecution(ctx, metering, ""); err != nil {
		return nil
	}
	if err := c.GetWorkflow(ctx, metering, "").Get(ctx, nil); err != nil {
		return fmt.Errorf("metering ended with %w", err)
	}
	return writeHistory(ctx, c, metering, filepath.Join(out, strings.TrimSuffix(sc.fileName(), ".json")+"-metering.json"))
}

// recordCollector records the usage collector's first passes (one a
// second), then terminates it: it never ends by itself.
func recordCollector(ctx context.Context, c client.Client, out string, sc scenario) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.UsageCollectorWorkflowID(taskQueue), TaskQueue: taskQueue},
		workflows.UsageCollectorWorkflowName, workflows.UsageCollectorInput{Period: time.Second, PushDelay: 0})
	if err != nil {
		return err
	}
	for {
		v, err := c.QueryWorkflow(ctx, workflows.UsageCollectorWorkflowID(taskQueue), "", workflows.UsageCollectorQuery)
		if err != nil {
			return err
		}
		var st workflows.CollectorState
		if err := v.Get(&st); err != nil {
			return err
		}
		if st.Passes >= 5 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := c.TerminateWorkflow(ctx, workflows.UsageCollectorWorkflowID(taskQueue), run.GetRunID(), "recorded"); err != nil {
		return err
	}
	return writeHistory(ctx, c, workflows.UsageCollectorWorkflowID(taskQueue), filepath.Join(out, sc.fileName()))
}

func waitState(ctx context.Context, c client.Client, id string, want workflows.State) error {
	return waitSnapshot(ctx, c, id, string(want), func(s workflows.Snapshot) bool { return s.State == want })
}

// waitSnapshot polls the workflow's state until cond holds.
func waitSnapshot(ctx context.Context, c client.Client, id, what string, cond func(workflows.Snapshot) bool) error {
	var last workflows.Snapshot
	for {
		v, err := c.QueryWorkflow(ctx, id, "", workflows.StateQuery)
		if err == nil {
			var s workflows.Snapshot
			if err := v.Get(&s); err == nil && cond(s) {
				return nil
			}
			last = s
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s (last seen: %s, %s): %w", what, last.State, last.Reason, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitApplied waits until the workflow applied the callback keyed key.
func waitApplied(ctx context.Context, c client.Client, id, key string) error {
	return waitSnapshot(ctx, c, id, "callback "+key, func(s workflows.Snapshot) bool { return slices.Contains(s.Applied, key) })
}

func writeHistory(ctx context.Context, c client.Client, id, path string) error {
	iter := c.GetWorkflowHistory(ctx, id, "", false, 0)
	hist := &historypb.History{}
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			return err
		}
		hist.Events = append(hist.Events, e)
	}
	raw, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

// fakes are activities that behave like a healthy application, except
// where a scenario wants a failure.
type fakes struct {
	mu                sync.Mutex
	provisionFailures map[string]int
	pushFailures      int // the first pushes the marketplace refuses
	quotaUsedUp       int // closes after the unfreeze that report a package used up
	unfrozen          bool
	passes            int // of the usage collector
}

func (f *fakes) FetchOrder(_ context.Context, in activities.FetchOrderInput) (workflows.Order, error) {
	if in.OrderID == "order-payperuse" {
		return workflows.Order{OrderID: in.OrderID, OrderLineID: in.OrderLineID, OrderType: "NEW", ChargingMode: "ON_DEMAND",
			SkuCode: "sku-ppu", ProductID: "prod-ppu", CustomerID: "cust"}, nil
	}
	expire := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second)
	if in.OrderID == "order-standard" {
		expire = far // nothing expires during the standard life
	}
	ten := int64(10)
	return workflows.Order{OrderID: in.OrderID, OrderLineID: in.OrderLineID, OrderType: "NEW", ChargingMode: "PERIOD",
		SkuCode: "sku", ProductID: "prod", LinearValue: &ten, PeriodType: "month", PeriodNumber: 1, ExpireTime: &expire}, nil
}

func (f *fakes) ClosePeriods(_ context.Context, in activities.ClosePeriodsInput) (activities.ClosePeriodsResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := activities.ClosePeriodsResult{Closed: len(in.Periods)}
	if f.unfrozen && f.quotaUsedUp > 0 {
		f.quotaUsedUp--
		res.PackageExhausted = "pkg-1"
	}
	return res, nil
}

func (f *fakes) PushUsage(context.Context, activities.PushUsageInput) (activities.PushUsageResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pushFailures > 0 {
		f.pushFailures--
		return activities.PushUsageResult{Error: "push 1 usage period(s): koogallery open API: HTTP 500 MKT.0999"}, nil
	}
	return activities.PushUsageResult{Pushed: 1}, nil
}

func (f *fakes) RegisterMetering(context.Context, activities.RegisterMeteringInput) error { return nil }

func (f *fakes) CloseMetered(context.Context, activities.MeteringChangeInput) (activities.MeteringChangeResult, error) {
	return activities.MeteringChangeResult{Periods: 1}, nil
}

func (f *fakes) ResumeMetering(context.Context, activities.MeteringChangeInput) error { return nil }

// CollectUsage: the second pass cannot push, the third finds a package
// used up.
func (f *fakes) CollectUsage(_ context.Context, in activities.CollectUsageInput) (activities.CollectUsageResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passes++
	next := in.Now.Add(time.Second)
	res := activities.CollectUsageResult{Instances: 2, Periods: 2, Pushed: 2, Calls: 1, NextClose: &next}
	switch f.passes {
	case 2:
		res.Pushed, res.Error = 0, "push 2 usage period(s): koogallery open API: HTTP 500 MKT.0999"
	case 3:
		res.Exhausted = []activities.ExhaustedPackage{{InstanceID: "collector-ppu", Package: "pkg-9"}}
	}
	return res, nil
}

func (f *fakes) ExcludeFrozen(context.Context, activities.ExcludeFrozenInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unfrozen = true
	return nil
}

func (f *fakes) RegisterPackage(context.Context, activities.RegisterPackageInput) ([]string, error) {
	return nil, nil
}

func (f *fakes) DeactivatePackage(context.Context, string) error { return nil }

// DropDirectory: the recorded purchases have no 联营 directory.
func (f *fakes) DropDirectory(context.Context, string) error { return nil }

func (f *fakes) Provision(_ context.Context, in activities.ProvisionInput) (workflows.AppInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.provisionFailures[in.InstanceID] > 0 {
		f.provisionFailures[in.InstanceID]--
		return workflows.AppInfo{}, temporal.NewNonRetryableApplicationError("provision: plan unknown", "ProvisionerRejected", nil)
	}
	return workflows.AppInfo{FrontEndURL: "https://app.example.com/t/" + in.InstanceID, HasCredentials: true}, nil
}

func (f *fakes) Step(context.Context, activities.TenantInput) error     { return nil }
func (f *fakes) Upgrade(context.Context, activities.UpgradeInput) error { return nil }
func (f *fakes) CheckChange(context.Context, activities.CheckChangeInput) (workflows.ChangeCheckResult, error) {
	return workflows.ChangeCheckResult{Allowed: true}, nil
}
func (f *fakes) Save(context.Context, activities.SaveInput) error   { return nil }
func (f *fakes) Alert(context.Context, activities.AlertInput) error { return nil }

func (f *fakes) Policy(_ context.Context, in activities.PolicyInput) (workflows.Policy, error) {
	p := policy
	p.Supervised = strings.HasPrefix(in.Order.OrderID, "order-supervision")
	return p, nil
}
