package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// adminPost sends an admin POST with a JSON body and returns the status
// and the body.
func (h *harness) adminPost(t testing.TB, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("X-Operator", "alice")
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

// realStatusBody is a FREEZE or UNFREEZE without testFlag.
func realStatusBody(id, status string) []byte {
	return fmt.Appendf(nil, `{"activity":"updateInstanceStatus","instanceId":%q,"status":%q}`, id, status)
}

// TestDebugCallNeverSwallowsTheRealOne: a debug FREEZE (testFlag "1") on
// a real instance is recorded and ignored; the real FREEZE after it is a
// new callback, delivered and applied, not taken for a redelivery of the
// probe. The same for releaseInstance.
func TestDebugCallNeverSwallowsTheRealOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-probed"
	h.allocate(t, id)
	h.save(t, instance(id, "active"))

	for _, pair := range [][2][]byte{
		{fmt.Appendf(nil, `{"activity":"updateInstanceStatus","instanceId":%q,"status":"FREEZE","testFlag":"1"}`, id), realStatusBody(id, "FREEZE")},
		{fmt.Appendf(nil, `{"activity":"releaseInstance","instanceId":%q,"testFlag":"1"}`, id), releaseBody(t, id)},
	} {
		h.signaller.reset()
		requireResult(t, h.produce(t, pair[0]), "000000", msgSuccess)
		requireResult(t, h.produce(t, pair[1]), "000000", msgSuccess)
		delivered := h.signaller.delivered()
		require.Len(t, delivered, 2, "the probe and the real callback are two callbacks")
		probe, real := delivered[0].Arg.(workflows.Callback), delivered[1].Arg.(workflows.Callback)
		require.True(t, probe.Debug)
		require.False(t, real.Debug)
		require.NotEqual(t, probe.Key, real.Key)
		require.True(t, strings.HasPrefix(probe.Key, "debug:"), probe.Key)
	}
	// The probe opened no status episode: the real FREEZE is the first.
	cbs := h.callbacksOf(t, id)
	var keys []string
	for _, cb := range cbs {
		keys = append(keys, cb.DedupKey)
	}
	require.Contains(t, keys, "updateInstanceStatus:"+id+":FREEZE:1")
	require.Contains(t, keys, "releaseInstance:"+id)
}

// TestInstanceIDsOutsideTheAlphabetAreRefused: a businessId that could
// never start a workflow (non-ASCII: Temporal's gRPC headers refuse it),
// never be reached by the admin API ('/', '..') or never be queried (',',
// blanks) is answered 000002 and allocates nothing; the same order line is
// then bought with a proper one.
func TestInstanceIDsOutsideTheAlphabetAreRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i, businessID := range []string{"实例-ü-😀-x", "../../etc/x", "a,b", " x ", "x y", ".hidden", "a:b"} {
		orderID := fmt.Sprintf("CSALPHA%d", i)
		before := h.effects(t)
		a := h.produce(t, newInstanceBody(t, orderID, orderID+"-1", businessID))
		requireResult(t, a, "000002", "field businessId must be letters, digits, '-', '_' or '.', starting with a letter or a digit")
		require.Equal(t, before, h.effects(t), "%q: nothing recorded or allocated", businessID)

		good := fmt.Sprintf("inst-alpha-%d", i)
		a = h.produce(t, newInstanceBody(t, orderID, orderID+"-1", good))
		requireResult(t, a, "000000", msgSuccess)
		require.Equal(t, good, a.InstanceID)
	}
}

// TestPoisonedCallbackIsParkedAndSlowsNoOne: Temporal refuses every
// delivery for one instance. That callback is parked at once, visibly
// (metric, admin API, alert), while FREEZEs for eight other instances are
// delivered within the answer, not after the relay's grace. The operator
// then retries it or discards it, audited.
func TestPoisonedCallbackIsParkedAndSlowsNoOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBacklogMetric())
	var mu sync.Mutex
	var alerts []string
	h.inbox.Alert = func(_ context.Context, instanceID, kind, message string) error {
		mu.Lock()
		defer mu.Unlock()
		alerts = append(alerts, instanceID+" "+kind+": "+message)
		return nil
	}
	const poison = "inst-poison"
	h.allocate(t, poison)
	h.save(t, instance(poison, "active"))
	others := make([]string, 8)
	for i := range others {
		others[i] = fmt.Sprintf("inst-other-%d", i)
		h.allocate(t, others[i])
		h.save(t, instance(others[i], "active"))
	}
	h.signaller.refuseFor(workflows.InstanceWorkflowID(poison), serviceerror.NewInvalidArgument("fake: this workflow cannot be signalled"))

	h.inbox.ParkAfter = 3
	requireResult(t, h.produce(t, realStatusBody(poison, "FREEZE")), "000000", msgSuccess)
	start := time.Now()
	for _, id := range others {
		requireResult(t, h.produce(t, realStatusBody(id, "FREEZE")), "000000", msgSuccess)
	}
	for _, id := range others {
		cbs := h.callbacksOf(t, id)
		require.True(t, cbs[len(cbs)-1].Delivered(), "%s's FREEZE was delivered at once", id)
	}
	require.Less(t, time.Since(start), 10*time.Second, "nobody waited for the relay's grace")

	// The relay retries it (made due at once here, not after its backoff)
	// until it has failed ParkAfter times while others were delivered.
	poisoned := h.callbacksOf(t, poison)[1]
	for range 2 {
		require.NoError(t, h.db.Callbacks.MakeDue(t.Context(), poisoned.Seq))
		_, err := h.inbox.RelayOnce(t.Context())
		require.NoError(t, err)
	}

	// Visible: metric, admin API, alert.
	status, raw := h.get(t, "/metrics", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(raw), "fulfillment_callbacks_parked 1")
	require.Contains(t, string(raw), "fulfillment_relay_backlog 0")
	status, raw = h.admin(t, "/v1/callbacks?state=parked")
	require.Equal(t, http.StatusOK, status, string(raw))
	var list struct {
		Callbacks []api.ParkedCallback `json:"callbacks"`
	}
	require.NoError(t, json.Unmarshal(raw, &list))
	require.Len(t, list.Callbacks, 1)
	parked := list.Callbacks[0]
	require.Equal(t, poison, parked.InstanceID)
	require.Equal(t, "updateInstanceStatus", parked.Activity)
	require.Contains(t, parked.Reason, "delivery failed 3 times while other callbacks were delivered")
	require.Contains(t, parked.Reason, "this workflow cannot be signalled")
	mu.Lock()
	require.Len(t, alerts, 1)
	require.Contains(t, alerts[0], poison+" callback_parked")
	mu.Unlock()

	// Refused repairs change nothing.
	for path, want := range map[string]int{
		fmt.Sprintf("/v1/callbacks/%d/resurrect", parked.Seq): http.StatusNotFound,
		"/v1/callbacks/x/retry":                               http.StatusBadRequest,
		"/v1/callbacks/999999/retry":                          http.StatusNotFound,
	} {
		status, raw := h.adminPost(t, path, `{"reason":"try"}`)
		require.Equal(t, want, status, "%s: %s", path, raw)
	}
	status, raw = h.adminPost(t, fmt.Sprintf("/v1/callbacks/%d/retry", parked.Seq), `{}`)
	require.Equal(t, http.StatusBadRequest, status, string(raw))

	// Retried once Temporal takes it: delivered by the relay.
	h.signaller.refuseFor(workflows.InstanceWorkflowID(poison), nil)
	status, raw = h.adminPost(t, fmt.Sprintf("/v1/callbacks/%d/retry", parked.Seq), `{"reason":"the workflow was repaired"}`)
	require.Equal(t, http.StatusOK, status, string(raw))
	delivered, err := h.inbox.RelayOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, delivered)
	cbs := h.callbacksOf(t, poison)
	require.True(t, cbs[len(cbs)-1].Delivered())
	actions, err := h.db.Audit.OperatorActions(t.Context(), poison)
	require.NoError(t, err)
	require.Len(t, actions, 1)
	require.Equal(t, "callback-retry", actions[0].Action)
	require.Equal(t, "alice", actions[0].Actor)
	require.Equal(t, "done", actions[0].Outcome)

	// Or discarded: closed without delivery, with who and why.
	h.signaller.refuseFor(workflows.InstanceWorkflowID(poison), serviceerror.NewInvalidArgument("fake: refused again"))
	requireResult(t, h.produce(t, realStatusBody(poison, "UNFREEZE")), "000000", msgSuccess)
	unfreeze := h.callbacksOf(t, poison)
	for range 2 {
		require.NoError(t, h.db.Callbacks.MakeDue(t.Context(), unfreeze[len(unfreeze)-1].Seq))
		_, err := h.inbox.RelayOnce(t.Context())
		require.NoError(t, err)
	}
	list.Callbacks = nil
	_, raw = h.admin(t, "/v1/callbacks")
	require.NoError(t, json.Unmarshal(raw, &list))
	require.Len(t, list.Callbacks, 1)
	status, raw = h.adminPost(t, fmt.Sprintf("/v1/callbacks/%d/discard", list.Callbacks[0].Seq), `{"reason":"applied by hand"}`)
	require.Equal(t, http.StatusOK, status, string(raw))
	var discarded api.ParkedCallback
	require.NoError(t, json.Unmarshal(raw, &discarded))
	require.Equal(t, "discarded by alice: applied by hand", discarded.Outcome)
	_, raw = h.get(t, "/metrics", "")
	require.Contains(t, string(raw), "fulfillment_callbacks_parked 0")
}

// TestHeldUsagePeriodIsSplitOrWrittenOff: a period whose usage no record
// can carry is held (the periods after it are pushed) and shown with its
// reason; an operator splits it into parts that each fit a record, or
// writes it off.
func TestHeldUsagePeriodIsSplitOrWrittenOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBacklogMetric())
	h.payPerUse(t, "u-held")
	begin := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	// Usage stored behind the intake's checks, as before they existed.
	_, err := h.raw.ExecContext(t.Context(), `INSERT INTO usage_records (idempotency_key, instance_id, meter, quantity, occurred_at)
		VALUES ('k1', 'u-held', 'sms', 900000000000000, $1), ('k2', 'u-held', 'sms', 900000000000000.5, $1)`, begin.Add(time.Minute))
	require.NoError(t, err)
	_, err = h.db.Metering.CloseUsagePeriod(t.Context(), activities.WithMeteringRules(store.ClosePeriod{InstanceID: "u-held", Start: begin, End: begin.Add(time.Hour), Billable: true, At: begin.Add(time.Hour)}))
	require.NoError(t, err)
	held, err := h.db.Metering.HoldPeriod(t.Context(), activities.MeteringSN("u-held", begin), "usage 1800000000000000.5 cannot be pushed as one record")
	require.NoError(t, err)
	require.True(t, held)
	_, raw := h.get(t, "/metrics", "")
	require.Contains(t, string(raw), "fulfillment_usage_periods_held 1")

	path := "/v1/instances/u-held/usage/periods/" + begin.Format(time.RFC3339)
	status, raw := h.adminPost(t, path+"/split", `{"reason":"the marketplace takes it in parts"}`)
	require.Equal(t, http.StatusOK, status, string(raw))
	var split struct {
		Periods []store.UsagePeriod `json:"periods"`
	}
	require.NoError(t, json.Unmarshal(raw, &split))
	require.Len(t, split.Periods, 2)
	require.Equal(t, begin, split.Periods[0].PeriodStart.UTC())
	require.Equal(t, begin.Add(30*time.Minute), split.Periods[0].PeriodEnd.UTC())
	require.Equal(t, begin.Add(30*time.Minute), split.Periods[1].PeriodStart.UTC())
	require.Equal(t, begin.Add(time.Hour), split.Periods[1].PeriodEnd.UTC())
	var total int64
	for _, p := range split.Periods {
		require.Equal(t, store.PeriodPending, p.State)
		v, err := koogallery.ParseUsageValue(p.Quantity)
		require.NoError(t, err, "each part fits one record")
		units, _ := v.Units()
		total += units / koogallery.UsageValueScale
	}
	require.Equal(t, int64(1800000000000000), total)
	require.NotEqual(t, split.Periods[0].MeteringSN, split.Periods[1].MeteringSN)

	// Not held any more: nothing to split or write off.
	status, _ = h.adminPost(t, path+"/write-off", `{"reason":"x"}`)
	require.Equal(t, http.StatusNotFound, status)

	// A held period written off.
	next := begin.Add(time.Hour)
	_, err = h.raw.ExecContext(t.Context(), `INSERT INTO usage_records (idempotency_key, instance_id, meter, quantity, occurred_at)
		VALUES ('k3', 'u-held', 'sms', 900000000000000, $1), ('k4', 'u-held', 'sms', 900000000000000, $1)`, next.Add(time.Minute))
	require.NoError(t, err)
	_, err = h.db.Metering.CloseUsagePeriod(t.Context(), activities.WithMeteringRules(store.ClosePeriod{InstanceID: "u-held", Start: next, End: next.Add(time.Hour), Billable: true, At: next.Add(time.Hour)}))
	require.NoError(t, err)
	_, err = h.db.Metering.HoldPeriod(t.Context(), activities.MeteringSN("u-held", next), "too large")
	require.NoError(t, err)
	status, raw = h.adminPost(t, "/v1/instances/u-held/usage/periods/"+next.Format(time.RFC3339)+"/write-off", `{"reason":"a metering bug in the application"}`)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Contains(t, string(raw), `"state":"written_off"`)
	require.Contains(t, string(raw), "written off by alice: a metering bug in the application")
	actions, err := h.db.Audit.OperatorActions(t.Context(), "u-held")
	require.NoError(t, err)
	require.Len(t, actions, 2)
	require.Equal(t, "usage-split", actions[0].Action)
	require.Equal(t, "usage-write-off", actions[1].Action)
}
