package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
)

// Messages of the V1 answers.
const (
	msgNotProvisionedYet = "the instance is still being provisioned; please retry"
	msgNUL               = "parameters must not contain NUL characters"
)

// fieldKey is the gin context key of the key appInfo's userName and
// password are encrypted with, when it is not the basic key: a V1 call's
// answers are encrypted and signed with the V1 key (contract §2.5, §2.6).
const fieldKey = "fulfillment.field-key"

// v1SkewNotice is the distance between a V1 timeStamp and the clock past
// which the call is logged: V1 calls are not refused for their age
// (docs/protocol-choices.md), but a large skew is worth seeing.
const v1SkewNotice = time.Minute

// produceV1 is the V1 production interface (contract §1.12): a GET of the
// production address, its parameters in the query, authenticated by
// authToken (contract §2.5). It verifies, parses, hands the callback to the
// inbox as the V2 activity it is applied as (or answers a query from the
// read model), and answers with a body signed with the V1 key.
func (s *marketplace) produceV1(c *gin.Context) {
	start := time.Now()
	activity := "v1:invalid"
	code := koogallery.ResultInternalError
	defer func() { s.metrics.observeCallback(activity, string(code), time.Since(start)) }()

	// As for V2, everything that waits does so within the answer budget.
	ctx, cancel := context.WithTimeout(c.Request.Context(), AnswerBudget)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Set(answerKeyContext, s.cfg.V1AccessKey)
	c.Set(fieldKey, s.cfg.V1AccessKey)

	call, refusal := s.verifiedV1Call(c)
	if refusal != nil {
		code = refusal.ResultCode
		s.answer(c, refusal.status, refusal.Response)
		return
	}
	activity = "v1:" + string(call.Request.V1Activity())
	switch r := call.Request.(type) {
	case *koogallery.V1QueryInstanceRequest:
		c.Set(readOnlyCall, true)
		code = s.queryInstance(c, &koogallery.QueryInstanceRequest{InstanceID: r.InstanceID})
	case *koogallery.V1NewInstanceRequest:
		code = s.v1NewInstance(c, s.cfg.Inbox.AcceptV1(ctx, call))
	case *koogallery.V1GetLicenseRequest:
		code = s.v1GetLicense(c, r, s.cfg.Inbox.AcceptV1(ctx, call))
	default:
		code = s.answerAcceptance(c, s.cfg.Inbox.AcceptV1(ctx, call))
	}
}

// verifiedV1Call verifies a V1 call's authToken over its query and parses
// it, or says how to refuse it. A server without the V1 key refuses every
// V1 call as unauthenticated: nothing it could check would be signed.
func (s *marketplace) verifiedV1Call(c *gin.Context) (inbox.V1Call, *refusal) {
	if s.v1Verifier == nil {
		s.log.Warn("V1 call refused: KOOGALLERY_V1_ACCESS_KEY is not set")
		return inbox.V1Call{}, refuse(koogallery.ResultAuthFailed, msgAuthFailed)
	}
	raw := c.Request.URL.RawQuery
	params, err := s.v1Verifier.Verify(raw)
	if err != nil {
		s.log.Warn("V1 call refused", "reason", err.Error())
		return inbox.V1Call{}, refuse(koogallery.ResultAuthFailed, msgAuthFailed)
	}
	sentAt, _ := koogallery.V1SignedAt(params) // verified above
	if skew := time.Since(sentAt); skew > v1SkewNotice || skew < -v1SkewNotice {
		s.log.Info("V1 call accepted with a distant timeStamp", "skew", skew.Round(time.Second).String())
	}
	// PostgreSQL's text cannot hold NUL; the signed query can.
	for _, values := range params {
		for _, v := range values {
			if strings.ContainsRune(v, 0) {
				return inbox.V1Call{}, refuse(koogallery.ResultInvalidParam, msgNUL)
			}
		}
	}
	req, err := koogallery.ParseV1Request(params)
	if err != nil {
		return inbox.V1Call{}, unparsable(err)
	}
	return inbox.V1Call{Request: req, Query: withoutAuthToken(raw), SentAt: sentAt}, nil
}

// withoutAuthToken is a raw query without its authToken, as the inbox
// keeps it: the audit trail needs the parameters, not a credential that,
// V1 having no freshness window, would let a reader of the database replay
// the call.
func withoutAuthToken(raw string) string {
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, part := range parts {
		name, _, _ := strings.Cut(part, "=")
		if decoded, err := url.QueryUnescape(name); err == nil && decoded == koogallery.ParamAuthToken {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&")
}

// v1NewInstance answers a V1 purchase. V1 has no polling: the answer
// itself must carry the access information (contract §1.12), so a tenant
// not provisioned within the answer budget is answered 000005, and the
// marketplace's hourly retries come back for it (the same instance, as the
// instanceId derives from the order).
func (s *marketplace) v1NewInstance(c *gin.Context, a inbox.Acceptance) koogallery.ResultCode {
	if a.Verdict != inbox.Accepted {
		return s.answerAcceptance(c, a)
	}
	failure := func(msg string) koogallery.ResultCode {
		s.answer(c, http.StatusOK, koogallery.V1NewInstanceResponse{
			ResultCode: koogallery.ResultInternalError, ResultMsg: msg, InstanceID: a.InstanceID})
		return koogallery.ResultInternalError
	}
	if !a.Provisioned {
		return failure(msgNotProvisionedYet)
	}
	views, err := s.cfg.Store.Instances.LookupInstances(c.Request.Context(), []string{a.InstanceID})
	view, ok := views[a.InstanceID]
	if err != nil || !ok || view.Instance == nil {
		s.log.Error("V1 newInstance: read model unavailable", "instanceId", a.InstanceID, "error", err)
		return failure(msgUnavailable)
	}
	info, err := s.instanceInfo(view, inClear)
	if err == nil && info.AppInfo == nil {
		// Released meanwhile: there is nothing left to access.
		return failure(msgUnknown)
	}
	var answer koogallery.V1NewInstanceResponse
	if err == nil {
		// The answer encrypts the credentials itself.
		answer, err = koogallery.NewV1NewInstanceResponse(s.cfg.V1AccessKey, s.v1KeySize(), a.InstanceID, *info.AppInfo)
	}
	if err != nil {
		s.log.Error("V1 newInstance: access information unusable", "instanceId", a.InstanceID, "error", err)
		return failure(msgUnavailable)
	}
	s.answer(c, http.StatusOK, answer)
	return koogallery.ResultSuccess
}

// v1KeySize is the AES key size of V1 answers: KOOGALLERY_APPINFO_ENCRYPTION,
// except that V1 requires encryption (contract §2.6), so "none" is AES-256.
func (s *marketplace) v1KeySize() koogallery.KeySize {
	if s.cfg.Encryption == EncryptAES128 {
		return koogallery.AES128
	}
	return koogallery.AES256
}

// v1GetLicense answers a 联营License purchase (contract §1.11) with its
// licence: the instance is provisioned and the licence issued in the
// background, and the answer waits for both within the budget. Not ready
// by then, it is 000005 with the instanceId: the marketplace's hourly
// retries come back, and the same order gets the same instance and the
// same licence.
func (s *marketplace) v1GetLicense(c *gin.Context, r *koogallery.V1GetLicenseRequest, a inbox.Acceptance) koogallery.ResultCode {
	if a.Verdict != inbox.Accepted {
		return s.answerAcceptance(c, a)
	}
	if !a.Provisioned {
		// The licence is issued once the instance exists.
		s.answer(c, http.StatusOK, koogallery.V1GetLicenseResponse{ResultCode: koogallery.ResultInternalError,
			ResultMsg: msgNotProvisionedYet, InstanceID: a.InstanceID})
		return koogallery.ResultInternalError
	}
	ctx := c.Request.Context()
	key := store.LicenseKey{InstanceID: a.InstanceID, EventID: r.OrderID}
	for {
		lic, err := s.cfg.Store.Licenses.Get(ctx, key)
		if err == nil {
			s.answer(c, http.StatusOK, koogallery.V1GetLicenseResponse{ResultCode: koogallery.ResultSuccess, ResultMsg: msgSuccess,
				License: licenseText(lic), InstanceID: a.InstanceID})
			return koogallery.ResultSuccess
		}
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("V1 getLicense: licences unavailable", "instanceId", a.InstanceID, "error", err)
		}
		deadline, _ := ctx.Deadline()
		if err != nil && !errors.Is(err, store.ErrNotFound) || time.Until(deadline) < v1LicenseMargin {
			s.answer(c, http.StatusOK, koogallery.V1GetLicenseResponse{ResultCode: koogallery.ResultInternalError,
				ResultMsg: msgLicenseNotIssuedYet, InstanceID: a.InstanceID})
			return koogallery.ResultInternalError
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// v1LicenseMargin is what getLicense leaves of the answer budget for
// answering.
const v1LicenseMargin = 300 * time.Millisecond

// msgLicenseNotIssuedYet answers a getLicense whose licence is not issued
// within the budget.
const msgLicenseNotIssuedYet = "the licence is not issued yet; please retry"

// licenseText is a licence as getLicense's answer carries it: a string,
// the characters of a character licence, a file's bytes in base64.
func licenseText(l store.License) string {
	if l.Kind == provisioner.LicenseCharacters {
		return string(l.Content)
	}
	return base64.StdEncoding.EncodeToString(l.Content)
}
