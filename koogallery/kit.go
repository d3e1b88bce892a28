package koogallery

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// KitOperation names one of the 联营 kit's five synchronisation calls
// (§12): the last element of the call's path, /produceAPI/v2/<op>.
type KitOperation string

// The kit's operations (§12.2).
const (
	KitTenantSync      KitOperation = "tenantSync"
	KitApplicationSync KitOperation = "applicationSync"
	KitAuthSync        KitOperation = "authSync"
	KitSingleOrgSync   KitOperation = "singleOrgSync"
	KitAllOrgSync      KitOperation = "allOrgSync"
)

// KitOperations lists every operation ParseKitOperation knows.
var KitOperations = []KitOperation{KitTenantSync, KitApplicationSync, KitAuthSync, KitSingleOrgSync, KitAllOrgSync}

// ParseKitOperation reads an operation's name exactly as the path spells
// it; false means an unknown operation (answer 000002, §12.2).
func ParseKitOperation(s string) (KitOperation, bool) {
	for _, op := range KitOperations {
		if string(op) == s {
			return op, true
		}
	}
	return "", false
}

// The headers that carry a kit call's signature (§12.3). Header names are
// case-insensitive.
const (
	HeaderKitSign      = "x-sign"
	HeaderKitTimestamp = "x-timestamp"
	HeaderKitNonce     = "x-nonce"
)

// ErrKitHeaders means x-sign, x-timestamp or x-nonce is missing, empty,
// repeated or malformed. Unlike the basic interface's
// ErrMissingSignatureParams it is not an authentication failure: the kit
// answers it 000002 (invalid parameter), as Huawei's sample does for its
// missing headers. IsKitParamError reports it.
var ErrKitHeaders = errors.New("missing or malformed kit signature headers")

// IsKitParamError reports whether err means a kit call's signature
// headers are unusable (answer 000002, ResultInvalidParam). IsAuthError
// is false for such an error.
func IsKitParamError(err error) bool { return errors.Is(err, ErrKitHeaders) }

// KitVerifier checks the x-sign of the kit's calls (§12.3). AccessKey and
// Nonces are required; the zero values of the other fields mean the
// defaults.
type KitVerifier struct {
	// AccessKey is the key bound to the 联营SaaS同步接口 interface type,
	// not the basic interface's (§12.3).
	AccessKey string
	// Window is the accepted distance between x-timestamp and the server
	// clock, either way; zero or negative means DefaultSignatureWindow
	// (the documented 60 s).
	Window time.Duration
	// Nonces blocks replays. It may be the basic interface's store: both
	// interfaces' nonces are random, and one shared table is simpler.
	Nonces NonceStore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify authenticates one kit call from its headers and its raw body,
// exactly as received, and reports which form of the body x-sign covers:
// the raw bytes (FormRaw) or the kit's canonical form (FormCanonical: the
// body re-serialised by CanonicalBody with KitCanonical, as Huawei's
// sample verifies it). x-sign is hex(HMAC-SHA256(accessKey, accessKey +
// x-nonce + x-timestamp + body)), compared in constant time, hex case
// ignored.
//
// The checks run as the basic Verifier's do: headers present and
// well-formed, the signature over either form, the timestamp within the
// window (13 digits milliseconds, 10 tolerated as seconds), and only then
// the nonce claim, so that neither a forged call nor a wrong signature
// uses up a nonce.
//
// Unusable headers return an error wrapping ErrKitHeaders
// (IsKitParamError: answer 000002); a wrong signature, a stale timestamp
// or a replayed nonce one wrapping ErrBadSignature, ErrStaleTimestamp or
// ErrReplayedNonce (IsAuthError: 000001); a failing NonceStore its error
// wrapped, none of those (000005). Error texts never contain the
// signature or the key.
func (v *KitVerifier) Verify(ctx context.Context, h http.Header, body []byte) (SignedForm, error) {
	if v.AccessKey == "" {
		return FormNone, errors.New("verify kit signature: verifier has no access key")
	}
	if v.Nonces == nil {
		return FormNone, errors.New("verify kit signature: verifier has no nonce store")
	}
	rawSig, err := kitHeader(h, HeaderKitSign)
	if err != nil {
		return FormNone, err
	}
	sig, problem := decodeSignatureHex(HeaderKitSign, rawSig)
	if problem != "" {
		return FormNone, fmt.Errorf("%w: %s", ErrKitHeaders, problem)
	}
	rawTS, err := kitHeader(h, HeaderKitTimestamp)
	if err != nil {
		return FormNone, err
	}
	ts, problem := parseSignedTimestamp(HeaderKitTimestamp, rawTS)
	if problem != "" {
		return FormNone, fmt.Errorf("%w: %s", ErrKitHeaders, problem)
	}
	nonce, err := kitHeader(h, HeaderKitNonce)
	if err != nil {
		return FormNone, err
	}
	if problem := nonceProblem(HeaderKitNonce, nonce); problem != "" {
		return FormNone, fmt.Errorf("%w: %s", ErrKitHeaders, problem)
	}
	form := v.matchingForm(sig, nonce, rawTS, body)
	if form == FormNone {
		return FormNone, fmt.Errorf("%w: x-sign matches neither the body nor its canonical form", ErrBadSignature)
	}
	return form, admitSigned(ctx, v.Nonces, v.Window, v.Now, rawTS, ts, nonce)
}

// matchingForm reports which form of body sig signs: the raw bytes first,
// then the kit's canonical form.
func (v *KitVerifier) matchingForm(sig []byte, nonce, timestamp string, body []byte) SignedForm {
	if hmac.Equal(kitMAC(v.AccessKey, nonce, timestamp, body), sig) {
		return FormRaw
	}
	canonical, err := CanonicalBody(body, KitCanonical)
	if err == nil && hmac.Equal(kitMAC(v.AccessKey, nonce, timestamp, canonical), sig) {
		return FormCanonical
	}
	return FormNone
}

// kitHeader returns the single value of a header. Names are matched
// case-insensitively even in a header map built by hand (not canonicalised
// by net/http); a header given twice is refused, as two layers could
// disagree on which value was verified.
func kitHeader(h http.Header, name string) (string, error) {
	var values []string
	for key, vs := range h {
		if strings.EqualFold(key, name) {
			values = append(values, vs...)
		}
	}
	switch {
	case len(values) == 0 || strings.TrimSpace(values[0]) == "":
		return "", fmt.Errorf("%w: %s is missing", ErrKitHeaders, name)
	case len(values) > 1:
		return "", fmt.Errorf("%w: %s is repeated", ErrKitHeaders, name)
	}
	return values[0], nil
}

// KitSignedAt returns when the marketplace signed a kit call: its
// x-timestamp header (13 digits milliseconds, 10 seconds). Use it after
// Verify accepted the call; false means the header is missing or
// malformed.
func KitSignedAt(h http.Header) (time.Time, bool) {
	raw, err := kitHeader(h, HeaderKitTimestamp)
	if err != nil {
		return time.Time{}, false
	}
	ts, problem := parseSignedTimestamp(HeaderKitTimestamp, raw)
	return ts, problem == ""
}

// SignedKitHeaders returns the x-sign, x-timestamp and x-nonce headers for
// sending body as the marketplace sends a kit call: a random nonce of 64
// upper-case hex characters (as in the documented example), now in
// milliseconds, and the upper-case x-sign over the given form of body
// (FormCanonical: its kit canonical form, as Huawei's sample verifies, so
// the body may be sent with its members in any order; FormRaw: the bytes).
// A body without a canonical form gives an error wrapping
// ErrNotCanonicalisable.
func SignedKitHeaders(form SignedForm, accessKey string, body []byte, now time.Time) (http.Header, error) {
	if accessKey == "" {
		return nil, errors.New("sign kit call: no access key")
	}
	signed := body
	switch form {
	case FormRaw:
	case FormCanonical:
		var err error
		if signed, err = CanonicalBody(body, KitCanonical); err != nil {
			return nil, fmt.Errorf("sign kit call: %w", err)
		}
	default:
		return nil, fmt.Errorf("sign kit call: unknown signature form %q (want raw or canonical)", form)
	}
	var b [32]byte
	rand.Read(b[:]) // never fails: crypto/rand crashes the program instead
	nonce := strings.ToUpper(hex.EncodeToString(b[:]))
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	h := http.Header{}
	h.Set(HeaderKitSign, SignKit(accessKey, nonce, ts, signed))
	h.Set(HeaderKitTimestamp, ts)
	h.Set(HeaderKitNonce, nonce)
	return h, nil
}
