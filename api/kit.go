package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// The kit's routes (contract §12.2): the marketplace appends the kit's
// sub-path to the production address, path included, so a production
// interface at /produce receives /produce/produceAPI/v2/<op>. Both places
// are served.
var kitRoutePrefixes = []string{"/produce/produceAPI/v2/", "/produceAPI/v2/"}

// v1KitRoutePrefixes are the V1 kit's routes (contract §12.10): the same
// sub-paths without /v2, authenticated by an authToken header.
var v1KitRoutePrefixes = []string{"/produce/produceAPI/", "/produceAPI/"}

// Messages of the kit's answers.
const (
	msgKitNotConfigured    = "authentication failed"
	msgKitUnknownOp        = "unknown kit operation"
	msgSecretUndecryptable = "clientSecret cannot be decrypted with the merchant's private keys; check the public key uploaded with the app credential"
	msgSecretNoKeys        = "clientSecret cannot be decrypted: the merchant has configured no private key"
)

// kitInterface answers the 联营 kit's synchronisation calls (contract §12):
// verify x-sign over the body as received, read the body, decrypt and seal
// an applicationSync's clientSecret, record the sync in the inbox, answer
// with a Body-Sign made with the kit's key.
type kitInterface struct {
	cfg      *Config
	verifier *koogallery.KitVerifier
	sealer   activities.Sealer
	log      *slog.Logger
	metrics  *Metrics
}

// isKitPath reports whether path is one of the kit's routes (V2 or V1).
func isKitPath(path string) bool {
	for _, prefix := range v1KitRoutePrefixes { // the V2 routes are under them
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}

// sync is one kit call (V2: x-sign headers, answered with the kit's key).
func (k *kitInterface) sync(c *gin.Context) {
	key := k.cfg.KitAccessKey
	if key == "" {
		key = k.cfg.AccessKey
	}
	k.serve(c, key, k.verifyV2)
}

// syncV1 is one V1 kit call (authToken header, answered with the V1 key).
func (k *kitInterface) syncV1(c *gin.Context) {
	key := k.cfg.V1AccessKey
	if key == "" {
		key = k.cfg.AccessKey
	}
	k.serve(c, key, k.verifyV1)
}

// kitAuthentication checks a kit call's signature over body, or says how
// to refuse it, and gives the time the marketplace signed it.
type kitAuthentication func(c *gin.Context, body []byte) (sentAt time.Time, r *refusal)

// serve answers one kit call authenticated by authenticate, signing the
// answer with answerKey.
func (k *kitInterface) serve(c *gin.Context, answerKey string, authenticate kitAuthentication) {
	start := time.Now()
	label := "kit:invalid"
	code := koogallery.ResultInternalError
	defer func() { k.metrics.observeCallback(label, string(code), time.Since(start)) }()
	c.Set(answerKeyContext, answerKey)
	_ = http.NewResponseController(c.Writer).SetReadDeadline(start.Add(ProduceReadLimit))
	ctx, cancel := context.WithTimeout(c.Request.Context(), AnswerBudget)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)

	op, known := koogallery.ParseKitOperation(c.Param("op"))
	if known {
		label = "kit:" + string(op)
	}
	call, refusal := k.verifiedCall(c, op, known, authenticate)
	if refusal != nil {
		code = refusal.ResultCode
		k.answer(c, refusal.status, refusal.Response)
		return
	}
	code = k.answerAcceptance(c, k.cfg.Inbox.AcceptKit(ctx, call))
}

// verifyV2 checks the kit's x-sign headers (contract §12.3).
func (k *kitInterface) verifyV2(c *gin.Context, body []byte) (time.Time, *refusal) {
	if k.cfg.KitAccessKey == "" {
		// A server that sells no 联营 listing has no kit key: nothing can
		// authenticate.
		k.log.Warn("Kit call refused: KOOGALLERY_KIT_ACCESS_KEY is not set", "path", c.Request.URL.Path)
		return time.Time{}, refuse(koogallery.ResultAuthFailed, msgKitNotConfigured)
	}
	form, verifyErr := k.verifier.Verify(c.Request.Context(), c.Request.Header, body)
	k.metrics.observeSignature("kit", form)
	switch {
	case verifyErr == nil:
	case koogallery.IsKitParamError(verifyErr):
		k.log.Warn("Kit call refused", "reason", verifyErr.Error())
		return time.Time{}, refuse(koogallery.ResultInvalidParam, "missing or malformed x-sign, x-timestamp or x-nonce header")
	case koogallery.IsAuthError(verifyErr):
		k.log.Warn("Kit call refused", "reason", verifyErr.Error())
		return time.Time{}, refuse(koogallery.ResultAuthFailed, msgAuthFailed)
	default:
		// The nonce memory (Postgres) is away: nothing could be recorded
		// either, and the buyer may retry by hand.
		k.log.Error("Kit call not taken: nonce store unavailable", "error", verifyErr)
		return time.Time{}, refuse(koogallery.ResultInternalError, msgUnavailable)
	}
	sentAt, _ := koogallery.KitSignedAt(c.Request.Header) // verified above
	return sentAt, nil
}

// verifyV1 checks a V1 kit call's authToken header (contract §12.10) with
// the V1 key. V1 has no nonce and no documented window: a call sent again
// is the same sync, recorded once.
func (k *kitInterface) verifyV1(c *gin.Context, body []byte) (time.Time, *refusal) {
	if k.cfg.V1AccessKey == "" {
		k.log.Warn("V1 kit call refused: KOOGALLERY_V1_ACCESS_KEY is not set", "path", c.Request.URL.Path)
		return time.Time{}, refuse(koogallery.ResultAuthFailed, msgKitNotConfigured)
	}
	err := koogallery.VerifyV1Kit(k.cfg.V1AccessKey, c.Request.Header, body)
	form := koogallery.SignedForm("v1")
	if err != nil {
		form = "none"
	}
	k.metrics.observeSignature("kit-v1", form)
	if err != nil {
		k.log.Warn("V1 kit call refused", "reason", err.Error())
		return time.Time{}, refuse(koogallery.ResultAuthFailed, msgAuthFailed)
	}
	return time.Now(), nil
}

// verifiedCall reads the body, authenticates it, reads the sync and
// decrypts its secret, or says how to refuse the call. Nothing is recorded
// before all of it succeeded.
func (k *kitInterface) verifiedCall(c *gin.Context, op koogallery.KitOperation, known bool, authenticate kitAuthentication) (inbox.KitCall, *refusal) {
	body, status, err := readBody(c)
	if err != nil {
		return inbox.KitCall{}, unreadableBody(status)
	}
	sentAt, r := authenticate(c, body)
	if r != nil {
		return inbox.KitCall{}, r
	}
	if !known {
		return inbox.KitCall{}, refuse(koogallery.ResultInvalidParam, msgKitUnknownOp)
	}
	if !utf8.Valid(body) {
		return inbox.KitCall{}, refuse(koogallery.ResultInvalidParam, msgNotUTF8)
	}
	sync, err := koogallery.ParseKitSync(op, body)
	if err != nil {
		return inbox.KitCall{}, unparsable(err)
	}
	if r := nulRefusal(sync); r != nil {
		return inbox.KitCall{}, r
	}
	call := inbox.NewKitCall(sync, body, sentAt)
	if sync.Operation == koogallery.KitApplicationSync && sync.Flag != koogallery.KitFlagDelete {
		if r := k.sealSecret(&call, sync); r != nil {
			return inbox.KitCall{}, r
		}
	}
	return call, nil
}

// sealSecret decrypts an applicationSync's clientSecret with the
// merchant's private keys and seals it for storage: the secret in clear
// lives only in this request and in the signed call that gives it to the
// merchant's application.
func (k *kitInterface) sealSecret(call *inbox.KitCall, sync *koogallery.KitSync) *refusal {
	if k.cfg.KitKeys == nil {
		k.log.Error("applicationSync refused: KOOGALLERY_KIT_PRIVATE_KEY_FILE is not set", "instance", sync.InstanceID, "tenant", sync.TenantID)
		return refuse(koogallery.ResultInternalError, msgSecretNoKeys)
	}
	secret, with, err := k.cfg.KitKeys.DecryptClientSecret(sync.ClientSecret)
	if err != nil {
		k.log.Error("applicationSync refused", "instance", sync.InstanceID, "tenant", sync.TenantID, "app", sync.AppID, "reason", err.Error())
		return refuse(koogallery.ResultInternalError, msgSecretUndecryptable)
	}
	sealed, err := k.sealer.SealSecret(secret)
	if err != nil {
		k.log.Error("applicationSync not taken: the secret cannot be sealed", "error", err)
		return refuse(koogallery.ResultInternalError, msgUnavailable)
	}
	call.SealedSecret = sealed
	call.Sync.DecryptedWith = with
	return nil
}

// answerAcceptance answers the inbox's verdict on a kit sync.
func (k *kitInterface) answerAcceptance(c *gin.Context, a inbox.Acceptance) koogallery.ResultCode {
	r := koogallery.Response{ResultCode: koogallery.ResultInternalError, ResultMsg: msgUnavailable}
	if a.Verdict == inbox.Accepted {
		r = koogallery.Response{ResultCode: koogallery.ResultSuccess, ResultMsg: msgSuccess}
	}
	k.answer(c, http.StatusOK, r)
	return r.ResultCode
}

// answer sends a kit answer, signed with the key of the call's kit
// interface (contract §12.3, §12.10): the kit's key for V2, the V1 key for
// V1, or, on a server without one, the basic interface's.
func (k *kitInterface) answer(c *gin.Context, status int, v any) {
	key := c.GetString(answerKeyContext)
	if key == "" {
		key = k.cfg.KitAccessKey
	}
	if key == "" {
		key = k.cfg.AccessKey
	}
	sendSigned(c, k.log, key, status, v)
}
