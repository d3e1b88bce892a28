package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// details is the part of the admin view the lifecycle tests read.
type details struct {
	State    string `json:"state"`
	Reason   string `json:"reason"`
	FrozenBy string `json:"frozenBy"`
	// Supervision is the supervision flow's details (the parts the tests read).
	Supervision *struct {
		Result string `json:"result"`
	} `json:"supervision"`
	Deadlines []struct {
		Kind string    `json:"kind"`
		At   time.Time `json:"at"`
		Why  string    `json:"why"`
	} `json:"deadlines"`
	OperatorActions []struct {
		Action  string `json:"action"`
		Actor   string `json:"actor"`
		Reason  string `json:"reason"`
		Outcome string `json:"outcome"`
	} `json:"operatorActions"`
}

func (s *stack) details(id string) details {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+"/v1/instances/"+id, nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var d details
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&d))
	return d
}

func (d details) deadline(kind string) (time.Time, bool) {
	for _, dl := range d.Deadlines {
		if dl.Kind == kind {
			return dl.At, true
		}
	}
	return time.Time{}, false
}

// signal posts an operator action through the admin API.
func (s *stack) signal(id, name, body string) int {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/v1/instances/"+id+"/signals/"+name, strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("X-Operator", "e2e-operator")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSelfFreezeWhenNoFreezeComes: with a 5 s freeze grace, an instance
// renewed to an expiry a few seconds ahead, and no FREEZE from the
// marketplace, is frozen by the server right after expiry + grace, says
// why, and is found by state in Temporal's search. A renewal before that
// moves the deadline.
func TestSelfFreezeWhenNoFreezeComes(t *testing.T) {
	t.Parallel()
	const graceTime = 5 * time.Second
	s := startStack(t, "LIFECYCLE_FREEZE_GRACE=5s", "LIFECYCLE_RETENTION=1h")
	order := mockapi.OrderPeriodYearNew
	id := s.produce(newInstanceBody(order, order+"-000001", "biz-timers-1")).InstanceID
	s.waitForAppInfo(id)
	s.waitState(id, "active")

	// Expiry in 3 s; then, before the server's freeze, a renewal moves it.
	first := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second)
	require.Equal(t, "000000", s.produce(refreshBody(id, "R-SHORT", "RENEWAL", koogallery.FormatTime(first))).ResultCode)
	d := s.waitForDetails(id, "the self-freeze deadline", func(d details) bool {
		at, ok := d.deadline("self-freeze")
		return ok && at.Equal(first.Add(graceTime))
	})
	require.NotEmpty(t, d.Deadlines[0].Why)

	second := first.Add(6 * time.Second)
	require.Equal(t, "000000", s.produce(refreshBody(id, "R-SHORT-2", "RENEWAL", koogallery.FormatTime(second))).ResultCode)
	s.waitForDetails(id, "the rescheduled deadline", func(d details) bool {
		at, ok := d.deadline("self-freeze")
		return ok && at.Equal(second.Add(graceTime))
	})
	// Past the first deadline, the renewed instance is still usable.
	time.Sleep(time.Until(first.Add(graceTime + time.Second)))
	require.NotEqual(t, "frozen", s.details(id).State, "the renewal moved the server's freeze")

	frozen := s.waitForDetails(id, "frozen by the server", func(d details) bool { return d.State == "frozen" })
	frozenAt := time.Now()
	require.Less(t, frozenAt.Sub(second.Add(graceTime)), 10*time.Second, "frozen within seconds of expiry + grace")
	require.Equal(t, "expiry", frozen.FrozenBy)
	require.Contains(t, frozen.Reason, "no FREEZE from the marketplace and no renewal by the end of the freeze grace")
	require.Equal(t, http.StatusLocked, tenantStatus(t, s.waitForAppInfo(id).FrontEndURL), "the tenant is really frozen")
	retention, ok := frozen.deadline("retention-end")
	require.True(t, ok)
	require.Equal(t, second.Add(time.Hour), retention)

	tc := s.temporal.Client(t)
	require.Eventually(t, func() bool {
		resp, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`FulfillmentState = "frozen" AND FulfillmentInstanceId = %q`, id),
		})
		return err == nil && len(resp.GetExecutions()) == 1
	}, 30*time.Second, 200*time.Millisecond, "Temporal's search lists the instance by state")

	// Operators act through the admin API: unfreeze, then release.
	require.Equal(t, http.StatusBadRequest, s.signal(id, "force-unfreeze", `{}`), "a reason is required")
	require.Equal(t, http.StatusNotFound, s.signal(id, "reboot", `{"reason":"x"}`))
	require.Equal(t, http.StatusAccepted, s.signal(id, "force-unfreeze", `{"reason":"buyer paid by bank transfer"}`))
	unfrozen := s.waitForDetails(id, "unfrozen by the operator", func(d details) bool { return d.State == "grace" })
	require.Empty(t, unfrozen.Deadlines, "an operator's unfreeze is not undone by the server")
	require.Equal(t, http.StatusOK, tenantStatus(t, s.waitForAppInfo(id).FrontEndURL))
	require.Equal(t, http.StatusAccepted, s.signal(id, "force-release", `{"reason":"order refunded"}`))
	released := s.waitForDetails(id, "released by the operator", func(d details) bool { return d.State == "released" })
	require.Len(t, released.OperatorActions, 2)
	require.Equal(t, "force-unfreeze", released.OperatorActions[0].Action)
	require.Equal(t, "e2e-operator", released.OperatorActions[0].Actor)
	require.Equal(t, "delivered", released.OperatorActions[1].Outcome)
	require.Equal(t, http.StatusConflict, s.signal(id, "force-freeze", `{"reason":"too late"}`))
}

func (s *stack) waitForDetails(id, what string, cond func(details) bool) details {
	s.t.Helper()
	return waitUntil(s.t, 60*time.Second, "instance "+id+" to show "+what, func() details { return s.details(id) }, cond)
}
