package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// ---------------------------------------------------------------------------
// Helpers of the signal tests.

// signalRequest is one POST /v1/instances/{id}/signals/{name}.
type signalRequest struct {
	Instance string
	Name     string
	Body     string
	// Auth is the Authorization header; nil sends the admin token.
	Auth *string
	// Operator is the X-Operator header, sent when not empty.
	Operator string
}

func (h *harness) postSignal(t testing.TB, r signalRequest) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		h.srv.URL+"/v1/instances/"+r.Instance+"/signals/"+r.Name, strings.NewReader(r.Body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if r.Auth == nil {
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
	} else if *r.Auth != "" {
		req.Header.Set("Authorization", *r.Auth)
	}
	if r.Operator != "" {
		req.Header.Set("X-Operator", r.Operator)
	}
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

// auditRows counts the operator_actions rows.
func (h *harness) auditRows(t testing.TB) int {
	t.Helper()
	var n int
	require.NoError(t, h.raw.QueryRowContext(t.Context(), `SELECT count(*) FROM operator_actions`).Scan(&n))
	return n
}

// auditOf returns the audit row of one request.
func (h *harness) auditOf(t testing.TB, instanceID, requestID string) store.OperatorAction {
	t.Helper()
	actions, err := h.db.Audit.OperatorActions(t.Context(), instanceID)
	require.NoError(t, err)
	for _, a := range actions {
		if a.ID == requestID {
			return a
		}
	}
	require.FailNow(t, "operator action not audited", "instance %s request %s", instanceID, requestID)
	return store.OperatorAction{}
}

// requireNothingDone checks that a refused signal neither reached Temporal
// nor was audited.
func (h *harness) requireNothingDone(t testing.TB, signalsBefore, auditBefore int) {
	t.Helper()
	require.Len(t, h.temporal.signalCalls(), signalsBefore, "nothing signalled")
	require.Equal(t, auditBefore, h.auditRows(t), "nothing audited")
}

func errorBody(msg string) string {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return string(b)
}

func ptrTo[T any](v T) *T { return &v }

// ---------------------------------------------------------------------------
// Refusals.

func TestSignalUnknownName(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.allocate(t, "sig-name")
	want := errorBody("unknown signal; use one of retry, skip, extend-grace, force-freeze, force-unfreeze, " +
		"force-release, set-policy, retry-push, submit-requirements, confirm-requirements, reject-requirements, " +
		"confirm-delivery, review-approve, review-reject, accept, reject, appeal, resolve-appeal")

	for _, name := range []string{"bogus", "RETRY", "Retry", "retry%20", "callback", "operator", "state"} {
		t.Run(name, func(t *testing.T) {
			status, raw := h.postSignal(t, signalRequest{Instance: "sig-name", Name: name, Body: `{"reason":"r"}`})

			require.Equal(t, http.StatusNotFound, status)
			require.JSONEq(t, want, string(raw))
			h.requireNothingDone(t, 0, 0)
		})
	}

	t.Run("the list names every action", func(t *testing.T) {
		_, raw := h.postSignal(t, signalRequest{Instance: "sig-name", Name: "bogus", Body: `{"reason":"r"}`})
		for _, name := range workflows.OperatorActions {
			require.Contains(t, string(raw), name)
		}
	})
}

func TestSignalUnknownOrReleasedInstance(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.allocate(t, "sig-released")
	h.save(t, instance("sig-released", string(workflows.StateReleased)))
	// A read-model row without an allocated instance is still unknown.
	h.save(t, instance("sig-orphan", "active"))

	tests := []struct {
		instance   string
		wantStatus int
		want       string
	}{
		{"sig-nobody", http.StatusNotFound, errorBody("no such instance")},
		{"sig-orphan", http.StatusNotFound, errorBody("no such instance")},
		{"sig-released", http.StatusConflict, errorBody("the instance is released; nothing can be done to it")},
	}
	for _, tc := range tests {
		t.Run(tc.instance, func(t *testing.T) {
			for _, name := range []string{workflows.OpRetry, workflows.OpForceUnfreeze, workflows.OpForceRelease} {
				status, raw := h.postSignal(t, signalRequest{Instance: tc.instance, Name: name, Body: `{"reason":"r"}`})

				require.Equal(t, tc.wantStatus, status, name)
				require.JSONEq(t, tc.want, string(raw))
			}
			h.requireNothingDone(t, 0, 0)
		})
	}
}

func TestSignalRefusesInvalidRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.allocate(t, "sig-bad")
	h.save(t, instance("sig-bad", "active"))

	const (
		msgNotJSON   = `the body must be a JSON object such as {"reason": "…"} with only the documented fields`
		msgTwo       = "the body must hold one JSON object"
		msgReason    = "reason is required: say why, for the audit trail"
		msgLong      = "reason is longer than 1000 characters"
		msgDuration  = `duration is required: a positive Go duration up to a year, such as "1h" or "72h"`
		msgEvidence  = "evidence is required: the delivery document (a link or a reference)"
		msgStartTime = "startTime must be an RFC 3339 time such as 2026-01-01T00:00:00Z"
		msgAccepted  = "acceptedAt must be an RFC 3339 time such as 2026-01-01T00:00:00Z"
		msgFuture    = "acceptedAt is in the future"
		msgPolicy    = "releasePolicy is required: hold or release"
		msgOperator  = "X-Operator must be a printable name of at most 64 characters"
		msgTooLarge  = "the body must be JSON of at most 65536 bytes"
	)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name     string
		action   string
		body     string
		operator string
		want     string
	}{
		{"not JSON", workflows.OpRetry, `reason=fixed`, "", msgNotJSON},
		{"empty body", workflows.OpRetry, ``, "", msgNotJSON},
		{"truncated JSON", workflows.OpRetry, `{"reason":"fixed"`, "", msgNotJSON},
		{"JSON array", workflows.OpRetry, `[{"reason":"fixed"}]`, "", msgNotJSON},
		{"reason not a string", workflows.OpRetry, `{"reason":42}`, "", msgNotJSON},
		{"two objects", workflows.OpRetry, `{"reason":"fixed"} {"reason":"again"}`, "", msgTwo},
		{"object and garbage", workflows.OpRetry, `{"reason":"fixed"} x`, "", msgTwo},
		{"object and a stray brace", workflows.OpRetry, `{"reason":"fixed"}}`, "", msgTwo},
		{"object and a stray bracket", workflows.OpRetry, `{"reason":"fixed"}]`, "", msgTwo},
		{"unknown field", workflows.OpRetry, `{"reason":"fixed","force":true}`, "", msgNotJSON},
		{"null", workflows.OpRetry, `null`, "", msgReason},
		{"empty object", workflows.OpRetry, `{}`, "", msgReason},
		{"blank reason", workflows.OpSkip, `{"reason":" \t\n "}`, "", msgReason},
		{"empty reason", workflows.OpForceFreeze, `{"reason":""}`, "", msgReason},
		{"reason with a NUL character", workflows.OpRetry, `{"reason":"fixed\u0000"}`, "", "reason must not contain NUL characters"},
		{"evidence with a NUL character", workflows.OpConfirmDelivery, `{"reason":"r","evidence":"DOC\u0000"}`, "",
			"evidence must not contain NUL characters"},
		{"reason over 1000 characters", workflows.OpRetry, `{"reason":"` + strings.Repeat("x", 1001) + `"}`, "", msgLong},
		{"reason over 1000 characters, multibyte", workflows.OpRetry, `{"reason":"` + strings.Repeat("因", 1001) + `"}`, "", msgLong},
		{"extend-grace without duration", workflows.OpExtendGrace, `{"reason":"r"}`, "", msgDuration},
		{"extend-grace 0s", workflows.OpExtendGrace, `{"reason":"r","duration":"0s"}`, "", msgDuration},
		{"extend-grace -1h", workflows.OpExtendGrace, `{"reason":"r","duration":"-1h"}`, "", msgDuration},
		{"extend-grace abc", workflows.OpExtendGrace, `{"reason":"r","duration":"abc"}`, "", msgDuration},
		{"extend-grace in days", workflows.OpExtendGrace, `{"reason":"r","duration":"3d"}`, "", msgDuration},
		{"extend-grace over a year", workflows.OpExtendGrace, `{"reason":"r","duration":"8785h"}`, "", msgDuration},
		{"extend-grace as a number", workflows.OpExtendGrace, `{"reason":"r","duration":3600}`, "", msgNotJSON},
		{"confirm-delivery without evidence", workflows.OpConfirmDelivery, `{"reason":"r"}`, "", msgEvidence},
		{"confirm-delivery blank evidence", workflows.OpConfirmDelivery, `{"reason":"r","evidence":"  "}`, "", msgEvidence},
		{"confirm-delivery without result", workflows.OpConfirmDelivery, `{"reason":"r","evidence":"doc"}`, "",
			"result is required: describe the service's result (服务结果描述)"},
		{"confirm-delivery result over 2000 characters", workflows.OpConfirmDelivery,
			`{"reason":"r","evidence":"doc","result":"` + strings.Repeat("果", 2001) + `"}`, "", "result is longer than 2000 characters"},
		{"result on reject-requirements", workflows.OpRejectRequirements, `{"reason":"r","result":"x"}`, "",
			"result does not apply to reject-requirements"},
		{"confirm-delivery evidence over 1000 characters", workflows.OpConfirmDelivery,
			`{"reason":"r","evidence":"` + strings.Repeat("e", 1001) + `"}`, "", "evidence is longer than 1000 characters"},
		{"startTime a date", workflows.OpConfirmDelivery, `{"reason":"r","evidence":"doc","result":"ok","startTime":"2026-01-01"}`, "", msgStartTime},
		{"startTime without zone", workflows.OpConfirmDelivery, `{"reason":"r","evidence":"doc","result":"ok","startTime":"2026-01-01T00:00:00"}`, "", msgStartTime},
		{"startTime KooGallery style", workflows.OpConfirmDelivery, `{"reason":"r","evidence":"doc","result":"ok","startTime":"20260101000000"}`, "", msgStartTime},
		{"acceptedAt not RFC 3339", workflows.OpAccept, `{"reason":"r","acceptedAt":"yesterday"}`, "", msgAccepted},
		{"acceptedAt in the future", workflows.OpAccept, `{"reason":"r","acceptedAt":"` + future + `"}`, "", msgFuture},
		{"set-policy without releasePolicy", workflows.OpSetPolicy, `{"reason":"r"}`, "", msgPolicy},
		{"set-policy other policy", workflows.OpSetPolicy, `{"reason":"r","releasePolicy":"delete"}`, "", msgPolicy},
		{"set-policy policy in capitals", workflows.OpSetPolicy, `{"reason":"r","releasePolicy":"HOLD"}`, "", msgPolicy},
		{"duration on retry", workflows.OpRetry, `{"reason":"r","duration":"1h"}`, "", "duration does not apply to retry"},
		{"evidence on accept", workflows.OpAccept, `{"reason":"r","evidence":"doc"}`, "", "evidence does not apply to accept"},
		{"startTime on accept", workflows.OpAccept, `{"reason":"r","startTime":"2026-01-01T00:00:00Z"}`, "", "startTime does not apply to accept"},
		{"acceptedAt on confirm-delivery", workflows.OpConfirmDelivery,
			`{"reason":"r","evidence":"doc","acceptedAt":"2026-01-01T00:00:00Z"}`, "", "acceptedAt does not apply to confirm-delivery"},
		{"releasePolicy on force-release", workflows.OpForceRelease, `{"reason":"r","releasePolicy":"release"}`, "",
			"releasePolicy does not apply to force-release"},
		{"duration on force-freeze", workflows.OpForceFreeze, `{"reason":"r","duration":"1h"}`, "", "duration does not apply to force-freeze"},
		{"X-Operator too long", workflows.OpRetry, `{"reason":"r"}`, strings.Repeat("a", 65), msgOperator},
		{"X-Operator with a tab", workflows.OpRetry, `{"reason":"r"}`, "alice\tbob", msgOperator},
		{"X-Operator with a C1 control character", workflows.OpRetry, `{"reason":"r"}`, "alice\u0085bob", msgOperator},
		{"X-Operator with a line separator", workflows.OpRetry, `{"reason":"r"}`, "alice\u2028bob", msgOperator},
		{"X-Operator not UTF-8", workflows.OpRetry, `{"reason":"r"}`, "alice\xff\xfebob", msgOperator},
		{"body over 64 KiB", workflows.OpRetry, `{"reason":"` + strings.Repeat("x", 64<<10) + `"}`, "", msgTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := h.postSignal(t, signalRequest{Instance: "sig-bad", Name: tc.action, Body: tc.body, Operator: tc.operator})

			require.Equal(t, http.StatusBadRequest, status, "%s", raw)
			if tc.want != "" {
				require.JSONEq(t, errorBody(tc.want), string(raw))
			}
			h.requireNothingDone(t, 0, 0)
		})
	}
}

// ---------------------------------------------------------------------------
// Delivered actions.

type signalAccepted struct {
	RequestID  string `json:"requestId"`
	InstanceID string `json:"instanceId"`
	Signal     string `json:"signal"`
	Status     string `json:"status"`
	Timeline   string `json:"timeline"`
}

func TestSignalDeliversEveryAction(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "sig-ok"
	h.allocate(t, id)
	h.save(t, instance(id, "active"))
	accepted := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// want is the OperatorRequest expected, without ID, At and Actor.
	tests := []struct {
		name     string
		action   string
		body     string
		operator string
		actor    string
		want     workflows.OperatorRequest
	}{
		{"retry", workflows.OpRetry, `{"reason":"  application fixed \n"}`, "", "admin",
			workflows.OperatorRequest{Reason: "application fixed"}},
		{"body with trailing whitespace", workflows.OpRetry, "{\"reason\":\"r\"}\r\n\t ", "", "admin",
			workflows.OperatorRequest{Reason: "r"}},
		{"skip", workflows.OpSkip, `{"reason":"created the tenant by hand"}`, "alice@example.com", "alice@example.com",
			workflows.OperatorRequest{Reason: "created the tenant by hand"}},
		{"extend-grace", workflows.OpExtendGrace, `{"reason":"buyer renews next week","duration":"72h"}`, "", "admin",
			workflows.OperatorRequest{Reason: "buyer renews next week", Duration: 72 * time.Hour}},
		{"extend-grace 90m", workflows.OpExtendGrace, `{"reason":"r","duration":"1h30m"}`, "", "admin",
			workflows.OperatorRequest{Reason: "r", Duration: 90 * time.Minute}},
		{"extend-grace a year", workflows.OpExtendGrace, `{"reason":"r","duration":"8784h"}`, "", "admin",
			workflows.OperatorRequest{Reason: "r", Duration: 366 * 24 * time.Hour}},
		{"force-freeze", workflows.OpForceFreeze, `{"reason":"abuse report"}`, "  bob  ", "bob",
			workflows.OperatorRequest{Reason: "abuse report"}},
		{"force-unfreeze", workflows.OpForceUnfreeze, `{"reason":"renewal paid"}`, "张三", "张三",
			workflows.OperatorRequest{Reason: "renewal paid"}},
		{"force-release", workflows.OpForceRelease, `{"reason":"order refunded"}`, "", "admin",
			workflows.OperatorRequest{Reason: "order refunded"}},
		{"set-policy release", workflows.OpSetPolicy, `{"reason":"buyer confirmed","releasePolicy":"release"}`, "", "admin",
			workflows.OperatorRequest{Reason: "buyer confirmed", ReleasePolicy: workflows.ReleasePolicyRelease}},
		{"set-policy hold", workflows.OpSetPolicy, `{"reason":"legal hold","releasePolicy":"hold"}`, "", "admin",
			workflows.OperatorRequest{Reason: "legal hold", ReleasePolicy: workflows.ReleasePolicyHold}},
		{"retry-push", workflows.OpRetryPush, `{"reason":"usage endpoint back"}`, "", "admin",
			workflows.OperatorRequest{Reason: "usage endpoint back"}},
		{"confirm-delivery", workflows.OpConfirmDelivery,
			`{"reason":"delivered","evidence":" https://docs.example.com/d/1 ","result":" 10 users imported ","startTime":"2026-01-01T08:00:00+08:00"}`, "", "admin",
			workflows.OperatorRequest{Reason: "delivered", Evidence: "https://docs.example.com/d/1", Result: "10 users imported", StartTime: &start}},
		{"confirm-delivery without startTime", workflows.OpConfirmDelivery, `{"reason":"delivered","evidence":"DOC-7","result":"done"}`, "", "admin",
			workflows.OperatorRequest{Reason: "delivered", Evidence: "DOC-7", Result: "done"}},
		{"submit-requirements", workflows.OpSubmitRequirements, `{"reason":"submitted by the buyer"}`, "koogallery-emulator", "koogallery-emulator",
			workflows.OperatorRequest{Reason: "submitted by the buyer"}},
		{"confirm-requirements", workflows.OpConfirmRequirements, `{"reason":"matches the agreement"}`, "", "admin",
			workflows.OperatorRequest{Reason: "matches the agreement"}},
		{"reject-requirements", workflows.OpRejectRequirements, `{"reason":"attachment missing"}`, "", "admin",
			workflows.OperatorRequest{Reason: "attachment missing"}},
		{"review-approve", workflows.OpApproveReview, `{"reason":"approved by Huawei Cloud"}`, "", "admin",
			workflows.OperatorRequest{Reason: "approved by Huawei Cloud"}},
		{"review-reject", workflows.OpRejectReview, `{"reason":"evidence unsigned"}`, "", "admin",
			workflows.OperatorRequest{Reason: "evidence unsigned"}},
		{"accept", workflows.OpAccept, `{"reason":"buyer accepted by phone","acceptedAt":"2026-01-02T11:04:05+08:00"}`, "", "admin",
			workflows.OperatorRequest{Reason: "buyer accepted by phone", AcceptedAt: &accepted}},
		{"accept without acceptedAt", workflows.OpAccept, `{"reason":"buyer accepted"}`, "", "admin",
			workflows.OperatorRequest{Reason: "buyer accepted"}},
		{"reject", workflows.OpReject, `{"reason":"buyer rejected"}`, "", "admin",
			workflows.OperatorRequest{Reason: "buyer rejected"}},
		{"appeal", workflows.OpAppeal, `{"reason":"merchant appealed"}`, "", "admin",
			workflows.OperatorRequest{Reason: "merchant appealed"}},
		{"resolve-appeal", workflows.OpResolveAppeal, `{"reason":"platform ruled"}`, "", "admin",
			workflows.OperatorRequest{Reason: "platform ruled"}},
		{"reason of 1000 characters", workflows.OpRetry, `{"reason":"` + strings.Repeat("因", 1000) + `"}`, "", "admin",
			workflows.OperatorRequest{Reason: strings.Repeat("因", 1000)}},
		{"X-Operator of 64 characters", workflows.OpRetry, `{"reason":"r"}`, strings.Repeat("o", 64), strings.Repeat("o", 64),
			workflows.OperatorRequest{Reason: "r"}},
		// The limit counts characters, not bytes: 64 Chinese characters
		// are 192 bytes.
		{"X-Operator of 64 Chinese characters", workflows.OpRetry, `{"reason":"r"}`, strings.Repeat("王", 64), strings.Repeat("王", 64),
			workflows.OperatorRequest{Reason: "r"}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.action] = true
	}
	for _, name := range workflows.OperatorActions {
		require.True(t, covered[name], "no test delivers %s", name)
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signalsBefore, auditBefore := len(h.temporal.signalCalls()), h.auditRows(t)
			before := time.Now().UTC()

			status, raw := h.postSignal(t, signalRequest{Instance: id, Name: tc.action, Body: tc.body, Operator: tc.operator})

			after := time.Now().UTC()
			require.Equal(t, http.StatusAccepted, status, "%s", raw)
			var got signalAccepted
			require.NoError(t, json.Unmarshal(raw, &got))
			require.Regexp(t, `^op-[0-9a-f]{24}$`, got.RequestID)
			require.Equal(t, signalAccepted{RequestID: got.RequestID, InstanceID: id, Signal: tc.action,
				Status: "delivered", Timeline: "/v1/instances/" + id}, got)

			calls := h.temporal.signalCalls()
			require.Len(t, calls, signalsBefore+1, "exactly one signal")
			call := calls[len(calls)-1]
			require.Equal(t, "instance/"+id, call.WorkflowID)
			require.Equal(t, workflows.OperatorSignal, call.Name)
			op := call.Request
			require.Equal(t, got.RequestID, op.ID)
			require.Equal(t, time.UTC, op.At.Location())
			require.False(t, op.At.Before(before) || op.At.After(after), "At %s not within the request", op.At)
			want := tc.want
			want.ID, want.Name, want.At, want.Actor = got.RequestID, tc.action, op.At, tc.actor
			require.Equal(t, want, op)

			require.Equal(t, auditBefore+1, h.auditRows(t))
			audit := h.auditOf(t, id, got.RequestID)
			require.Equal(t, id, audit.InstanceID)
			require.Equal(t, tc.action, audit.Action)
			require.Equal(t, tc.want.Reason, audit.Reason)
			require.Equal(t, tc.actor, audit.Actor)
			require.Equal(t, "delivered", audit.Outcome)
			require.WithinDuration(t, op.At, audit.RequestedAt, time.Microsecond)
			require.JSONEq(t, tc.body, string(audit.Params), "the parameters are audited as sent")
		})
	}

	t.Run("each request has its own ID", func(t *testing.T) {
		ids := map[string]bool{}
		for _, c := range h.temporal.signalCalls() {
			require.False(t, ids[c.Request.ID], "ID %s used twice", c.Request.ID)
			ids[c.Request.ID] = true
		}
		require.Len(t, ids, len(tests))
	})
}

func TestSignalToAnInstanceNotYetSaved(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.allocate(t, "sig-new") // allocated, read model not written yet

	status, raw := h.postSignal(t, signalRequest{Instance: "sig-new", Name: workflows.OpSkip, Body: `{"reason":"abandon"}`})

	require.Equal(t, http.StatusAccepted, status, "%s", raw)
	require.Len(t, h.temporal.signalCalls(), 1)
}

func TestSignalWhenTheWorkflowCannotBeReached(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "sig-down"
	h.allocate(t, id)
	h.save(t, instance(id, "frozen"))

	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantError  string
		outcome    string
	}{
		{"workflow not running", &serviceerror.NotFound{}, http.StatusConflict,
			"the instance's workflow is not running", "not delivered: the instance workflow is not running"},
		{"workflow not running, wrapped", fmt.Errorf("signal: %w", serviceerror.NewNotFound("workflow execution already completed")),
			http.StatusConflict, "the instance's workflow is not running", "not delivered: the instance workflow is not running"},
		{"Temporal unavailable", serviceerror.NewUnavailable("connection refused 10.0.0.7:7233"), http.StatusServiceUnavailable,
			"Temporal is unavailable; retry later", "not delivered: Temporal unavailable"},
		{"any other error", errors.New("context deadline exceeded talking to 10.0.0.7"), http.StatusServiceUnavailable,
			"Temporal is unavailable; retry later", "not delivered: Temporal unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.temporal.setSignalErr(tc.err)
			t.Cleanup(func() { h.temporal.setSignalErr(nil) })
			auditBefore := h.auditRows(t)

			status, raw := h.postSignal(t, signalRequest{Instance: id, Name: workflows.OpForceUnfreeze,
				Body: `{"reason":"renewal paid"}`, Operator: "carol"})

			require.Equal(t, tc.wantStatus, status, "%s", raw)
			var got struct {
				Error     string `json:"error"`
				RequestID string `json:"requestId"`
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&got))
			require.Equal(t, tc.wantError, got.Error)
			require.Regexp(t, `^op-[0-9a-f]{24}$`, got.RequestID)
			require.NotContains(t, string(raw), "10.0.0.7", "internal errors are not echoed")
			require.Empty(t, h.temporal.signalCalls())

			require.Equal(t, auditBefore+1, h.auditRows(t), "the attempt is audited")
			audit := h.auditOf(t, id, got.RequestID)
			require.Equal(t, tc.outcome, audit.Outcome)
			require.Equal(t, "carol", audit.Actor)
			require.Equal(t, workflows.OpForceUnfreeze, audit.Action)
			require.Equal(t, "renewal paid", audit.Reason)
		})
	}
}

// ---------------------------------------------------------------------------
// The admin view: audit trail and details.

func TestAdminInstanceShowsDetailsAndAuditTrail(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "sig-view"
	h.allocate(t, id)

	t.Run("no actions, no details", func(t *testing.T) {
		h.save(t, instance(id, "active"))
		status, raw := h.admin(t, "/v1/instances/"+id)
		require.Equal(t, http.StatusOK, status)
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &fields))
		for _, key := range []string{"operatorActions", "policy", "frozenBy", "graceExtension", "unfreezeDueAt",
			"parked", "supervision", "deadlines"} {
			require.NotContains(t, fields, key, "%s", raw)
		}
	})

	since := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	details := activities.InstanceDetails{
		Policy: &activities.PolicyDetails{FreezeGrace: "24h0m0s", Retention: "360h0m0s", ReleasePolicy: "hold",
			SupervisionSyncDelay: "3h0m0s", Supervised: true},
		FrozenBy:       workflows.FrozenByOperator,
		GraceExtension: "72h0m0s",
		UnfreezeDueAt:  ptrTo(since.Add(time.Hour)),
		Parked:         &activities.ParkedDetails{Step: "Unfreeze", Error: "tenant API answered 500", Since: since},
		Supervision: &activities.SupervisionDetails{Evidence: "DOC-1", DeclaredStart: ptrTo(since.Add(-48 * time.Hour)),
			DeliveredAt: ptrTo(since.Add(-24 * time.Hour)), Rejections: 1, AppealedFrom: "delivered", AppealReason: "buyer disputes"},
		Deadlines: []activities.DeadlineDetails{
			{Kind: workflows.DeadlineUnfreezeDue, At: since.Add(time.Hour), Why: "renewed while frozen"},
			{Kind: workflows.DeadlineRetentionEnd, At: since.Add(15 * 24 * time.Hour), Why: "retention ends"},
		},
	}
	raw, err := json.Marshal(details)
	require.NoError(t, err)
	inst := instance(id, string(workflows.StateParked))
	inst.Reason = "Unfreeze failed"
	inst.Details = raw
	h.save(t, inst)

	status, body := h.postSignal(t, signalRequest{Instance: id, Name: workflows.OpRetry, Body: `{"reason":"tenant API fixed"}`,
		Operator: "dave"})
	require.Equal(t, http.StatusAccepted, status, "%s", body)
	var first signalAccepted
	require.NoError(t, json.Unmarshal(body, &first))
	h.temporal.setSignalErr(&serviceerror.NotFound{})
	status, body = h.postSignal(t, signalRequest{Instance: id, Name: workflows.OpExtendGrace,
		Body: `{"reason":"buyer asked","duration":"24h"}`})
	h.temporal.setSignalErr(nil)
	require.Equal(t, http.StatusConflict, status, "%s", body)
	var second struct {
		RequestID string `json:"requestId"`
	}
	require.NoError(t, json.Unmarshal(body, &second))

	status, body = h.admin(t, "/v1/instances/"+id)

	require.Equal(t, http.StatusOK, status)
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &fields))
	require.JSONEq(t, `"parked"`, string(fields["state"]))
	require.JSONEq(t, `"Unfreeze failed"`, string(fields["reason"]))
	require.JSONEq(t, `{"freezeGrace":"24h0m0s","retention":"360h0m0s","releasePolicy":"hold",
		"supervisionSyncDelay":"3h0m0s","supervised":true}`, string(fields["policy"]))
	require.JSONEq(t, `"operator"`, string(fields["frozenBy"]))
	require.JSONEq(t, `"72h0m0s"`, string(fields["graceExtension"]))
	require.JSONEq(t, `"2030-01-02T04:04:05Z"`, string(fields["unfreezeDueAt"]))
	require.JSONEq(t, `{"step":"Unfreeze","error":"tenant API answered 500","since":"2030-01-02T03:04:05Z"}`,
		string(fields["parked"]))
	require.JSONEq(t, `{"evidence":"DOC-1","declaredStart":"2029-12-31T03:04:05Z","deliveredAt":"2030-01-01T03:04:05Z",
		"rejections":1,"appealedFrom":"delivered","appealReason":"buyer disputes"}`, string(fields["supervision"]))
	require.JSONEq(t, `[{"kind":"unfreeze-due","at":"2030-01-02T04:04:05Z","why":"renewed while frozen"},
		{"kind":"retention-end","at":"2030-01-17T03:04:05Z","why":"retention ends"}]`, string(fields["deadlines"]))

	var trail []map[string]any
	require.NoError(t, json.Unmarshal(fields["operatorActions"], &trail), "%s", body)
	require.Len(t, trail, 2)
	for _, a := range trail {
		require.NotContains(t, a, "params", "the admin view shows who, what and why")
		requested, err := time.Parse(time.RFC3339Nano, a["requestedAt"].(string))
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), requested, time.Minute)
		delete(a, "requestedAt")
	}
	require.Equal(t, []map[string]any{
		{"id": first.RequestID, "instanceId": id, "action": "retry", "reason": "tenant API fixed", "actor": "dave",
			"outcome": "delivered"},
		{"id": second.RequestID, "instanceId": id, "action": "extend-grace", "reason": "buyer asked", "actor": "admin",
			"outcome": "not delivered: the instance workflow is not running"},
	}, trail)
}
