package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

const taskQueue = "fulfillment-test"

// call is one SignalWithStartWorkflow the fake received.
type call struct {
	WorkflowID string
	SignalName string
	Signal     workflows.Callback
	Options    client.StartWorkflowOptions
	Workflow   any
	Args       []any
	Err        error
}

// fakeTemporal records every SignalWithStartWorkflow and answers with what
// fail returns for it.
type fakeTemporal struct {
	mu    sync.Mutex
	calls []call
	fail  func(c call) error
	// hold, while set, makes calls wait until it is closed; holdOnly, when
	// set, limits that to one workflow.
	hold     chan struct{}
	holdOnly string
}

// SignalWorkflow is the retry of a parked provisioning, which the api
// package's tests exercise; here it succeeds.
func (f *fakeTemporal) SignalWorkflow(context.Context, string, string, string, any) error {
	return nil
}

func (f *fakeTemporal) SignalWithStartWorkflow(_ context.Context, workflowID, signalName string, signalArg any,
	options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	hold := f.hold
	if f.holdOnly != "" && f.holdOnly != workflowID {
		hold = nil
	}
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	signal, ok := signalArg.(workflows.Callback)
	if !ok {
		panic(fmt.Sprintf("signal argument is %T, want workflows.Callback", signalArg))
	}
	c := call{WorkflowID: workflowID, SignalName: signalName, Signal: signal, Options: options,
		Workflow: workflow, Args: workflowArgs}
	if f.fail != nil {
		c.Err = f.fail(c)
	}
	f.calls = append(f.calls, c)
	return nil, c.Err
}

// holdCalls makes the calls wait until the returned function is called.
func (f *fakeTemporal) holdCalls() (release func()) { return f.holdCallsTo("") }

// holdCallsTo holds only the calls to one workflow ("": all).
func (f *fakeTemporal) holdCallsTo(workflowID string) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hold := make(chan struct{})
	f.hold, f.holdOnly = hold, workflowID
	return func() {
		f.mu.Lock()
		f.hold, f.holdOnly = nil, ""
		f.mu.Unlock()
		close(hold)
	}
}

func (f *fakeTemporal) setFail(fn func(c call) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

func (f *fakeTemporal) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// keys lists the dedup keys of the calls, with "!" appended to failed ones.
func (f *fakeTemporal) keys() []string {
	out := []string{}
	for _, c := range f.Calls() {
		k := c.Signal.Key
		if c.Err != nil {
			k += "!"
		}
		out = append(out, k)
	}
	return out
}

// keysByWorkflow is keys per workflow, in the order each received them.
func (f *fakeTemporal) keysByWorkflow() map[string][]string {
	out := map[string][]string{}
	for _, c := range f.Calls() {
		k := c.Signal.Key
		if c.Err != nil {
			k += "!"
		}
		out[c.WorkflowID] = append(out[c.WorkflowID], k)
	}
	return out
}

// errTemporalDown is what the client returns while Temporal is away.
var errTemporalDown = serviceerror.NewUnavailable("temporal is down")

func newInbox(t *testing.T) (*inbox.Inbox, *fakeTemporal) {
	t.Helper()
	db := testenv.NewStore(t)
	fake := &fakeTemporal{}
	return &inbox.Inbox{
		Store:       db.Callbacks,
		Temporal:    fake,
		TaskQueue:   taskQueue,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		DirectGrace: 0,
	}, fake
}

func parse(t *testing.T, body string) koogallery.Request {
	t.Helper()
	req, err := koogallery.ParseRequest([]byte(body))
	require.NoError(t, err, body)
	return req
}

// record parses and records a body.
func record(t *testing.T, ib *inbox.Inbox, body string) store.Recorded {
	t.Helper()
	rec, err := ib.Record(context.Background(), parse(t, body), []byte(body), time.Time{})
	require.NoError(t, err, body)
	return rec
}

func row(t *testing.T, ib *inbox.Inbox, rec store.Recorded) store.Callback {
	t.Helper()
	cbs, err := ib.Store.CallbacksOf(context.Background(), rec.Key.InstanceID)
	require.NoError(t, err)
	for _, cb := range cbs {
		if cb.Seq == rec.Callback.Seq {
			return cb
		}
	}
	require.FailNow(t, "callback not stored", "seq %d", rec.Callback.Seq)
	return store.Callback{}
}

func newInstanceBody(orderID, businessID string) string {
	return fmt.Sprintf(`{"activity":"newInstance","orderId":%q,"orderLineId":%q,"businessId":%q}`,
		orderID, orderID+"-1", businessID)
}

func refreshBody(instanceID, orderID string) string {
	return fmt.Sprintf(`{"activity":"refreshInstance","scene":"RENEWAL","orderId":%q,"orderLineId":%q,"instanceId":%q,"expireTime":"20310101000000"}`,
		orderID, orderID+"-1", instanceID)
}

func statusBody(instanceID, status string) string {
	return fmt.Sprintf(`{"activity":"updateInstanceStatus","instanceId":%q,"status":%q}`, instanceID, status)
}

func releaseBody(instanceID string) string {
	return fmt.Sprintf(`{"activity":"releaseInstance","instanceId":%q}`, instanceID)
}

func TestDedupKey(t *testing.T) {
	cases := []struct {
		body string
		want string
	}{
		{`{"activity":"newInstance","orderId":"O1","orderLineId":"O1-1","businessId":"B1"}`, "newInstance:O1:O1-1"},
		{`{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R1","orderLineId":"R1-1","instanceId":"I1","expireTime":"20310101000000"}`,
			"refreshInstance:I1:R1:R1-1"},
		{`{"activity":"updateInstanceStatus","instanceId":"I1","status":"FREEZE"}`, "updateInstanceStatus:I1:FREEZE"},
		{`{"activity":"updateInstanceStatus","instanceId":"I1","status":"UNFREEZE"}`, "updateInstanceStatus:I1:UNFREEZE"},
		{`{"activity":"releaseInstance","instanceId":"I1","orderId":"U1","orderLineId":"U1-1"}`, "releaseInstance:I1"},
		{`{"activity":"releaseInstance","instanceId":"I1"}`, "releaseInstance:I1"},
		{`{"activity":"upgradeInstance","instanceId":"I1","orderId":"G1","orderLineId":"G1-1"}`, "upgradeInstance:I1:G1:G1-1"},
		{`{"activity":"orderNotify","orderId":"O1","orderLineId":"O1-1"}`, "orderNotify:O1:O1-1"},
		// A debug call never shares a key with the real one after it.
		{`{"activity":"orderNotify","orderId":"O1","orderLineId":"O1-1","testFlag":"1"}`, "debug:orderNotify:O1:O1-1"},
		{`{"activity":"updateInstanceStatus","instanceId":"I1","status":"FREEZE","testFlag":"1"}`, "debug:updateInstanceStatus:I1:FREEZE"},
		{`{"activity":"releaseInstance","instanceId":"I1","testFlag":1}`, "debug:releaseInstance:I1"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			key, err := inbox.DedupKey(parse(t, tc.body))
			require.NoError(t, err)
			require.Equal(t, tc.want, key)
		})
	}

	for _, body := range []string{
		`{"activity":"queryInstance","instanceId":"I1"}`,
		`{"activity":"changeInstanceCheck","instanceId":"I1","productInfo":{"skuCode":"s"}}`,
	} {
		_, err := inbox.DedupKey(parse(t, body))
		require.Error(t, err, body)
	}
}

func TestRecordRejectsUnrecordedActivities(t *testing.T) {
	ib, fake := newInbox(t)
	ctx := context.Background()
	for _, body := range []string{
		`{"activity":"queryInstance","instanceId":"I1"}`,
		`{"activity":"changeInstanceCheck","instanceId":"I1","productInfo":{"skuCode":"s"}}`,
	} {
		_, err := ib.Record(ctx, parse(t, body), []byte(body), time.Time{})
		require.Error(t, err, body)
	}
	n, err := ib.Store.UndeliveredCount(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, fake.Calls())
}

func TestRecordUnknownInstance(t *testing.T) {
	ib, fake := newInbox(t)
	for _, body := range []string{
		refreshBody("nope", "R1"),
		statusBody("nope", "FREEZE"),
		releaseBody("nope"),
		`{"activity":"upgradeInstance","instanceId":"nope","orderId":"G1","orderLineId":"G1-1"}`,
	} {
		_, err := ib.Record(context.Background(), parse(t, body), []byte(body), time.Time{})
		require.ErrorIs(t, err, store.ErrUnknownInstance, body)
	}
	require.Empty(t, fake.Calls())
}

func TestDeliverNowNewInstance(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	body := `{"activity":"newInstance","orderId":"O1","orderLineId":"O1-1","businessId":"B1","testFlag":"1"}`

	rec := record(t, ib, body)
	require.True(t, rec.Fresh)
	require.Equal(t, "B1", rec.Key.InstanceID)
	require.Equal(t, body, rec.Callback.Body)
	require.True(t, rec.Callback.Debug)
	require.Empty(t, fake.Calls(), "recording does not signal")

	require.NoError(t, ib.DeliverNow(ctx, rec))

	calls := fake.Calls()
	require.Len(t, calls, 1)
	c := calls[0]
	require.Equal(t, "instance/B1", c.WorkflowID)
	require.Equal(t, workflows.CallbackSignal, c.SignalName)
	require.Equal(t, workflows.Callback{
		Key:         "debug:newInstance:O1:O1-1",
		Seq:         rec.Callback.Seq,
		Activity:    "newInstance",
		ReceivedAt:  rec.Callback.ReceivedAt.UTC(),
		Debug:       true,
		OrderID:     "O1",
		OrderLineID: "O1-1",
	}, c.Signal)
	require.Equal(t, time.UTC, c.Signal.ReceivedAt.Location())

	require.Equal(t, "instance/B1", c.Options.ID)
	require.Equal(t, taskQueue, c.Options.TaskQueue)
	require.Equal(t, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, c.Options.WorkflowIDReusePolicy)
	sa := c.Options.TypedSearchAttributes
	require.Equal(t, 3, sa.Size())
	v, ok := sa.GetKeyword(workflows.InstanceIDAttribute)
	require.True(t, ok)
	require.Equal(t, "B1", v)
	v, ok = sa.GetKeyword(workflows.OrderIDAttribute)
	require.True(t, ok)
	require.Equal(t, "O1", v)
	v, ok = sa.GetKeyword(workflows.StateAttribute)
	require.True(t, ok)
	require.Equal(t, string(workflows.StateProvisioning), v)

	require.Equal(t, workflows.InstanceWorkflowName, c.Workflow)
	require.Equal(t, []any{workflows.InstanceInput{
		InstanceID: "B1", OrderID: "O1", OrderLineID: "O1-1", Debug: true, Generation: workflows.InstanceGeneration,
	}}, c.Args)

	stored := row(t, ib, rec)
	require.True(t, stored.Delivered())
	require.Equal(t, inbox.OutcomeSignalled, stored.Outcome)
	require.Equal(t, "signalled", stored.Outcome)
	require.Equal(t, 1, stored.Attempts)
	require.Empty(t, stored.LastError)

	// A redelivery is recorded as such and, being delivered, not signalled again.
	again := record(t, ib, `{"activity":"newInstance","orderId":"O1","orderLineId":"O1-1","businessId":"B2","testFlag":"1"}`)
	require.False(t, again.Fresh)
	require.Equal(t, "B1", again.Key.InstanceID)
	require.True(t, again.Callback.Delivered())
	require.NoError(t, ib.DeliverNow(ctx, again))
	require.Len(t, fake.Calls(), 1)
}

func TestDeliverNowEachActivity(t *testing.T) {
	cases := []struct {
		name string
		body string
		want workflows.Callback // Seq and ReceivedAt are filled in from the row
	}{
		{
			name: "refresh with milliseconds",
			body: `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R1","orderLineId":"R1-1","instanceId":"B1","productId":"P2","expireTime":"20300102030405678"}`,
			want: workflows.Callback{
				Key: "refreshInstance:B1:R1:R1-1", Activity: "refreshInstance", OrderID: "R1", OrderLineID: "R1-1",
				Scene: "RENEWAL", ExpireTime: time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.UTC), ProductID: "P2",
			},
		},
		{
			name: "refresh with seconds, debug",
			body: `{"activity":"refreshInstance","scene":"UNSUBSCRIBE_RENEWAL_PERIOD","orderId":"R2","orderLineId":"R2-1","instanceId":"B1","expireTime":"20291231235959","testFlag":1}`,
			want: workflows.Callback{
				Key: "debug:refreshInstance:B1:R2:R2-1", Activity: "refreshInstance", OrderID: "R2", OrderLineID: "R2-1",
				Scene: "UNSUBSCRIBE_RENEWAL_PERIOD", ExpireTime: time.Date(2029, 12, 31, 23, 59, 59, 0, time.UTC),
				Debug: true,
			},
		},
		{
			name: "freeze",
			body: `{"activity":"updateInstanceStatus","instanceId":"B1","status":"FREEZE"}`,
			want: workflows.Callback{Key: "updateInstanceStatus:B1:FREEZE:1", Activity: "updateInstanceStatus", Status: "FREEZE"},
		},
		{
			name: "unfreeze",
			body: `{"activity":"updateInstanceStatus","instanceId":"B1","status":"UNFREEZE"}`,
			want: workflows.Callback{Key: "updateInstanceStatus:B1:UNFREEZE:1", Activity: "updateInstanceStatus", Status: "UNFREEZE"},
		},
		{
			name: "release",
			body: `{"activity":"releaseInstance","instanceId":"B1","orderId":"U1","orderLineId":"U1-1"}`,
			want: workflows.Callback{Key: "releaseInstance:B1", Activity: "releaseInstance", OrderID: "U1", OrderLineID: "U1-1"},
		},
		{
			name: "upgrade",
			body: `{"activity":"upgradeInstance","instanceId":"B1","orderId":"G1","orderLineId":"G1-1","testFlag":"1"}`,
			want: workflows.Callback{Key: "debug:upgradeInstance:B1:G1:G1-1", Activity: "upgradeInstance", OrderID: "G1",
				OrderLineID: "G1-1", Debug: true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ib, fake := newInbox(t)
			first := record(t, ib, newInstanceBody("O1", "B1"))
			require.NoError(t, ib.DeliverNow(ctx, first))

			rec := record(t, ib, tc.body)
			require.True(t, rec.Fresh)
			require.Equal(t, tc.want.Key, rec.Callback.DedupKey)
			require.NoError(t, ib.DeliverNow(ctx, rec))

			calls := fake.Calls()
			require.Len(t, calls, 2)
			c := calls[1]
			require.Equal(t, "instance/B1", c.WorkflowID)
			require.Equal(t, workflows.CallbackSignal, c.SignalName)
			want := tc.want
			want.Seq = rec.Callback.Seq
			want.ReceivedAt = rec.Callback.ReceivedAt.UTC()
			require.Equal(t, want, c.Signal)
			if !want.ExpireTime.IsZero() {
				require.Equal(t, time.UTC, c.Signal.ExpireTime.Location())
			}
			// The workflow is started for the instance's own order line.
			require.Equal(t, []any{workflows.InstanceInput{InstanceID: "B1", OrderID: "O1", OrderLineID: "O1-1",
				Generation: workflows.InstanceGeneration}}, c.Args, "a new workflow starts with the newest behaviour")
			orderID, ok := c.Options.TypedSearchAttributes.GetKeyword(workflows.OrderIDAttribute)
			require.True(t, ok)
			require.Equal(t, "O1", orderID)
			require.Equal(t, "instance/B1", c.Options.ID)

			stored := row(t, ib, rec)
			require.True(t, stored.Delivered())
			require.Equal(t, inbox.OutcomeSignalled, stored.Outcome)
		})
	}
}

func TestDeliverFailureLeavesRowForRelay(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	fake.setFail(func(call) error { return errTemporalDown })

	rec := record(t, ib, newInstanceBody("O1", "B1"))
	before := time.Now()
	err := ib.DeliverNow(ctx, rec)
	require.ErrorIs(t, err, errTemporalDown)
	require.Len(t, fake.Calls(), 1)

	stored := row(t, ib, rec)
	require.False(t, stored.Delivered())
	require.Empty(t, stored.Outcome)
	require.Equal(t, 1, stored.Attempts)
	require.Contains(t, stored.LastError, "signal instance/B1")
	require.Contains(t, stored.LastError, errTemporalDown.Error())
	require.True(t, stored.DeliverAfter.After(before), "deliver_after %v is not in the future", stored.DeliverAfter)
	require.WithinDuration(t, before.Add(time.Second), stored.DeliverAfter, 900*time.Millisecond,
		"the first retry is about a second later")
	n, err := ib.Store.UndeliveredCount(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// Not yet due: the relay leaves it alone.
	delivered, err := ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, delivered)
	require.Len(t, fake.Calls(), 1)
}

func TestDeliverToClosedWorkflow(t *testing.T) {
	cases := map[string]error{
		"already started": &serviceerror.WorkflowExecutionAlreadyStarted{},
		"wrapped":         fmt.Errorf("signal with start: %w", serviceerror.NewWorkflowExecutionAlreadyStarted("closed", "", "")),
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ib, fake := newInbox(t)
			rec := record(t, ib, newInstanceBody("O1", "B1"))
			require.NoError(t, ib.DeliverNow(ctx, rec))

			fake.setFail(func(call) error { return answer })
			rel := record(t, ib, releaseBody("B1"))
			require.NoError(t, ib.DeliverNow(ctx, rel))
			require.Len(t, fake.Calls(), 2)

			stored := row(t, ib, rel)
			require.True(t, stored.Delivered())
			require.Equal(t, inbox.OutcomeWorkflowClosed, stored.Outcome)
			require.Equal(t, "instance workflow closed", stored.Outcome)
			require.Empty(t, stored.LastError)
		})
	}
}

func TestDeliverNowWaitsForOlderCallback(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	first := record(t, ib, newInstanceBody("O1", "B1"))
	second := record(t, ib, refreshBody("B1", "R1"))
	// Another instance's waiting callback does not matter.
	other := record(t, ib, newInstanceBody("O2", "B2"))

	err := ib.DeliverNow(ctx, second)
	require.ErrorIs(t, err, inbox.ErrDeliveryDeferred)
	require.Empty(t, fake.Calls())
	stored := row(t, ib, second)
	require.False(t, stored.Delivered())
	require.Zero(t, stored.Attempts, "a refused delivery is not an attempt")
	require.Empty(t, stored.LastError)

	require.NoError(t, ib.DeliverNow(ctx, other))
	require.NoError(t, ib.DeliverNow(ctx, first))
	require.NoError(t, ib.DeliverNow(ctx, second))
	require.Equal(t, []string{"newInstance:O2:O2-1", "newInstance:O1:O1-1", "refreshInstance:B1:R1:R1-1"}, fake.keys())
	require.True(t, row(t, ib, second).Delivered())
}

func TestDeliverNowDefersWhileTemporalIsFailing(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	fake.setFail(func(call) error { return errTemporalDown })
	first := record(t, ib, newInstanceBody("O1", "B1"))
	require.ErrorIs(t, ib.DeliverNow(ctx, first), errTemporalDown)
	require.Len(t, fake.Calls(), 1)

	// Moments after a failure, a request does not wait on Temporal itself,
	// even for another instance.
	fake.setFail(nil)
	second := record(t, ib, newInstanceBody("O2", "B2"))
	require.ErrorIs(t, ib.DeliverNow(ctx, second), inbox.ErrDeliveryDeferred)
	require.Len(t, fake.Calls(), 1)
	stored := row(t, ib, second)
	require.False(t, stored.Delivered())
	require.Zero(t, stored.Attempts)

	// A successful delivery by the relay closes the breaker again.
	delivered, err := ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, delivered, "B2 is due; B1 backs off")
	third := record(t, ib, newInstanceBody("O3", "B3"))
	require.NoError(t, ib.DeliverNow(ctx, third))
	require.Equal(t, []string{"newInstance:O1:O1-1!", "newInstance:O2:O2-1", "newInstance:O3:O3-1"}, fake.keys())
	require.True(t, row(t, ib, third).Delivered())
}

func TestRelayOnceKeepsOrderPerInstance(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)

	// Arrival order interleaves two instances; none is delivered at once.
	aNew := record(t, ib, newInstanceBody("OA", "A"))
	bNew := record(t, ib, newInstanceBody("OB", "B"))
	aRefresh := record(t, ib, refreshBody("A", "RA"))
	bFreeze := record(t, ib, statusBody("B", "FREEZE"))
	aRelease := record(t, ib, releaseBody("A"))
	bUnfreeze := record(t, ib, statusBody("B", "UNFREEZE"))

	// Temporal rejects A's refresh, and only that.
	fake.setFail(func(c call) error {
		if c.Signal.Key == aRefresh.Callback.DedupKey {
			return errTemporalDown
		}
		return nil
	})
	delivered, err := ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, delivered)
	// Instances are served side by side: the order holds per instance.
	require.Equal(t, map[string][]string{
		// A's release waits behind its failed refresh.
		"instance/A": {"newInstance:OA:OA-1", "refreshInstance:A:RA:RA-1!"},
		"instance/B": {"newInstance:OB:OB-1", "updateInstanceStatus:B:FREEZE:1", "updateInstanceStatus:B:UNFREEZE:2"},
	}, fake.keysByWorkflow())

	for _, rec := range []store.Recorded{aNew, bNew, bFreeze, bUnfreeze} {
		stored := row(t, ib, rec)
		require.True(t, stored.Delivered(), stored.DedupKey)
		require.Equal(t, inbox.OutcomeSignalled, stored.Outcome)
	}
	failed := row(t, ib, aRefresh)
	require.False(t, failed.Delivered())
	require.Equal(t, 1, failed.Attempts)
	require.Contains(t, failed.LastError, errTemporalDown.Error())
	require.True(t, failed.DeliverAfter.After(time.Now()))
	skipped := row(t, ib, aRelease)
	require.False(t, skipped.Delivered())
	require.Zero(t, skipped.Attempts, "the later callback was not tried")
	// It is not held for the whole lease: it is due again about when its
	// blocker retries.
	require.WithinDuration(t, failed.DeliverAfter, skipped.DeliverAfter, 2*time.Second)

	// Temporal recovers. Once the refresh's backoff has passed, one pass
	// delivers it and then the release, in order.
	fake.setFail(nil)
	var relayErr error
	require.Eventually(t, func() bool {
		if _, err := ib.RelayOnce(ctx); err != nil {
			relayErr = err
			return true
		}
		return len(fake.Calls()) >= 7
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, relayErr)
	require.True(t, row(t, ib, aRefresh).Delivered())
	require.Equal(t, 2, row(t, ib, aRefresh).Attempts)
	require.True(t, row(t, ib, aRelease).Delivered())
	require.Equal(t, 1, row(t, ib, aRelease).Attempts)

	require.Equal(t, map[string][]string{
		"instance/A": {"newInstance:OA:OA-1", "refreshInstance:A:RA:RA-1!", "refreshInstance:A:RA:RA-1", "releaseInstance:A"},
		"instance/B": {"newInstance:OB:OB-1", "updateInstanceStatus:B:FREEZE:1", "updateInstanceStatus:B:UNFREEZE:2"},
	}, fake.keysByWorkflow())
	// Per instance, successful signals arrive in seq order.
	last := map[string]int64{}
	for _, c := range fake.Calls() {
		if c.Err != nil {
			continue
		}
		require.Greater(t, c.Signal.Seq, last[c.WorkflowID], "%s seq %d after %d", c.WorkflowID, c.Signal.Seq, last[c.WorkflowID])
		last[c.WorkflowID] = c.Signal.Seq
	}
	n, err := ib.Store.UndeliveredCount(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	delivered, err = ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, delivered)
	require.Len(t, fake.Calls(), 7)
}

// A backlog is relayed to many instances at once: one instance whose
// signal hangs does not hold the others.
func TestRelayOnceServesInstancesSideBySide(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	for i := range 40 {
		record(t, ib, newInstanceBody(fmt.Sprintf("O%d", i), fmt.Sprintf("B%d", i)))
	}
	release := fake.holdCallsTo("instance/B0")
	done := make(chan int)
	go func() {
		n, err := ib.RelayOnce(ctx)
		assert.NoError(t, err)
		done <- n
	}()
	require.Eventually(t, func() bool { return len(fake.Calls()) == 39 }, 10*time.Second, time.Millisecond,
		"the other 39 instances are delivered while B0's signal hangs")
	release()
	require.Equal(t, 40, <-done)
	n, err := ib.Store.UndeliveredCount(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestRelayOnceUnreadableRow(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	first := record(t, ib, newInstanceBody("O1", "B1"))
	// A renewal recorded without its scene and expireTime (written behind
	// the inbox's back, as by a version that did not keep them): no signal
	// can be built from it.
	bad, err := ib.Store.RecordCallback(ctx, store.NewCallback{
		DedupKey: "refreshInstance:B1:R0:R0-1", Activity: "refreshInstance", InstanceID: "B1", OrderID: "R0", OrderLineID: "R0-1",
		Body: []byte(`{"activity":"refreshInstance",`),
	})
	require.NoError(t, err)
	later := record(t, ib, refreshBody("B1", "R1"))
	other := record(t, ib, newInstanceBody("O2", "B2"))

	// The unreadable row is parked for an operator at once (retrying
	// cannot read it) and holds back nothing: the instance's next
	// callback and the other instance's are delivered.
	delivered, err := ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, delivered)
	require.ElementsMatch(t, []string{"newInstance:O1:O1-1", "refreshInstance:B1:R1:R1-1", "newInstance:O2:O2-1"}, fake.keys())

	stored := row(t, ib, bad)
	require.False(t, stored.Delivered())
	require.True(t, stored.ParkedAt.Valid)
	require.Equal(t, 1, stored.Attempts)
	require.Contains(t, stored.LastError, "the recorded callback can no longer be read")
	require.True(t, row(t, ib, first).Delivered())
	require.True(t, row(t, ib, later).Delivered())
	require.True(t, row(t, ib, other).Delivered())
	parked, err := ib.Store.ParkedCallbacks(ctx, 10)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	require.Equal(t, bad.Callback.Seq, parked[0].Seq)
	n, err := ib.Store.UndeliveredCount(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a parked callback is not relay backlog")

	// Nothing more happens to it until an operator acts.
	delivered, err = ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, delivered)
	require.Equal(t, 1, row(t, ib, bad).Attempts)
}

func TestDirectGraceLeavesFreshCallbacksToTheRequest(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	ib.DirectGrace = time.Hour
	rec := record(t, ib, newInstanceBody("O1", "B1"))
	require.True(t, rec.Callback.DeliverAfter.After(time.Now().Add(59*time.Minute)))

	delivered, err := ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, delivered)
	require.Empty(t, fake.Calls())

	require.NoError(t, ib.DeliverNow(ctx, rec))
	require.Len(t, fake.Calls(), 1)
}

func TestOrderNotifyIsRecordedNotSignalled(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	body := `{"activity":"orderNotify","orderId":"O1","orderLineId":"O1-1","testFlag":"1"}`

	rec := record(t, ib, body)
	require.True(t, rec.Fresh)
	require.Empty(t, rec.Key.InstanceID)
	require.True(t, rec.Callback.Delivered())
	require.Equal(t, inbox.OutcomeNotice, rec.Callback.Outcome)
	require.Equal(t, "debug:orderNotify:O1:O1-1", rec.Callback.DedupKey)
	require.True(t, rec.Callback.Debug)
	require.NoError(t, ib.DeliverNow(ctx, rec))

	again := record(t, ib, body)
	require.False(t, again.Fresh)
	require.Equal(t, rec.Callback.Seq, again.Callback.Seq)
	require.NoError(t, ib.DeliverNow(ctx, again))

	delivered, err := ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, delivered)
	require.Empty(t, fake.Calls())
	n, err := ib.Store.UndeliveredCount(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestWorkflowCallbackErrors(t *testing.T) {
	cases := map[string]store.Callback{
		"no activity":             {},
		"renewal without expiry":  {Activity: "refreshInstance", Scene: "RENEWAL"},
		"renewal with bad expiry": {Activity: "refreshInstance", Scene: "RENEWAL", ExpireTime: "tomorrow"},
		"renewal without scene":   {Activity: "refreshInstance", ExpireTime: "20310101000000"},
		"status without status":   {Activity: "updateInstanceStatus"},
		"orderNotify":             {Activity: "orderNotify", OrderID: "O1", OrderLineID: "O1-1"},
		"query":                   {Activity: "queryInstance", InstanceID: "I1"},
	}
	for name, cb := range cases {
		t.Run(name, func(t *testing.T) {
			cb.Seq, cb.DedupKey = 1, "k"
			_, err := inbox.WorkflowCallback(cb)
			require.Error(t, err)
		})
	}
}

// TestWorkflowCallbackFromColumns: the signal is built from the columns
// the callback was recorded with; the body is not read again.
func TestWorkflowCallbackFromColumns(t *testing.T) {
	cb, err := inbox.WorkflowCallback(store.Callback{
		Seq: 7, DedupKey: "releaseInstance:I1", Activity: "releaseInstance", InstanceID: "I1", OrderID: "U1", OrderLineID: "U1-1",
		ReceivedAt: time.Date(2030, 1, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600)),
		Body:       `{"activity":"releaseInstance",`,
	})
	require.NoError(t, err)
	require.Equal(t, workflows.Callback{
		Key: "releaseInstance:I1", Seq: 7, Activity: "releaseInstance", OrderID: "U1", OrderLineID: "U1-1",
		ReceivedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}, cb)

	cb, err = inbox.WorkflowCallback(store.Callback{
		Seq: 8, DedupKey: "refreshInstance:I1:R1:R1-1", Activity: "refreshInstance", InstanceID: "I1", OrderID: "R1", OrderLineID: "R1-1",
		Debug: true, Scene: "RENEWAL", ExpireTime: "20310101000000123", ProductID: "P2",
		SentAt: sql.NullTime{Time: time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC), Valid: true},
	})
	require.NoError(t, err)
	require.Equal(t, workflows.Callback{
		Key: "refreshInstance:I1:R1:R1-1", Seq: 8, Activity: "refreshInstance", OrderID: "R1", OrderLineID: "R1-1", Debug: true,
		SentAt: time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC), Scene: "RENEWAL",
		ExpireTime: time.Date(2031, 1, 1, 0, 0, 0, 123e6, time.UTC), ProductID: "P2",
	}, cb)

	cb, err = inbox.WorkflowCallback(store.Callback{Seq: 9, DedupKey: "k", Activity: "updateInstanceStatus", Status: "FREEZE"})
	require.NoError(t, err)
	require.Equal(t, "FREEZE", cb.Status)
}

// TestOneCallbacksFailureDoesNotSlowTheOthers: Temporal refusing one
// callback is that callback's fault, not Temporal being away: the
// deliveries of other instances go on without a pause (the breaker is
// only for Temporal being unreachable), and once the callback has failed
// ParkAfter times while others were delivered, it is parked for an
// operator, with an alert.
func TestOneCallbacksFailureDoesNotSlowTheOthers(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	ib.ParkAfter = 3
	type alert struct{ instance, kind, message string }
	var alerts []alert
	ib.Alert = func(_ context.Context, instanceID, kind, message string) error {
		alerts = append(alerts, alert{instanceID, kind, message})
		return nil
	}
	fake.setFail(func(c call) error {
		if c.WorkflowID == "instance/POISON" {
			return serviceerror.NewInvalidArgument("header value is not printable ASCII")
		}
		return nil
	})
	poison := record(t, ib, newInstanceBody("OP", "POISON"))
	require.Error(t, ib.DeliverNow(ctx, poison))

	for i := range 8 {
		rec := record(t, ib, newInstanceBody(fmt.Sprintf("O%d", i), fmt.Sprintf("B%d", i)))
		require.NoError(t, ib.DeliverNow(ctx, rec), "instance %d is delivered at once", i)
		require.True(t, row(t, ib, rec).Delivered())
	}
	require.False(t, row(t, ib, poison).ParkedAt.Valid, "not parked on its first refusal")
	for range 2 {
		require.NoError(t, ib.Store.MakeDue(ctx, poison.Callback.Seq))
		_, err := ib.RelayOnce(ctx)
		require.NoError(t, err)
	}
	parked := row(t, ib, poison)
	require.True(t, parked.ParkedAt.Valid, "parked after 3 failed deliveries")
	require.Equal(t, 3, parked.Attempts)
	require.Contains(t, parked.LastError, "delivery failed 3 times while other callbacks were delivered")
	require.Contains(t, parked.LastError, "header value is not printable ASCII")
	require.Len(t, alerts, 1)
	require.Equal(t, "POISON", alerts[0].instance)
	require.Equal(t, "callback_parked", alerts[0].kind)
	require.Contains(t, alerts[0].message, fmt.Sprintf("POST /v1/callbacks/%d/retry", poison.Callback.Seq))

	// An operator retries it once it can be delivered.
	fake.setFail(nil)
	_, err := ib.Store.UnparkCallback(ctx, poison.Callback.Seq)
	require.NoError(t, err)
	delivered, err := ib.RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, delivered)
	require.True(t, row(t, ib, poison).Delivered())
}

// TestCallbackFailingWhileOthersSucceedIsParked: a callback whose delivery
// keeps failing while other callbacks are delivered is parked after
// DefaultParkAfter attempts, not retried forever; one that fails while Temporal
// is away is not.
func TestCallbackFailingWhileOthersSucceedIsParked(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	fake.setFail(func(c call) error {
		if c.WorkflowID == "instance/POISON" {
			return errors.New("something about this callback fails")
		}
		return nil
	})
	poison := record(t, ib, newInstanceBody("OP", "POISON"))
	for i := range 30 {
		other := record(t, ib, newInstanceBody(fmt.Sprintf("O%d", i), fmt.Sprintf("B%d", i)))
		require.NoError(t, ib.DeliverNow(ctx, other))
		if row(t, ib, poison).ParkedAt.Valid {
			break
		}
		err := ib.Deliver(ctx, poison.Key, row(t, ib, poison))
		require.Error(t, err)
	}
	parked := row(t, ib, poison)
	require.True(t, parked.ParkedAt.Valid, "parked after its attempts")
	require.Equal(t, 20, parked.Attempts)
	require.Contains(t, parked.LastError, "delivery failed 20 times while other callbacks were delivered")

	// While Temporal is away, failures are not the callback's own.
	away := record(t, ib, newInstanceBody("OA", "AWAY"))
	fake.setFail(func(call) error { return errTemporalDown })
	for range 25 {
		require.Error(t, ib.Deliver(ctx, away.Key, row(t, ib, away)))
	}
	require.False(t, row(t, ib, away).ParkedAt.Valid)
	require.Equal(t, 25, row(t, ib, away).Attempts)
}
