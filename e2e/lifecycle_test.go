package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
	"github.com/fulfillment-server/fulfillment/workflows"
)

func newInstanceBody(orderID, lineID, businessID string) string {
	return fmt.Sprintf(`{"activity":"newInstance","orderId":%q,"orderLineId":%q,"businessId":%q}`, orderID, lineID, businessID)
}

func queryBody(ids ...string) string {
	return fmt.Sprintf(`{"activity":"queryInstance","instanceId":%q}`, strings.Join(ids, ","))
}

func refreshBody(id, orderID, scene, expire string) string {
	return fmt.Sprintf(`{"activity":"refreshInstance","instanceId":%q,"orderId":%q,"orderLineId":%q,"scene":%q,"expireTime":%q}`,
		id, orderID, orderID+"-000001", scene, expire)
}

func statusBody(id, status string) string {
	return fmt.Sprintf(`{"activity":"updateInstanceStatus","instanceId":%q,"status":%q}`, id, status)
}

func releaseBody(id string) string {
	return fmt.Sprintf(`{"activity":"releaseInstance","instanceId":%q}`, id)
}

// waitForAppInfo polls queryInstance as the marketplace does after
// newInstance: 000004 until the tenant exists, then appInfo.
func (s *stack) waitForAppInfo(id string) koogallery.AppInfo {
	s.t.Helper()
	var last reply
	require.Eventually(s.t, func() bool {
		last = s.produce(queryBody(id))
		require.Contains(s.t, []string{"000000", "000004"}, last.ResultCode, string(last.raw))
		return last.ResultCode == "000000"
	}, 60*time.Second, 100*time.Millisecond, "queryInstance never answered with appInfo; last: %s", last.raw)
	require.Len(s.t, last.Info, 1)
	require.NotNil(s.t, last.Info[0].AppInfo)
	return *last.Info[0].AppInfo
}

// TestPurchaseLifecycle plays one yearly purchase from newInstance to
// release, each callback redelivered as KooGallery does when it misses an
// answer, and checks every effect on the tenant.
func TestPurchaseLifecycle(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	order, line := mockapi.OrderPeriodYearNew, mockapi.OrderPeriodYearNew+"-000001"

	first := s.produce(newInstanceBody(order, line, "biz-first-7d2e"))
	require.Equal(t, "000000", first.ResultCode, string(first.raw))
	require.Equal(t, "biz-first-7d2e", first.InstanceID, "the first request's businessId is the instanceId")
	id := first.InstanceID
	// KooGallery resends with a new businessId: same instance, nothing new.
	again := s.produce(newInstanceBody(order, line, "biz-second-1a9c"))
	require.Equal(t, "000000", again.ResultCode)
	require.Equal(t, id, again.InstanceID)

	app := s.waitForAppInfo(id)
	require.Contains(t, app.FrontEndURL, "/demo/tenants/")
	require.True(t, strings.Contains(string(s.produce(queryBody(id)).raw), `\u6f14\u793a`), "non-ASCII memo is sent as \\uXXXX")
	user, err := koogallery.DecryptField(accessKey, koogallery.AES256, app.UserName)
	require.NoError(t, err)
	password, err := koogallery.DecryptField(accessKey, koogallery.AES256, app.Password)
	require.NoError(t, err)
	require.Equal(t, "admin", user)
	require.Len(t, password, 16)
	require.Equal(t, http.StatusOK, tenantLogin(t, app.FrontEndURL, user, password), "the handed-out credentials log in")
	require.Equal(t, http.StatusUnauthorized, tenantLogin(t, app.FrontEndURL, user, password+"x"))
	require.GreaterOrEqual(t, s.openAPI.Calls(order), 1, "the order was fetched with Query Order")

	active := s.waitState(id, "active")
	require.NotNil(t, active.ExpireTime, "the expiry comes from Query Order")
	require.WithinDuration(t, time.Now().AddDate(1, 0, 0), *active.ExpireTime, 48*time.Hour, "a yearly order expires a year on")

	// Renewal, sent with a 17-digit expireTime, twice.
	renewTo := time.Date(2029, 3, 1, 15, 59, 59, 0, time.UTC)
	for range 2 {
		r := s.produce(refreshBody(id, "RENEW-ORDER-1", "RENEWAL", koogallery.FormatTimeMillis(renewTo)))
		require.Equal(t, "000000", r.ResultCode, string(r.raw))
	}
	renewed := s.waitFor(id, "renewed", func(i instance) bool { return i.ExpireTime != nil && i.ExpireTime.Equal(renewTo) })
	require.Equal(t, "active", renewed.State)

	// Expiry: FREEZE, redelivered. The tenant is unusable, its data kept.
	for range 2 {
		require.Equal(t, "000000", s.produce(statusBody(id, "FREEZE")).ResultCode)
	}
	s.waitState(id, "frozen")
	require.Equal(t, http.StatusLocked, tenantStatus(t, app.FrontEndURL))
	frozenQuery := s.produce(queryBody(id))
	require.Equal(t, "000000", frozenQuery.ResultCode, "a frozen instance still answers queryInstance")

	// Renewed during the freeze: UNFREEZE.
	require.Equal(t, "000000", s.produce(statusBody(id, "UNFREEZE")).ResultCode)
	s.waitState(id, "active")
	require.Equal(t, http.StatusOK, tenantStatus(t, app.FrontEndURL))
	require.Equal(t, http.StatusOK, tenantLogin(t, app.FrontEndURL, user, password), "data and credentials survived the freeze")

	// Release, twice: the tenant is deleted once.
	for range 2 {
		require.Equal(t, "000000", s.produce(releaseBody(id)).ResultCode)
	}
	released := s.waitState(id, "released")
	require.Equal(t, http.StatusGone, tenantStatus(t, app.FrontEndURL))
	afterRelease := s.produce(queryBody(id))
	require.Equal(t, "000000", afterRelease.ResultCode)
	require.Nil(t, afterRelease.Info[0].AppInfo, "a released instance has no access information")
	// The read model says "released" as soon as the tenant is deleted; the
	// workflow closes moments later, once its last save is written.
	tc := s.temporal.Client(t)
	require.Eventually(t, func() bool {
		desc, err := tc.DescribeWorkflowExecution(context.Background(), workflows.InstanceWorkflowID(id), "")
		require.NoError(t, err)
		return desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	}, 60*time.Second, 100*time.Millisecond, "the instance workflow completes after release")
	// A release after the workflow closed is still answered 000000, and a
	// new callback for the released instance never reopens its workflow.
	require.Equal(t, "000000", s.produce(releaseBody(id)).ResultCode)
	require.Equal(t, "000000", s.produce(statusBody(id, "FREEZE")).ResultCode)
	s.waitFor(id, "the late FREEZE marked as for a closed workflow", func(i instance) bool {
		for _, e := range i.Events {
			if e.Key == "updateInstanceStatus:"+id+":FREEZE:3" {
				return strings.Contains(e.Message, "delivered: instance workflow closed")
			}
		}
		return false
	})

	// Each callback was applied exactly once, whatever the redeliveries.
	for _, key := range []string{
		"callback/newInstance:" + order + ":" + line,
		"callback/refreshInstance:" + id + ":RENEW-ORDER-1:RENEW-ORDER-1-000001",
		"callback/updateInstanceStatus:" + id + ":FREEZE:1",
		"callback/updateInstanceStatus:" + id + ":UNFREEZE:2",
		"callback/releaseInstance:" + id,
	} {
		require.Equal(t, 1, released.events(key), "event %s", key)
	}
	require.Equal(t, 1, released.events("provisioning/done"))

	// The workflow stayed closed, and the Temporal UI can find the instance
	// by its state.
	desc, err := tc.DescribeWorkflowExecution(context.Background(), workflows.InstanceWorkflowID(id), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.GetWorkflowExecutionInfo().GetStatus())
	require.Eventually(t, func() bool {
		resp, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`FulfillmentState = "released" AND FulfillmentInstanceId = %q AND FulfillmentOrderId = %q`, id, order),
		})
		return err == nil && len(resp.GetExecutions()) == 1
	}, 30*time.Second, 200*time.Millisecond, "search attributes list the released instance")

	// Nothing secret reached the logs.
	logs := s.logs.String()
	for _, secret := range []string{accessKey, adminToken, openAPISK, password} {
		require.NotContains(t, logs, secret)
	}
}

// TestTemporalOutage stops Temporal while callbacks arrive: each is
// answered 000000 because it is durably recorded, and each is applied once
// after Temporal returns.
func TestTemporalOutage(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	order := mockapi.OrderPeriodYearNew
	id := s.produce(newInstanceBody(order, order+"-000001", "biz-outage-1")).InstanceID
	s.waitForAppInfo(id)
	s.waitState(id, "active")

	s.temporal.Stop()

	renewTo := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// A second purchase, arriving while Temporal is away.
	otherLine := mockapi.OrderMonthRenew + "-000001"
	other := s.produce(newInstanceBody(mockapi.OrderMonthRenew, otherLine, "biz-outage-2"))
	require.Equal(t, "000000", other.ResultCode, "newInstance is durable without Temporal: %s", other.raw)
	for _, body := range []string{
		refreshBody(id, "RENEW-OUTAGE", "RENEWAL", koogallery.FormatTime(renewTo)),
		statusBody(id, "FREEZE"),
		statusBody(id, "FREEZE"), // KooGallery's retry
	} {
		r := s.produce(body)
		require.Equal(t, "000000", r.ResultCode, string(r.raw))
		require.Less(t, r.took, 10*time.Second, "answers stay well inside KooGallery's 20 s timeout")
	}
	pending := s.instance(id)
	require.Equal(t, "active", pending.State, "nothing is applied while Temporal is away")
	require.Contains(t, fmt.Sprint(pending.Events), "updateInstanceStatus received", "the callbacks are recorded")

	s.temporal.Start()

	frozen := s.waitFor(id, "frozen with the renewal applied", func(i instance) bool {
		return i.State == "frozen" && i.ExpireTime != nil && i.ExpireTime.Equal(renewTo)
	})
	require.Equal(t, 1, frozen.events("callback/updateInstanceStatus:"+id+":FREEZE:1"))
	require.Equal(t, 1, frozen.events("callback/refreshInstance:"+id+":RENEW-OUTAGE:RENEW-OUTAGE-000001"))
	s.waitForAppInfo(other.InstanceID)
	s.waitState(other.InstanceID, "active")
	require.Eventually(t, func() bool {
		inst := s.instance(id)
		for _, e := range inst.Events {
			if e.Kind == "received" && !strings.Contains(e.Message, "delivered: signalled") {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "the relay delivers every recorded callback")
}
