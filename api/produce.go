package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Messages of the answers. They name what is wrong, never echo input or
// internal errors.
const (
	msgSuccess            = "success"
	msgAuthFailed         = "authentication failed"
	msgBodyTooLarge       = "request body exceeds 1 MiB"
	msgUnreadableBody     = "request body could not be read"
	msgNotUTF8            = "request body is not valid UTF-8"
	msgUnknown            = "instance does not exist"
	msgUnavailable        = "service temporarily unavailable; please retry"
	msgBusinessIDUsed     = "businessId already identifies another order line's instance"
	msgProvisioningFailed = "the instance could not be provisioned yet; the merchant is fixing it, please retry"
	msgNotDecidedInTime   = "the merchant's application did not answer in time; please retry"
)

// activityLabel keeps the metrics' activity label to the known names, so
// hostile input cannot create new series.
func activityLabel(a koogallery.Activity) string {
	for _, known := range koogallery.Activities {
		if a == known {
			return string(a)
		}
	}
	return "invalid"
}

// AnswerBudget is how long /produce may work on a call before answering.
// KooGallery's License guides document a 5 s request timeout (ADDENDUM
// §0.6) and nothing says the SaaS interface waits longer, so every answer
// must leave within 4.5 s; the rest of the half second is for signing and
// writing the answer and for the network.
const AnswerBudget = 4 * time.Second

// ProduceReadLimit is how long a /produce request may take to arrive, its
// body included: KooGallery's timeout.
const ProduceReadLimit = 5 * time.Second

// produce is the production interface (SPEC §1): verify the signature over
// the raw body, parse, record durably, signal, answer with a signed body.
func (s *Server) produce(c *gin.Context) {
	start := time.Now()
	activity := "invalid"
	code := koogallery.ResultInternalError
	defer func() { s.metrics.observeCallback(activity, string(code), time.Since(start)) }()

	// The body must arrive within KooGallery's own timeout: a caller
	// trickling it holds no connection longer. (Servers that do not
	// support read deadlines, such as httptest recorders, skip this.)
	_ = http.NewResponseController(c.Writer).SetReadDeadline(start.Add(ProduceReadLimit))

	// Everything below that waits (the database, Temporal, provisioning)
	// waits on this context, so a call is answered within the budget
	// whatever is slow: what cannot be decided by then gets the answer
	// that makes the marketplace come back.
	ctx, cancel := context.WithTimeout(c.Request.Context(), AnswerBudget)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)

	body, status, err := readBody(c)
	if err != nil {
		msg := msgUnreadableBody
		if status == http.StatusRequestEntityTooLarge {
			msg = msgBodyTooLarge
		}
		code = koogallery.ResultInvalidParam
		s.answer(c, status, koogallery.Response{ResultCode: code, ResultMsg: msg})
		return
	}

	query := c.Request.URL.Query()
	// A verification error that is not an authentication failure means
	// the signature and timestamp are valid but the nonce memory
	// (Postgres) is unreachable.
	form, verifyErr := s.verifier.Verify(c.Request.Context(), query, body)
	s.metrics.observeSignature("basic", form)
	if verifyErr != nil && koogallery.IsAuthError(verifyErr) {
		s.log.Warn("Production-interface call refused", "reason", verifyErr.Error())
		code = koogallery.ResultAuthFailed
		s.answer(c, http.StatusOK, koogallery.Response{ResultCode: code, ResultMsg: msgAuthFailed})
		return
	}

	// JSON is UTF-8 (RFC 8259), and the body is stored as text, which
	// PostgreSQL refuses to hold otherwise.
	if !utf8.Valid(body) {
		code = koogallery.ResultInvalidParam
		s.answer(c, http.StatusOK, koogallery.Response{ResultCode: code, ResultMsg: msgNotUTF8})
		return
	}
	req, err := koogallery.ParseRequest(body)
	if err != nil {
		var reqErr *koogallery.RequestError
		msg := "invalid request"
		if errors.As(err, &reqErr) {
			msg = reqErr.Message
		}
		code = koogallery.ResultInvalidParam
		s.answer(c, http.StatusOK, koogallery.Response{ResultCode: code, ResultMsg: msg})
		return
	}
	activity = activityLabel(req.Activity())
	if field := nulField(req); field != "" {
		code = koogallery.ResultInvalidParam
		s.answer(c, http.StatusOK, koogallery.Response{ResultCode: code, ResultMsg: "field " + field + " must not contain NUL characters"})
		return
	}

	in := verifiedCall{req: req, body: body}
	in.sentAt, _ = koogallery.SignedAt(query) // verified above
	if verifyErr != nil {
		s.log.Error("Nonce store unavailable", "activity", activity, "error", verifyErr)
		code = s.spoolOrFail(c, in, query.Get("nonce"))
		return
	}
	switch r := req.(type) {
	case *koogallery.QueryInstanceRequest:
		code = s.queryInstance(c, r)
	case *koogallery.ChangeInstanceCheckRequest:
		code = s.changeInstanceCheck(c, r)
	default:
		code = s.recordAndSignal(c, in)
	}
}

// verifiedCall is a callback whose signature was verified: the request,
// its body as received, and when the marketplace sent it (the signed
// timestamp).
type verifiedCall struct {
	req    koogallery.Request
	body   []byte
	sentAt time.Time
}

// spoolOrFail answers a verified callback that the database could not take.
// A callback the marketplace may send only once goes to the local spool and
// is answered 000000 (the spool is durable, and DrainSpool records it once
// Postgres is back); any other is answered 000005, and the marketplace
// sends it again. nonce is set when the database's nonce memory was
// unreachable too: the spool then remembers it instead.
func (s *Server) spoolOrFail(c *gin.Context, in verifiedCall, nonce string) koogallery.ResultCode {
	req := in.req
	fail := func() koogallery.ResultCode {
		s.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultInternalError, ResultMsg: msgUnavailable})
		return koogallery.ResultInternalError
	}
	_, keyErr := inbox.DedupKey(req)
	if s.cfg.Spool == nil || keyErr != nil || !koogallery.DeliveryOf(req).MustNotFail() {
		return fail()
	}
	if nonce != "" {
		fresh, err := s.cfg.Spool.ClaimNonce(nonce)
		if err != nil {
			s.log.Error("Spool unavailable", "error", err)
			return fail()
		}
		if !fresh {
			s.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultAuthFailed, ResultMsg: msgAuthFailed})
			return koogallery.ResultAuthFailed
		}
	}
	if err := s.cfg.Spool.Put(in.body, s.cfg.Now(), in.sentAt); err != nil {
		s.log.Error("Spool unavailable", "error", err)
		return fail()
	}
	s.log.Warn("Callback spooled to local disk while the database is unreachable", "activity", req.Activity())
	s.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultSuccess, ResultMsg: msgSuccess})
	return koogallery.ResultSuccess
}

// readBody reads at most maxBodyBytes. A declared length over the limit is
// refused before anything is read.
func readBody(c *gin.Context) ([]byte, int, error) {
	if c.Request.ContentLength > maxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, errors.New("body too large")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, http.StatusRequestEntityTooLarge, err
	}
	if err != nil {
		// The marketplace reads resultCode, so the answer is HTTP 200.
		return nil, http.StatusOK, err
	}
	return body, http.StatusOK, nil
}

// recordAndSignal handles the callbacks that change an instance (and
// orderNotify): 000000 is answered as soon as the callback is committed to
// the inbox; delivery to the workflow happens in the background (the
// dispatcher, and the relay for whatever it misses). The answer never
// waits for Temporal.
func (s *Server) recordAndSignal(c *gin.Context, in verifiedCall) koogallery.ResultCode {
	ctx := c.Request.Context()
	req := in.req
	if err := s.recordSpooledFirst(ctx); err != nil {
		s.log.Error("Spooled callbacks not recorded; this callback waits behind them", "activity", req.Activity(), "error", err)
		return s.spoolOrFail(c, in, "")
	}
	rec, err := s.cfg.Inbox.Record(ctx, req, in.body, in.sentAt)
	switch {
	case errors.Is(err, store.ErrUnknownInstance):
		s.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultInstanceNotFound, ResultMsg: msgUnknown})
		return koogallery.ResultInstanceNotFound
	case errors.Is(err, store.ErrInstanceIDTaken):
		s.answer(c, http.StatusOK, koogallery.NewInstanceResponse{ResultCode: koogallery.ResultInvalidParam, ResultMsg: msgBusinessIDUsed})
		return koogallery.ResultInvalidParam
	case err != nil:
		s.log.Error("Callback not recorded", "activity", req.Activity(), "error", err)
		return s.spoolOrFail(c, in, "")
	}
	if !rec.Fresh {
		s.log.Info("Callback redelivered", "activity", req.Activity(), "seq", rec.Callback.Seq,
			"redeliveries", rec.Callback.Redeliveries, "delivered", rec.Callback.Delivered())
	}

	// The callback is durable: from here on the answer is 000000 whatever
	// happens to the delivery, which the dispatcher attempts in the
	// background and the relay completes if need be.
	s.cfg.Inbox.Dispatch(rec)

	if _, ok := req.(*koogallery.NewInstanceRequest); ok {
		var retriedAt int64
		if !rec.Fresh {
			retriedAt = s.retryParkedProvisioning(ctx, rec)
		}
		if s.awaitProvisioning(ctx, rec.Key.InstanceID, retriedAt) == provisioningParked {
			s.answer(c, http.StatusOK, koogallery.NewInstanceResponse{
				ResultCode: koogallery.ResultInternalError, ResultMsg: msgProvisioningFailed, InstanceID: rec.Key.InstanceID,
			})
			return koogallery.ResultInternalError
		}
		s.answer(c, http.StatusOK, koogallery.NewInstanceResponse{
			ResultCode: koogallery.ResultSuccess, ResultMsg: msgSuccess, InstanceID: rec.Key.InstanceID,
		})
		return koogallery.ResultSuccess
	}
	s.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultSuccess, ResultMsg: msgSuccess})
	return koogallery.ResultSuccess
}

// recordSpooledFirst records the callbacks spooled while the database was
// away before a new one is recorded. They arrived first, and the inbox's
// seq must stay arrival order: recorded after this one, an older renewal or
// status change would be applied last and undo it. Until the spool can be
// drained, new callbacks wait behind it (spooled, or answered 000005).
func (s *Server) recordSpooledFirst(ctx context.Context) error {
	if s.cfg.Spool == nil {
		return nil
	}
	if n, err := s.cfg.Spool.Backlog(); err != nil || n == 0 {
		// An unreadable spool holds nothing that could be recorded.
		return nil
	}
	_, err := s.cfg.Inbox.DrainSpool(ctx, s.cfg.Spool)
	return err
}

// answer serialises v once, signs exactly those bytes (Body-Sign, SPEC §2.4)
// and sends them. Every answer, errors included, is signed.
func (s *Server) answer(c *gin.Context, status int, v any) {
	body, err := koogallery.EncodeResponse(v)
	if err != nil {
		s.log.Error("Answer not encodable", "error", err)
		body = []byte(`{"resultCode":"000005","resultMsg":"internal error"}`)
	}
	c.Header(koogallery.BodySignHeader, koogallery.BodySign(s.cfg.AccessKey, body))
	c.Data(status, "application/json;charset=UTF-8", body)
}

// provisioningOutcome is what awaitProvisioning saw.
type provisioningOutcome int

const (
	provisioningPending provisioningOutcome = iota // still going (or not waited for)
	provisioningDone                               // the tenant exists
	provisioningParked                             // provisioning failed and waits for an operator
)

// awaitProvisioning waits up to NewInstanceWait for the instance's tenant,
// so that a provisioning failure is answered 000005 and KooGallery's own
// retries (and its refund after 3 hours) apply. With no wait configured,
// or when provisioning is merely slow, newInstance is answered at once and
// provisioning continues (SPEC §1.2). A parked state saved at or before
// revision staleUpTo is the failure a retry was just asked for, not news.
func (s *Server) awaitProvisioning(ctx context.Context, instanceID string, staleUpTo int64) provisioningOutcome {
	if s.cfg.NewInstanceWait <= 0 {
		return provisioningPending
	}
	// The wait also ends with the answer budget (ctx's deadline).
	deadline := time.Now().Add(s.cfg.NewInstanceWait)
	for {
		views, err := s.cfg.Store.Instances.LookupInstances(ctx, []string{instanceID})
		if err != nil {
			return provisioningPending
		}
		if inst := views[instanceID].Instance; inst != nil {
			switch {
			case inst.FrontEndURL != "":
				return provisioningDone
			case inst.Revision > staleUpTo &&
				(inst.State == string(workflows.StateParked) || inst.State == string(workflows.StateFailed)):
				return provisioningParked
			}
		}
		if time.Now().After(deadline) {
			return provisioningPending
		}
		select {
		case <-ctx.Done():
			return provisioningPending
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// retryParkedProvisioning turns KooGallery's redelivery of newInstance into
// a retry of a provisioning that parked: the marketplace retrying is the
// moment to try again. It is recorded in the instance's timeline. It
// returns the read model's revision when it asked for a retry, else 0.
func (s *Server) retryParkedProvisioning(ctx context.Context, rec store.Recorded) int64 {
	inst, err := s.cfg.Store.Instances.Instance(ctx, rec.Key.InstanceID)
	if err != nil || inst.State != string(workflows.StateParked) {
		return 0
	}
	var d activities.InstanceDetails
	if json.Unmarshal(inst.Details, &d) != nil || d.Parked == nil ||
		(d.Parked.Step != workflows.StepProvision && d.Parked.Step != workflows.StepFetchOrder) {
		return 0
	}
	op := workflows.OperatorRequest{
		ID:     fmt.Sprintf("redelivery-%d-%d", rec.Callback.Seq, rec.Callback.Redeliveries),
		Name:   workflows.OpRetry,
		Reason: "KooGallery sent newInstance again",
		Actor:  "koogallery",
		At:     s.cfg.Now().UTC(),
	}
	sctx, cancel := context.WithTimeout(ctx, directSignalTimeout)
	defer cancel()
	if err := s.cfg.Temporal.SignalWorkflow(sctx, workflows.InstanceWorkflowID(rec.Key.InstanceID), "", workflows.OperatorSignal, op); err != nil {
		s.log.Warn("Parked provisioning not retried on redelivery", "instanceId", rec.Key.InstanceID, "error", err)
		return 0
	}
	s.log.Info("Parked provisioning retried on KooGallery's redelivery", "instanceId", rec.Key.InstanceID)
	return inst.Revision
}
