package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// SignalBody is the JSON body of POST /v1/instances/{id}/signals/{name}.
// Reason is required for every action; the other fields belong to the
// actions named beside them.
type SignalBody struct {
	Reason        string `json:"reason"`
	Duration      string `json:"duration,omitempty"`      // extend-grace: a Go duration, e.g. "1h"
	Evidence      string `json:"evidence,omitempty"`      // confirm-delivery: the delivery document
	Result        string `json:"result,omitempty"`        // confirm-delivery: the service's result (服务结果描述)
	StartTime     string `json:"startTime,omitempty"`     // confirm-delivery: declared start, RFC 3339
	AcceptedAt    string `json:"acceptedAt,omitempty"`    // accept: when the buyer accepted, RFC 3339
	ReleasePolicy string `json:"releasePolicy,omitempty"` // set-policy: hold or release
}

// Limits of a signal request.
const (
	maxSignalBody = 64 << 10
	maxReason     = 1000
	maxResult     = 2000
	maxActor      = 64
	maxExtension  = 366 * 24 * time.Hour
)

// operatorHeader names the person behind an admin call, for the audit
// trail. The bearer token authenticates; this only labels.
const operatorHeader = "X-Operator"

// SignalAccepted is the 202 answer.
type SignalAccepted struct {
	RequestID  string `json:"requestId"`
	InstanceID string `json:"instanceId"`
	Signal     string `json:"signal"`
	Status     string `json:"status"`
	Timeline   string `json:"timeline"`
}

// signal serves POST /v1/instances/{instanceId}/signals/{name}: validate,
// audit, and deliver an operator's action to the instance's workflow.
func (s *operatorAPI) signal(c *gin.Context) {
	ctx := c.Request.Context()
	name := c.Param("name")
	if !slices.Contains(workflows.OperatorActions, name) {
		fault.Respond(c, s.log, fault.NotFound("unknown signal; use one of "+strings.Join(workflows.OperatorActions, ", ")))
		return
	}
	id, err := instanceIDParam(c)
	if err != nil {
		fault.Respond(c, s.log, err)
		return
	}
	actor, err := operatorName(c.GetHeader(operatorHeader))
	if err != nil {
		fault.Respond(c, s.log, fault.Invalid(err.Error()))
		return
	}
	body, err := decodeSignalBody(c)
	if err != nil {
		fault.Respond(c, s.log, fault.Invalid(err.Error()))
		return
	}
	op, err := operatorRequest(name, body, s.cfg.Now())
	if err != nil {
		fault.Respond(c, s.log, fault.Invalid(err.Error()))
		return
	}
	op.Actor = actor

	if _, err := s.cfg.Store.Callbacks.InstanceKey(ctx, id); err != nil {
		if errors.Is(err, store.ErrUnknownInstance) {
			fault.Respond(c, s.log, fault.NotFound("no such instance"))
			return
		}
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	inst, err := s.cfg.Store.Instances.Instance(ctx, id)
	switch {
	case err == nil && inst.State == string(workflows.StateReleased):
		fault.Respond(c, s.log, fault.Conflict("the instance is released; nothing can be done to it"))
		return
	case err != nil && !errors.Is(err, store.ErrNotFound):
		fault.Respond(c, s.log, fault.Database(err))
		return
	}

	audit := store.OperatorAction{ID: op.ID, InstanceID: id, Action: name, Reason: op.Reason, Actor: actor, RequestedAt: op.At}
	if err := s.cfg.Store.Audit.RecordOperatorAction(ctx, audit, body); err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = s.cfg.Temporal.SignalWorkflow(sctx, workflows.InstanceWorkflowID(id), "", workflows.OperatorSignal, op)
	outcome := "delivered"
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		outcome = "not delivered: the instance workflow is not running"
	case err != nil:
		outcome = "not delivered: Temporal unavailable"
	}
	if aerr := s.cfg.Store.Audit.SetOperatorOutcome(context.WithoutCancel(ctx), op.ID, outcome); aerr != nil {
		s.log.Error("Operator action outcome not audited", "id", op.ID, "error", aerr)
	}
	s.log.Info("Operator action", "instanceId", id, "action", name, "actor", actor, "id", op.ID, "outcome", outcome)
	switch {
	case errors.As(err, &notFound):
		fault.Respond(c, s.log, fault.Conflict("the instance's workflow is not running").With("requestId", op.ID))
	case err != nil:
		s.log.Error("Operator action not delivered", "instanceId", id, "error", err)
		fault.Respond(c, s.log, fault.Temporal(err).With("requestId", op.ID))
	default:
		c.JSON(http.StatusAccepted, SignalAccepted{
			RequestID: op.ID, InstanceID: id, Signal: name, Status: outcome,
			Timeline: "/v1/instances/" + id,
		})
	}
}

func decodeSignalBody(c *gin.Context) (SignalBody, error) {
	var body SignalBody
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxSignalBody))
	if err != nil {
		return body, fmt.Errorf("the body must be JSON of at most %d bytes", maxSignalBody)
	}
	switch err := decodeStrict(raw, &body); {
	case errors.Is(err, errTrailingData):
		return body, errors.New("the body must hold one JSON object")
	case err != nil:
		return body, errors.New(`the body must be a JSON object such as {"reason": "…"} with only the documented fields`)
	}
	return body, nil
}

// errTrailingData means something other than whitespace follows a JSON
// value.
var errTrailingData = errors.New("data after the JSON value")

// decodeStrict decodes raw as one JSON value whose objects hold only the
// fields of v. Only whitespace may follow it: dec.More alone would let a
// stray "}" or "]" through.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errTrailingData
	}
	return nil
}

// operatorRequest validates a body for an action and builds the signal.
func operatorRequest(name string, b SignalBody, now time.Time) (workflows.OperatorRequest, error) {
	op := workflows.OperatorRequest{ID: newRequestID(), Name: name, At: now.UTC()}
	var err error
	if op.Reason, err = requiredText("reason", b.Reason, "say why, for the audit trail"); err != nil {
		return op, err
	}
	onlyFor := func(field, value string, actions ...string) error {
		if value != "" && !slices.Contains(actions, name) {
			return fmt.Errorf("%s does not apply to %s", field, name)
		}
		return nil
	}
	for _, err := range []error{
		onlyFor("duration", b.Duration, workflows.OpExtendGrace),
		onlyFor("evidence", b.Evidence, workflows.OpConfirmDelivery),
		onlyFor("result", b.Result, workflows.OpConfirmDelivery),
		onlyFor("startTime", b.StartTime, workflows.OpConfirmDelivery),
		onlyFor("acceptedAt", b.AcceptedAt, workflows.OpAccept),
		onlyFor("releasePolicy", b.ReleasePolicy, workflows.OpSetPolicy),
	} {
		if err != nil {
			return op, err
		}
	}
	switch name {
	case workflows.OpExtendGrace:
		d, err := time.ParseDuration(b.Duration)
		if err != nil || d <= 0 || d > maxExtension {
			return op, errors.New(`duration is required: a positive Go duration up to a year, such as "1h" or "72h"`)
		}
		op.Duration = d
	case workflows.OpConfirmDelivery:
		if op.Evidence, err = requiredText("evidence", b.Evidence, "the delivery document (a link or a reference)"); err != nil {
			return op, err
		}
		if op.Result, err = boundedText("result", b.Result, "describe the service's result (服务结果描述)", maxResult); err != nil {
			return op, err
		}
		if op.StartTime, err = optionalTime("startTime", b.StartTime); err != nil {
			return op, err
		}
	case workflows.OpAccept:
		if op.AcceptedAt, err = optionalTime("acceptedAt", b.AcceptedAt); err != nil {
			return op, err
		}
		if op.AcceptedAt != nil && op.AcceptedAt.After(now.Add(time.Minute)) {
			return op, errors.New("acceptedAt is in the future")
		}
	case workflows.OpSetPolicy:
		if b.ReleasePolicy != workflows.ReleasePolicyHold && b.ReleasePolicy != workflows.ReleasePolicyRelease {
			return op, errors.New("releasePolicy is required: hold or release")
		}
		op.ReleasePolicy = b.ReleasePolicy
	}
	return op, nil
}

// requiredText trims a mandatory text field and checks its length. NUL is
// refused here: PostgreSQL text and jsonb cannot hold it, and the audit
// would otherwise fail with a misleading "database unavailable".
func requiredText(field, value, what string) (string, error) {
	return boundedText(field, value, what, maxReason)
}

// boundedText is requiredText with its own limit.
func boundedText(field, value, what string, limit int) (string, error) {
	value = strings.TrimSpace(value)
	switch {
	case value == "":
		return "", fmt.Errorf("%s is required: %s", field, what)
	case utf8.RuneCountInString(value) > limit:
		return "", fmt.Errorf("%s is longer than %d characters", field, limit)
	case strings.ContainsRune(value, 0):
		return "", fmt.Errorf("%s must not contain NUL characters", field)
	}
	return value, nil
}

// optionalTime parses an optional RFC 3339 time field, in UTC.
func optionalTime(field, value string) (*time.Time, error) {
	if value == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return nil, fmt.Errorf("%s must be an RFC 3339 time such as 2026-01-01T00:00:00Z", field)
	}
	t = t.UTC()
	return &t, nil
}

// operatorName validates the X-Operator label; absent means "admin".
func operatorName(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "admin", nil
	}
	// Invalid UTF-8 decodes to U+FFFD, which is printable, and PostgreSQL
	// would then refuse the audit row: check it first.
	if utf8.RuneCountInString(h) > maxActor || !utf8.ValidString(h) || strings.IndexFunc(h, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "", fmt.Errorf("%s must be a printable name of at most %d characters", operatorHeader, maxActor)
	}
	return h, nil
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "op-" + hex.EncodeToString(b[:])
}
