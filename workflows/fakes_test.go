package workflows

import (
	"context"
	"fmt"
	"github.com/fulfillment-server/fulfillment/activities"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fakeApp stands in for the activities: it records every call and answers
// from its fields.
type fakeApp struct {
	mu    sync.Mutex
	calls []string
	saves []activities.SaveInput

	orders        map[string]Order // by order ID
	fetchErr      error
	provisionErrs []error // returned by successive Provision calls, then success
	stepErr       map[string]error
	verdict       ChangeCheckResult
	provisioned   []activities.ProvisionInput
	upgrades      []activities.UpgradeInput
	operations    []string
	checks        []activities.CheckChangeInput
	policy        Policy
	alerts        []activities.AlertInput

	// The metering: closed periods, frozen stretches excluded, and the
	// time after which the customer's package is used up (nil: never).
	closed        []closedSpan
	excluded      []Span
	quotaUsedUpAt *time.Time
	// resetCovered are the instances a resetting package covers.
	resetCovered []string
	// droppedDirectories are the instances whose directory was dropped.
	droppedDirectories []string
	// licenseRefusal, when set, is IssueLicense's refusal.
	licenseRefusal string
}

// closedSpan is a period closed by CloseUsagePeriods.
type closedSpan struct {
	Span
	Billable bool
}

func (f *fakeApp) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeApp) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeApp) Saves() []activities.SaveInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.saves)
}

func (f *fakeApp) FetchOrder(_ context.Context, in activities.FetchOrderInput) (Order, error) {
	f.record("FetchOrder " + in.OrderID)
	if f.fetchErr != nil {
		return Order{}, f.fetchErr
	}
	o, ok := f.orders[in.OrderID]
	if !ok {
		return Order{}, temporal.NewNonRetryableApplicationError("order "+in.OrderID+" not found", "OrderUnavailable", nil)
	}
	return o, nil
}

func (f *fakeApp) Provision(_ context.Context, in activities.ProvisionInput) (AppInfo, error) {
	f.record("Provision")
	f.mu.Lock()
	f.provisioned = append(f.provisioned, in)
	var err error
	if len(f.provisionErrs) > 0 {
		err, f.provisionErrs = f.provisionErrs[0], f.provisionErrs[1:]
	}
	f.mu.Unlock()
	if err != nil {
		return AppInfo{}, err
	}
	return AppInfo{FrontEndURL: "https://app.example.com/t/" + in.InstanceID, Memo: "欢迎", HasCredentials: true}, nil
}

func (f *fakeApp) step(name string) error {
	f.record(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stepErr[name]
}

func (f *fakeApp) Freeze(_ context.Context, in activities.TenantInput) error {
	return f.tenantStep("Freeze", in)
}

func (f *fakeApp) Unfreeze(_ context.Context, in activities.TenantInput) error {
	return f.tenantStep("Unfreeze", in)
}

func (f *fakeApp) Release(_ context.Context, in activities.TenantInput) error {
	return f.tenantStep("Release", in)
}

// tenantStep records a freeze, unfreeze or release with its operation ID.
func (f *fakeApp) tenantStep(name string, in activities.TenantInput) error {
	f.mu.Lock()
	f.operations = append(f.operations, in.OperationID)
	f.mu.Unlock()
	return f.step(name)
}

// Operations lists the operation IDs of every freeze, unfreeze and release
// attempt, retries included.
func (f *fakeApp) Operations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.operations)
}

// ApplyDirectorySync records a kit sync's application by its seq.
func (f *fakeApp) ApplyDirectorySync(_ context.Context, in activities.DirectoryInput) (activities.DirectoryApplied, error) {
	f.record(fmt.Sprintf("ApplyDirectorySync %d", in.Seq))
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stepErr["ApplyDirectorySync"]; err != nil {
		return activities.DirectoryApplied{}, err
	}
	return activities.DirectoryApplied{Summary: fmt.Sprintf("sync %d applied.", in.Seq)}, nil
}

// IssueLicense records a licence request's application by its seq and
// the quota it was given.
func (f *fakeApp) IssueLicense(_ context.Context, in activities.LicenseInput) (activities.LicenseIssued, error) {
	f.record(fmt.Sprintf("IssueLicense %d quota %d", in.Seq, in.Quota))
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stepErr["IssueLicense"]; err != nil {
		return activities.LicenseIssued{}, err
	}
	if f.licenseRefusal != "" {
		return activities.LicenseIssued{Refused: f.licenseRefusal}, nil
	}
	return activities.LicenseIssued{Summary: fmt.Sprintf("licence %d uploaded.", in.Seq)}, nil
}

// DropDirectory records the instance whose directory is dropped, apart
// from the tenant calls (like SaveInstance, it is the server's own data).
func (f *fakeApp) DropDirectory(_ context.Context, instanceID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.droppedDirectories = append(f.droppedDirectories, instanceID)
	return nil
}

func (f *fakeApp) Upgrade(_ context.Context, in activities.UpgradeInput) error {
	f.mu.Lock()
	f.upgrades = append(f.upgrades, in)
	f.mu.Unlock()
	return f.step("Upgrade")
}

func (f *fakeApp) CheckChange(_ context.Context, in activities.CheckChangeInput) (ChangeCheckResult, error) {
	f.record("CheckChange")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, in)
	return f.verdict, nil
}

func (f *fakeApp) Policy(_ context.Context, _ activities.PolicyInput) (Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.policy, nil
}

func (f *fakeApp) Alert(_ context.Context, in activities.AlertInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alerts = append(f.alerts, in)
	return nil
}

func (f *fakeApp) Alerts() []activities.AlertInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.alerts)
}

// setStepErr makes a tenant step fail (nil: succeed) from now on.
func (f *fakeApp) setStepErr(step string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stepErr[step] = err
}

func (f *fakeApp) CloseUsagePeriods(_ context.Context, in activities.ClosePeriodsInput) (activities.ClosePeriodsResult, error) {
	f.record(fmt.Sprintf("CloseUsagePeriods %d", len(in.Periods)))
	f.mu.Lock()
	defer f.mu.Unlock()
	res := activities.ClosePeriodsResult{Closed: len(in.Periods)}
	for _, p := range in.Periods {
		f.closed = append(f.closed, closedSpan{Span: p, Billable: in.Billable})
		if f.quotaUsedUpAt != nil && p.End.After(*f.quotaUsedUpAt) {
			res.PackageExhausted = "pkg-1"
		}
	}
	return res, nil
}

func (f *fakeApp) PushUsage(context.Context, activities.PushUsageInput) (activities.PushUsageResult, error) {
	f.record("PushUsage")
	return activities.PushUsageResult{}, nil
}

func (f *fakeApp) ExcludeFrozenUsage(_ context.Context, in activities.ExcludeFrozenInput) error {
	f.record("ExcludeFrozenUsage")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.excluded = append(f.excluded, in.Span)
	return nil
}

func (f *fakeApp) closedSpans() []closedSpan {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.closed)
}

func (f *fakeApp) setQuotaUsedUpAt(t *time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.quotaUsedUpAt = t
}

func (f *fakeApp) RegisterPackage(_ context.Context, in activities.RegisterPackageInput) ([]string, error) {
	f.record("RegisterPackage " + in.PackageInstanceID)
	return nil, nil
}

// ResetPackage records the cycle start and answers the instances the
// package covers (resetCovered).
func (f *fakeApp) ResetPackage(_ context.Context, in activities.ResetPackageInput) ([]string, error) {
	f.record("ResetPackage " + in.CycleStart.UTC().Format(time.RFC3339))
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.resetCovered), nil
}

func (f *fakeApp) DeactivatePackage(_ context.Context, id string) error {
	f.record("DeactivatePackage " + id)
	return nil
}

// tenantCalls are the calls that concern the tenant and the order, without
// the metering's.
func (f *fakeApp) tenantCalls() []string {
	var out []string
	for _, c := range f.Calls() {
		if !strings.HasPrefix(c, "CloseUsagePeriods") && c != "PushUsage" && c != "ExcludeFrozenUsage" {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeApp) SaveInstance(_ context.Context, in activities.SaveInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saves = append(f.saves, in)
	return nil
}

var (
	t0         = time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	firstYear  = time.Date(2027, 1, 10, 15, 59, 59, 0, time.UTC)
	secondYear = time.Date(2028, 1, 10, 15, 59, 59, 0, time.UTC)
)

// defaultPolicy is the configuration's default: a day of freeze grace,
// 15 days of retention, hold.
var defaultPolicy = Policy{
	FreezeGrace: 24 * time.Hour, Retention: 360 * time.Hour, ReleasePolicy: ReleasePolicyHold,
	SupervisionSyncDelay: 3 * time.Hour, DebugTTL: 72 * time.Hour,
}

var permanent = func(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, "ProvisionerRejected", nil)
}

// since is how far t is from the start, for scheduling at absolute times.
func since(t time.Time) time.Duration { return t.Sub(t0) }

func newFakeApp() *fakeApp {
	ten := int64(10)
	twenty := int64(20)
	return &fakeApp{
		orders: map[string]Order{
			"ORDER-NEW": {OrderID: "ORDER-NEW", OrderLineID: "ORDER-NEW-000001", OrderType: "NEW", ChargingMode: "PERIOD",
				SkuCode: "sku-basic", ProductID: "prod-year", LinearValue: &ten, PeriodType: "year", PeriodNumber: 1,
				ExpireTime: &firstYear, CustomerID: "cust-1"},
			"ORDER-UPGRADE": {OrderID: "ORDER-UPGRADE", OrderLineID: "ORDER-UPGRADE-000001", OrderType: "CHANGE", ChargingMode: "PERIOD",
				SkuCode: "sku-pro", ProductID: "prod-pro-year", LinearValue: &twenty},
		},
		stepErr: map[string]error{},
		policy:  defaultPolicy,
	}
}

// withOrder registers an order and returns its input for a new instance.
func (f *fakeApp) withOrder(o Order) InstanceInput {
	f.orders[o.OrderID] = o
	return InstanceInput{InstanceID: "inst-1", OrderID: o.OrderID, OrderLineID: o.OrderLineID, Generation: InstanceGeneration}
}

func newEnv(t *testing.T, app *fakeApp) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	// The SDK logs every expected activity failure at error level; keep
	// the output for -v runs.
	out := io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestWorkflowEnvironment()
	// A workflow that never ends (a regression) fails the test in a
	// minute rather than running the clock forever.
	env.SetTestTimeout(time.Minute)
	env.SetStartTime(t0)
	// The metering workflow signals its instance by workflow ID.
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: InstanceWorkflowID("inst-1")})
	env.RegisterWorkflowWithOptions(InstanceWorkflow, workflow.RegisterOptions{Name: InstanceWorkflowName})
	env.RegisterWorkflowWithOptions(MeteringWorkflow, workflow.RegisterOptions{Name: MeteringWorkflowName})
	// The fake application closes and pushes usage the way the metering
	// workflow does by itself; the usage collector's batches are tested
	// against the real activities (collector_test.go).
	MeterByItself(env)
	for name, fn := range map[string]any{
		"FetchOrder": app.FetchOrder, "Provision": app.Provision, "Freeze": app.Freeze,
		"Unfreeze": app.Unfreeze, "Upgrade": app.Upgrade, "Release": app.Release,
		"CheckChange": app.CheckChange, "SaveInstance": app.SaveInstance,
		"Policy": app.Policy, "Alert": app.Alert,
		"CloseUsagePeriods": app.CloseUsagePeriods, "PushUsage": app.PushUsage,
		"ExcludeFrozenUsage": app.ExcludeFrozenUsage, "RegisterPackage": app.RegisterPackage,
		"DeactivatePackage": app.DeactivatePackage, "ResetPackage": app.ResetPackage,
		"ApplyDirectorySync": app.ApplyDirectorySync, "DropDirectory": app.DropDirectory,
		"IssueLicense": app.IssueLicense,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	return env
}

var input = InstanceInput{InstanceID: "inst-1", OrderID: "ORDER-NEW", OrderLineID: "ORDER-NEW-000001", Generation: InstanceGeneration}

// callbacks used across tests, numbered by arrival.
func newInstanceCB(seq int64) Callback {
	return Callback{Key: "newInstance:ORDER-NEW:ORDER-NEW-000001", Seq: seq, Activity: ActivityNewInstance, OrderID: "ORDER-NEW", OrderLineID: "ORDER-NEW-000001"}
}

func renewalCB(seq int64, order string, expire time.Time) Callback {
	return Callback{Key: "refreshInstance:inst-1:" + order, Seq: seq, Activity: ActivityRefreshInstance,
		OrderID: order, OrderLineID: order + "-000001", Scene: "RENEWAL", ExpireTime: expire}
}

func statusCB(seq int64, status string, episode int) Callback {
	return Callback{Key: fmt.Sprintf("updateInstanceStatus:inst-1:%s:%d", status, episode), Seq: seq,
		Activity: ActivityUpdateInstanceStatus, Status: status}
}

func releaseCB(seq int64) Callback {
	return Callback{Key: "releaseInstance:inst-1", Seq: seq, Activity: ActivityReleaseInstance}
}

func upgradeCB(seq int64) Callback {
	return Callback{Key: "upgradeInstance:inst-1:ORDER-UPGRADE:ORDER-UPGRADE-000001", Seq: seq, Activity: ActivityUpgradeInstance,
		OrderID: "ORDER-UPGRADE", OrderLineID: "ORDER-UPGRADE-000001"}
}

// signalAt sends callbacks at the given offsets from the start.
func signalAt(env *testsuite.TestWorkflowEnvironment, at time.Duration, cbs ...Callback) {
	env.RegisterDelayedCallback(func() {
		for _, cb := range cbs {
			env.SignalWorkflow(CallbackSignal, cb)
		}
	}, at)
}

// queryAt records the state query's answer at the given offset.
func queryAt(t *testing.T, env *testsuite.TestWorkflowEnvironment, at time.Duration, into *Snapshot) {
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(StateQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(into))
	}, at)
}

func lastSave(t *testing.T, app *fakeApp) activities.ReadModel {
	saves := app.Saves()
	require.NotEmpty(t, saves)
	return saves[len(saves)-1].Snapshot
}

// finalState is the workflow's state once it has ended (the state query).
func finalState(t *testing.T, env *testsuite.TestWorkflowEnvironment) Snapshot {
	t.Helper()
	v, err := env.QueryWorkflow(StateQuery)
	require.NoError(t, err)
	var s Snapshot
	require.NoError(t, v.Get(&s))
	return s
}

func savedEvents(app *fakeApp) []Event {
	var out []Event
	for _, s := range app.Saves() {
		out = append(out, s.Events...)
	}
	return out
}

func eventByKey(t *testing.T, app *fakeApp, key string) Event {
	t.Helper()
	for _, e := range savedEvents(app) {
		if e.Key == key {
			return e
		}
	}
	t.Fatalf("no event %q among %v", key, savedEvents(app))
	return Event{}
}

// operator sends an operator's action.
func operator(env *testsuite.TestWorkflowEnvironment, at time.Duration, op OperatorRequest) {
	env.RegisterDelayedCallback(func() {
		if op.ID == "" {
			op.ID = op.Name
		}
		if op.Reason == "" {
			op.Reason = "test"
		}
		env.SignalWorkflow(OperatorSignal, op)
	}, at)
}

// stateAt records the state query's answer at the given offset, returning
// where it will be.
func stateAt(t *testing.T, env *testsuite.TestWorkflowEnvironment, at time.Duration) *Snapshot {
	var s Snapshot
	queryAt(t, env, at, &s)
	return &s
}

func deadline(s *Snapshot, kind string) (Deadline, bool) {
	for _, d := range s.Deadlines {
		if d.Kind == kind {
			return d, true
		}
	}
	return Deadline{}, false
}

func requireDeadline(t *testing.T, s *Snapshot, kind string, at time.Time) {
	t.Helper()
	d, ok := deadline(s, kind)
	require.True(t, ok, "no %s deadline among %+v", kind, s.Deadlines)
	require.Equal(t, at.UTC(), d.At, "%s deadline", kind)
	require.NotEmpty(t, d.Why)
}

func eventsOfKind(app *fakeApp, kind string) []Event {
	var out []Event
	for _, e := range savedEvents(app) {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// requireStillRunning asserts the workflow neither failed nor finished: the
// test environment ends a workflow still running after ten simulated years
// with a workflow timeout, which is the only error accepted here.
func requireStillRunning(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
	t.Helper()
	err := env.GetWorkflowError()
	if err == nil {
		require.False(t, env.IsWorkflowCompleted(), "the workflow completed")
		return
	}
	var timeout *temporal.TimeoutError
	require.ErrorAs(t, err, &timeout, "the workflow failed: %v", err)
	require.Equal(t, enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, timeout.TimeoutType())
}
