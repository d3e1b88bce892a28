package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/store"
)

// The operator's repairs of what the server set aside rather than retry
// forever: callbacks that could never be delivered to their workflow
// (parked), and usage periods that could not be pushed as they were
// (held). Each action needs a reason and is audited like an operator
// signal (operator_actions, X-Operator).

// ParkedCallback is a parked callback as the admin API shows it.
type ParkedCallback struct {
	Seq        int64      `json:"seq"`
	Activity   string     `json:"activity"`
	InstanceID string     `json:"instanceId"`
	OrderID    string     `json:"orderId,omitempty"`
	Debug      bool       `json:"debug"`
	ReceivedAt time.Time  `json:"receivedAt"`
	SentAt     *time.Time `json:"sentAt,omitempty"`
	Attempts   int        `json:"attempts"`
	Reason     string     `json:"reason"`
	ParkedAt   time.Time  `json:"parkedAt"`
	Outcome    string     `json:"outcome,omitempty"`
}

func parkedView(cb store.Callback) ParkedCallback {
	v := ParkedCallback{
		Seq: cb.Seq, Activity: cb.Activity, InstanceID: cb.InstanceID, OrderID: cb.OrderID, Debug: cb.Debug,
		ReceivedAt: cb.ReceivedAt.UTC(), Attempts: cb.Attempts, Reason: cb.LastError, ParkedAt: cb.ParkedAt.Time.UTC(),
		Outcome: cb.Outcome,
	}
	if cb.SentAt.Valid {
		at := cb.SentAt.Time.UTC()
		v.SentAt = &at
	}
	return v
}

// listParkedCallbacks serves GET /v1/callbacks?state=parked.
func (s *operatorAPI) listParkedCallbacks(c *gin.Context) {
	if state := c.DefaultQuery("state", "parked"); state != "parked" {
		fault.Respond(c, s.log, fault.Invalid("state must be parked: the callbacks waiting for an operator"))
		return
	}
	cbs, err := s.cfg.Store.Callbacks.ParkedCallbacks(c.Request.Context(), 1000)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	out := make([]ParkedCallback, 0, len(cbs))
	for _, cb := range cbs {
		out = append(out, parkedView(cb))
	}
	c.JSON(http.StatusOK, gin.H{"callbacks": out})
}

// Repair actions.
const (
	actionCallbackRetry   = "retry"
	actionCallbackDiscard = "discard"
	actionPeriodSplit     = "split"
	actionPeriodWriteOff  = "write-off"
)

// repairCallback serves POST /v1/callbacks/{seq}/{retry|discard}: retry
// makes a parked callback due again (after a fix), discard closes it
// without delivering it.
func (s *operatorAPI) repairCallback(c *gin.Context) {
	ctx := c.Request.Context()
	action := c.Param("action")
	if action != actionCallbackRetry && action != actionCallbackDiscard {
		fault.Respond(c, s.log, fault.NotFound("unknown action; use retry or discard"))
		return
	}
	seq, err := strconv.ParseInt(c.Param("seq"), 10, 64)
	if err != nil || seq <= 0 || strconv.FormatInt(seq, 10) != c.Param("seq") {
		fault.Respond(c, s.log, fault.Invalid("seq must be a callback's number, as GET /v1/callbacks lists it"))
		return
	}
	actor, reason, ok := s.repairRequest(c)
	if !ok {
		return
	}
	cb, err := s.cfg.Store.Callbacks.ParkedCallback(ctx, seq)
	if errors.Is(err, store.ErrNotParked) {
		fault.Respond(c, s.log, fault.NotFound("no parked callback has this number"))
		return
	}
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	finish, ok := s.auditRepair(c, cb.InstanceID, "callback-"+action, reason, actor, gin.H{"seq": seq})
	if !ok {
		return
	}
	switch action {
	case actionCallbackRetry:
		cb, err = s.cfg.Store.Callbacks.UnparkCallback(ctx, seq)
	default:
		cb, err = s.cfg.Store.Callbacks.DiscardParkedCallback(ctx, seq, fmt.Sprintf("discarded by %s: %s", actor, reason))
	}
	finish(repairOutcome(err))
	if errors.Is(err, store.ErrNotParked) {
		fault.Respond(c, s.log, fault.Conflict("the callback is no longer parked"))
		return
	}
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	s.log.Info("Parked callback repaired", "seq", seq, "action", action, "actor", actor, "instanceId", cb.InstanceID)
	c.JSON(http.StatusOK, parkedView(cb))
}

// repairUsagePeriod serves POST
// /v1/instances/{instanceId}/usage/periods/{begin}/{split|write-off}: a
// held period is split into parts that each fit one record (pushed like
// any pending period), or written off (not billed).
func (s *operatorAPI) repairUsagePeriod(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := instanceIDParam(c)
	if err != nil {
		fault.Respond(c, s.log, err)
		return
	}
	action := c.Param("action")
	if action != actionPeriodSplit && action != actionPeriodWriteOff {
		fault.Respond(c, s.log, fault.NotFound("unknown action; use split or write-off"))
		return
	}
	begin, err := time.Parse(time.RFC3339, c.Param("begin"))
	if err != nil {
		fault.Respond(c, s.log, fault.Invalid("begin must be the period's begin as GET …/usage shows it (RFC 3339)"))
		return
	}
	actor, reason, ok := s.repairRequest(c)
	if !ok {
		return
	}
	held, err := s.heldPeriod(ctx, id, begin)
	if errors.Is(err, store.ErrNotHeld) {
		fault.Respond(c, s.log, fault.NotFound("the instance has no held period beginning then"))
		return
	}
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	var parts []store.PeriodPart
	if action == actionPeriodSplit {
		if parts, err = activities.SplitHeldPeriod(held); err != nil {
			fault.Respond(c, s.log, fault.Conflict(err.Error()+"; write it off instead"))
			return
		}
	}
	finish, ok := s.auditRepair(c, id, "usage-"+action, reason, actor, gin.H{"begin": begin.UTC()})
	if !ok {
		return
	}
	var periods []store.UsagePeriod
	if action == actionPeriodSplit {
		periods, err = s.cfg.Store.Metering.SplitHeldPeriod(ctx, id, held.PeriodStart, parts)
	} else {
		var p store.UsagePeriod
		p, err = s.cfg.Store.Metering.WriteOffHeldPeriod(ctx, id, held.PeriodStart, fmt.Sprintf("written off by %s: %s", actor, reason))
		periods = []store.UsagePeriod{p}
	}
	finish(repairOutcome(err))
	if errors.Is(err, store.ErrNotHeld) {
		fault.Respond(c, s.log, fault.Conflict("the period is no longer held"))
		return
	}
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	s.log.Info("Held usage period repaired", "instanceId", id, "begin", begin, "action", action, "actor", actor)
	c.JSON(http.StatusOK, gin.H{"periods": periods})
}

// heldPeriod finds an instance's held period by its begin.
func (s *operatorAPI) heldPeriod(ctx context.Context, id string, begin time.Time) (store.UsagePeriod, error) {
	periods, err := s.cfg.Store.Metering.UsagePeriodsOf(ctx, id, begin, begin.Add(time.Second), 1)
	if err != nil {
		return store.UsagePeriod{}, err
	}
	if len(periods) == 0 || !periods[0].PeriodStart.Equal(begin) || periods[0].State != store.PeriodHeld {
		return store.UsagePeriod{}, store.ErrNotHeld
	}
	return periods[0], nil
}

// repairRequest reads the operator (X-Operator) and the required reason
// ({"reason": "…"}), or answers 400.
func (s *operatorAPI) repairRequest(c *gin.Context) (actor, reason string, ok bool) {
	actor, err := operatorName(c.GetHeader(operatorHeader))
	if err != nil {
		fault.Respond(c, s.log, fault.Invalid(err.Error()))
		return "", "", false
	}
	var body struct {
		Reason string `json:"reason"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxSignalBody))
	if err != nil || decodeStrict(raw, &body) != nil {
		fault.Respond(c, s.log, fault.Invalid(`the body must be {"reason": "…"}`))
		return "", "", false
	}
	if reason, err = requiredText("reason", body.Reason, "say why, for the audit trail"); err != nil {
		fault.Respond(c, s.log, fault.Invalid(err.Error()))
		return "", "", false
	}
	return actor, reason, true
}

// auditRepair records a repair in the operator actions before it is
// carried out, or answers 503; finish records its outcome.
func (s *operatorAPI) auditRepair(c *gin.Context, instanceID, action, reason, actor string, params any) (finish func(outcome string), ok bool) {
	audit := store.OperatorAction{ID: newRequestID(), InstanceID: instanceID, Action: action, Reason: reason,
		Actor: actor, RequestedAt: s.cfg.Now().UTC()}
	if err := s.cfg.Store.Audit.RecordOperatorAction(c.Request.Context(), audit, params); err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return nil, false
	}
	return func(outcome string) {
		if err := s.cfg.Store.Audit.SetOperatorOutcome(context.WithoutCancel(c.Request.Context()), audit.ID, outcome); err != nil {
			s.log.Error("Repair outcome not audited", "id", audit.ID, "error", err)
		}
	}, true
}

// repairOutcome is the audited outcome of a repair.
func repairOutcome(err error) string {
	if err != nil {
		return "not done: " + err.Error()
	}
	return "done"
}
