package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/koogallery"
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
	msgUnknownLicenseCode = "license code does not exist"
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
// KooGallery's License guides document a 5 s request timeout (contract
// §9) and nothing says the SaaS interface waits longer, so every answer
// must leave within 4.5 s; the rest of the half second is for signing and
// writing the answer and for the network.
const AnswerBudget = 4 * time.Second

// ProduceReadLimit is how long a /produce request may take to arrive, its
// body included: KooGallery's timeout.
const ProduceReadLimit = 5 * time.Second

// maxBodyBytes bounds a /produce request body; the largest documented body
// is a few hundred bytes.
const maxBodyBytes = 1 << 20

// produce is the production interface (contract §1): verify the signature over
// the body as received, parse, hand the callback to the inbox (or answer a
// query from the read model), answer with a signed body.
func (s *marketplace) produce(c *gin.Context) {
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

	call, refusal := s.verifiedCall(c)
	if refusal != nil {
		code = refusal.ResultCode
		s.answer(c, refusal.status, refusal.Response)
		return
	}
	activity = activityLabel(call.Request.Activity())
	switch r := call.Request.(type) {
	case *koogallery.QueryInstanceRequest:
		c.Set(readOnlyCall, true)
		code = s.unlessUnchecked(c, call, func() koogallery.ResultCode { return s.queryInstance(c, r) })
	case *koogallery.ChangeInstanceCheckRequest:
		c.Set(readOnlyCall, true)
		code = s.unlessUnchecked(c, call, func() koogallery.ResultCode { return s.changeInstanceCheck(c, r) })
	case *koogallery.GetLicenseAsyncRequest:
		code = s.getLicenseAsync(c, call, r)
	default:
		code = s.answerAcceptance(c, s.cfg.Inbox.Accept(ctx, call))
	}
}

// refusal is the answer to a call refused before it reaches the inbox.
type refusal struct {
	koogallery.Response
	status int
}

func refuse(code koogallery.ResultCode, msg string) *refusal {
	return &refusal{Response: koogallery.Response{ResultCode: code, ResultMsg: msg}, status: http.StatusOK}
}

// verifiedCall reads the body, verifies the signature over it and parses
// it, or says how to refuse the call.
func (s *marketplace) verifiedCall(c *gin.Context) (inbox.Call, *refusal) {
	body, status, err := readBody(c)
	if err != nil {
		return inbox.Call{}, unreadableBody(status)
	}
	query := c.Request.URL.Query()
	iface, verifier := "basic", s.verifier
	if koogallery.IsLicenseCodeActivity(koogallery.PeekActivity(body)) {
		// License-code callbacks are signed with the key of their own
		// type (contract §13.5), and answered with it.
		if s.licenseVerifier == nil {
			s.log.Warn("License-code callback refused: KOOGALLERY_LICENSE_ACCESS_KEY is not set")
			return inbox.Call{}, refuse(koogallery.ResultAuthFailed, msgAuthFailed)
		}
		iface, verifier = "license", s.licenseVerifier
		c.Set(answerKeyContext, s.cfg.LicenseAccessKey)
	}
	// A verification error that is not an authentication failure means
	// the signature and timestamp are valid but the nonce memory
	// (Postgres) is unreachable.
	form, verifyErr := verifier.Verify(c.Request.Context(), query, body)
	s.metrics.observeSignature(iface, form)
	if verifyErr != nil && koogallery.IsAuthError(verifyErr) {
		s.log.Warn("Production-interface call refused", "reason", verifyErr.Error())
		return inbox.Call{}, refuse(koogallery.ResultAuthFailed, msgAuthFailed)
	}
	// JSON is UTF-8 (RFC 8259), and the body is stored as text, which
	// PostgreSQL refuses to hold otherwise.
	if !utf8.Valid(body) {
		return inbox.Call{}, refuse(koogallery.ResultInvalidParam, msgNotUTF8)
	}
	req, err := koogallery.ParseRequest(body)
	if err != nil {
		return inbox.Call{}, unparsable(err)
	}
	if r := nulRefusal(req); r != nil {
		return inbox.Call{Request: req}, r
	}
	call := inbox.Call{Request: req, Body: body}
	call.SentAt, _ = koogallery.SignedAt(query) // verified above
	if verifyErr != nil {
		s.log.Error("Nonce store unavailable", "activity", req.Activity(), "error", verifyErr)
		call.UncheckedNonce = query.Get("nonce")
	}
	return call, nil
}

// unreadableBody refuses a body readBody could not read, with its status.
func unreadableBody(status int) *refusal {
	r := refuse(koogallery.ResultInvalidParam, msgUnreadableBody)
	if status == http.StatusRequestEntityTooLarge {
		r.ResultMsg = msgBodyTooLarge
	}
	r.status = status
	return r
}

// unparsable refuses a body the parser refused, with the parser's message
// (which names fields, never echoes values).
func unparsable(err error) *refusal {
	msg := "invalid request"
	var reqErr *koogallery.RequestError
	if errors.As(err, &reqErr) {
		msg = reqErr.Message
	}
	return refuse(koogallery.ResultInvalidParam, msg)
}

// nulRefusal refuses a parsed request holding a NUL character, which
// PostgreSQL's text and jsonb cannot hold; nil when there is none.
func nulRefusal(v any) *refusal {
	if field := nulField(v); field != "" {
		return refuse(koogallery.ResultInvalidParam, "field "+field+" must not contain NUL characters")
	}
	return nil
}

// unlessUnchecked answers a query only when its nonce could be checked:
// with the database away, it is answered 000005 and asked again.
func (s *marketplace) unlessUnchecked(c *gin.Context, call inbox.Call, answer func() koogallery.ResultCode) koogallery.ResultCode {
	if call.UncheckedNonce == "" {
		return answer()
	}
	s.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultInternalError, ResultMsg: msgUnavailable})
	return koogallery.ResultInternalError
}

// answerAcceptance answers the inbox's verdict on a callback.
func (s *marketplace) answerAcceptance(c *gin.Context, a inbox.Acceptance) koogallery.ResultCode {
	var r koogallery.Response
	switch a.Verdict {
	case inbox.Accepted:
		r = koogallery.Response{ResultCode: koogallery.ResultSuccess, ResultMsg: msgSuccess}
	case inbox.UnknownInstance:
		r = koogallery.Response{ResultCode: koogallery.ResultInstanceNotFound, ResultMsg: msgUnknown}
	case inbox.UnknownLicenseCode:
		r = koogallery.Response{ResultCode: koogallery.ResultInstanceNotFound, ResultMsg: msgUnknownLicenseCode}
	case inbox.InstanceIDTaken:
		r = koogallery.Response{ResultCode: koogallery.ResultInvalidParam, ResultMsg: msgBusinessIDUsed}
	case inbox.Replayed:
		r = koogallery.Response{ResultCode: koogallery.ResultAuthFailed, ResultMsg: msgAuthFailed}
	case inbox.ProvisioningParked:
		r = koogallery.Response{ResultCode: koogallery.ResultInternalError, ResultMsg: msgProvisioningFailed}
	default:
		r = koogallery.Response{ResultCode: koogallery.ResultInternalError, ResultMsg: msgUnavailable}
	}
	if a.InstanceID != "" {
		s.answer(c, http.StatusOK, koogallery.NewInstanceResponse{ResultCode: r.ResultCode, ResultMsg: r.ResultMsg, InstanceID: a.InstanceID})
	} else {
		s.answer(c, http.StatusOK, r)
	}
	return r.ResultCode
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

// answerKeyContext is the gin context key of the key an answer is signed
// with, when it is not the interface's usual one: the key the call was
// verified with.
const answerKeyContext = "fulfillment.answer-key"

// answer serialises v once, signs exactly those bytes (Body-Sign, contract §2.4)
// and sends them. Every answer, errors included, is signed: with the key
// of the interface the call was verified for (the basic key unless set).
func (s *marketplace) answer(c *gin.Context, status int, v any) {
	key := s.cfg.AccessKey
	if k := c.GetString(answerKeyContext); k != "" {
		key = k
	}
	sendSigned(c, s.log, key, status, v)
}

// sendSigned serialises v once, signs exactly those bytes with key and
// sends them.
func sendSigned(c *gin.Context, log *slog.Logger, key string, status int, v any) {
	body, err := koogallery.EncodeResponse(v)
	if err != nil {
		log.Error("Answer not encodable", "error", err)
		body = []byte(`{"resultCode":"000005","resultMsg":"internal error"}`)
	}
	c.Header(koogallery.BodySignHeader, koogallery.BodySign(key, body))
	c.Data(status, "application/json;charset=UTF-8", body)
}
