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

// isKitPath reports whether path is one of the kit's routes.
func isKitPath(path string) bool {
	for _, prefix := range kitRoutePrefixes {
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}

// sync is one kit call.
func (k *kitInterface) sync(c *gin.Context) {
	start := time.Now()
	label := "kit:invalid"
	code := koogallery.ResultInternalError
	defer func() { k.metrics.observeCallback(label, string(code), time.Since(start)) }()
	_ = http.NewResponseController(c.Writer).SetReadDeadline(start.Add(ProduceReadLimit))
	ctx, cancel := context.WithTimeout(c.Request.Context(), AnswerBudget)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)

	op, known := koogallery.ParseKitOperation(c.Param("op"))
	if known {
		label = "kit:" + string(op)
	}
	call, refusal := k.verifiedCall(c, op, known)
	if refusal != nil {
		code = refusal.ResultCode
		k.answer(c, refusal.status, refusal.Response)
		return
	}
	code = k.answerAcceptance(c, k.cfg.Inbox.AcceptKit(ctx, call))
}

// verifiedCall reads the body, verifies its signature, reads the sync and
// decrypts its secret, or says how to refuse the call. Nothing is recorded
// before all of it succeeded.
func (k *kitInterface) verifiedCall(c *gin.Context, op koogallery.KitOperation, known bool) (inbox.KitCall, *refusal) {
	body, status, err := readBody(c)
	if err != nil {
		return inbox.KitCall{}, unreadableBody(status)
	}
	if k.cfg.KitAccessKey == "" {
		// A server that sells no 联营 listing has no kit key: nothing can
		// authenticate.
		k.log.Warn("Kit call refused: KOOGALLERY_KIT_ACCESS_KEY is not set", "path", c.Request.URL.Path)
		return inbox.KitCall{}, refuse(koogallery.ResultAuthFailed, msgKitNotConfigured)
	}
	form, verifyErr := k.verifier.Verify(c.Request.Context(), c.Request.Header, body)
	k.metrics.observeSignature("kit", form)
	switch {
	case verifyErr == nil:
	case koogallery.IsKitParamError(verifyErr):
		k.log.Warn("Kit call refused", "reason", verifyErr.Error())
		return inbox.KitCall{}, refuse(koogallery.ResultInvalidParam, "missing or malformed x-sign, x-timestamp or x-nonce header")
	case koogallery.IsAuthError(verifyErr):
		k.log.Warn("Kit call refused", "reason", verifyErr.Error())
		return inbox.KitCall{}, refuse(koogallery.ResultAuthFailed, msgAuthFailed)
	default:
		// The nonce memory (Postgres) is away: nothing could be recorded
		// either, and the buyer may retry by hand.
		k.log.Error("Kit call not taken: nonce store unavailable", "error", verifyErr)
		return inbox.KitCall{}, refuse(koogallery.ResultInternalError, msgUnavailable)
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
	sentAt, _ := koogallery.KitSignedAt(c.Request.Header) // verified above
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

// answer sends a kit answer, signed with the kit's key (contract §12.3),
// or, on a server without one, with the basic interface's.
func (k *kitInterface) answer(c *gin.Context, status int, v any) {
	key := k.cfg.KitAccessKey
	if key == "" {
		key = k.cfg.AccessKey
	}
	sendSigned(c, k.log, key, status, v)
}
