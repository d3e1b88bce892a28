package koogallery

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The query parameters that carry a V2 request signature (§2.2).
const (
	paramSignature = "signature"
	paramTimestamp = "timestamp"
	paramNonce     = "nonce"
)

// DefaultSignatureWindow is how far a request's timestamp may be from the
// server clock, either way, before the request is refused (§2.2).
const DefaultSignatureWindow = 60 * time.Second

const (
	// maxNonceLen bounds what reaches the nonce store. The documented
	// nonces are 16 to 64 characters (§2.2).
	maxNonceLen = 128
	// nonceMargin keeps a nonce a little longer than the request could be
	// accepted, so that clock differences between the replicas sharing a
	// nonce store cannot reopen the replay window.
	nonceMargin = 10 * time.Second
)

// Signature verification failures. Each means result code 000001
// (ResultAuthFailed); IsAuthError reports any of them. Errors returned by
// Verify wrap them, so test with errors.Is.
var (
	// ErrMissingSignatureParams means signature, timestamp or nonce is
	// absent, repeated or malformed.
	ErrMissingSignatureParams = errors.New("missing or malformed signature parameters")
	// ErrBadSignature means the signature does not match the body and
	// parameters.
	ErrBadSignature = errors.New("bad request signature")
	// ErrStaleTimestamp means the timestamp is outside the verifier's
	// window.
	ErrStaleTimestamp = errors.New("request timestamp outside the accepted window")
	// ErrReplayedNonce means the nonce was already used by an accepted
	// request.
	ErrReplayedNonce = errors.New("request nonce already used")
)

// IsAuthError reports whether err means the caller failed authentication
// (result code 000001) rather than the server failing (000005).
func IsAuthError(err error) bool {
	return errors.Is(err, ErrMissingSignatureParams) || errors.Is(err, ErrBadSignature) ||
		errors.Is(err, ErrStaleTimestamp) || errors.Is(err, ErrReplayedNonce)
}

// SignedForm is the form of the body a request signature covers.
type SignedForm string

// The forms a basic-interface signature may cover (§2.2, §8).
// Nobody can tell from outside which one the marketplace signs, so the
// Verifier accepts both and reports which matched.
const (
	// FormRaw is the body's bytes exactly as sent (§2.2).
	FormRaw SignedForm = "raw"
	// FormCanonical is the canonical body (CanonicalBody with
	// BasicCanonical), as Huawei's own sample project verifies it.
	FormCanonical SignedForm = "canonical"
	// FormNone means no form matched.
	FormNone SignedForm = "none"
)

// Sign computes the SaaS 2.0 request signature of body (§2.2): the
// uppercase hex of HMAC-SHA256(accessKey, accessKey + nonce + timestamp +
// lower(hex(HMAC-SHA256(accessKey, body)))). The timestamp is used exactly
// as written in the query string and body is hashed byte for byte; to sign
// the canonical form, pass CanonicalBody's output (or use SignedQueryAs).
func Sign(accessKey, nonce, timestamp string, body []byte) string {
	return strings.ToUpper(hex.EncodeToString(requestMAC(accessKey, nonce, timestamp, body)))
}

func requestMAC(accessKey, nonce, timestamp string, body []byte) []byte {
	key := []byte(accessKey)
	inner := hmac.New(sha256.New, key)
	inner.Write(body)
	var innerHex [2 * sha256.Size]byte
	hex.Encode(innerHex[:], inner.Sum(nil)) // lowercase, as §2.2 requires
	outer := hmac.New(sha256.New, key)
	io.WriteString(outer, accessKey)
	io.WriteString(outer, nonce)
	io.WriteString(outer, timestamp)
	outer.Write(innerHex[:])
	return outer.Sum(nil)
}

// SignKit computes the x-sign header of the 联营 kit sync calls (§2.3):
// the uppercase hex of HMAC-SHA256(accessKey, accessKey + nonce + timestamp
// + body). Unlike Sign, the raw body is appended, not hashed first. The
// case of the documented hex is not known, so verifiers must compare it
// case-insensitively.
func SignKit(accessKey, nonce, timestamp string, body []byte) string {
	return strings.ToUpper(hex.EncodeToString(kitMAC(accessKey, nonce, timestamp, body)))
}

func kitMAC(accessKey, nonce, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(accessKey))
	io.WriteString(mac, accessKey)
	io.WriteString(mac, nonce)
	io.WriteString(mac, timestamp)
	mac.Write(body)
	return mac.Sum(nil)
}

// SignedQuery returns the signature, timestamp and nonce query parameters
// for sending body as the marketplace does, signed over the raw body: a
// random nonce of 32 hex characters and now in milliseconds.
func SignedQuery(accessKey string, body []byte, now time.Time) url.Values {
	return signedQuery(accessKey, body, now)
}

// SignedQueryAs is SignedQuery over the given form of body: FormCanonical
// signs its canonical form, as Huawei's sample verifies, so the body may be
// sent with its members in any order. A body that has no canonical form
// gives an error wrapping ErrNotCanonicalisable.
func SignedQueryAs(form SignedForm, accessKey string, body []byte, now time.Time) (url.Values, error) {
	switch form {
	case FormRaw:
		return signedQuery(accessKey, body, now), nil
	case FormCanonical:
		canonical, err := CanonicalBody(body, BasicCanonical)
		if err != nil {
			return nil, err
		}
		return signedQuery(accessKey, canonical, now), nil
	default:
		return nil, fmt.Errorf("sign request: unknown signature form %q (want raw or canonical)", form)
	}
}

func signedQuery(accessKey string, signed []byte, now time.Time) url.Values {
	var b [16]byte
	rand.Read(b[:]) // never fails: crypto/rand crashes the program instead
	nonce := strings.ToUpper(hex.EncodeToString(b[:]))
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	return url.Values{
		paramSignature: {Sign(accessKey, nonce, ts, signed)},
		paramTimestamp: {ts},
		paramNonce:     {nonce},
	}
}

// NonceStore remembers the nonces of accepted requests so that a captured
// request cannot be replayed inside the timestamp window. Several server
// replicas must share one store (a database table, not process memory).
type NonceStore interface {
	// Claim records nonce until the given time and reports whether it was
	// new. It must be atomic: of two concurrent claims of one nonce, only
	// one is fresh. Nonces past their until time may be forgotten.
	Claim(ctx context.Context, nonce string, until time.Time) (fresh bool, err error)
}

// Verifier checks the signature of SaaS 2.0 requests (§2.2). AccessKey and
// Nonces are required; the zero values of the other fields mean the
// defaults.
type Verifier struct {
	// AccessKey is the key bound to the 基础接口 interface type (§2.1).
	AccessKey string
	// Window is the accepted distance between the request's timestamp and
	// the server clock, either way; zero or negative means
	// DefaultSignatureWindow.
	Window time.Duration
	// Nonces blocks replays.
	Nonces NonceStore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify authenticates one request from its query parameters and its raw
// body, exactly as received, and reports which form of the body the
// signature covers: the raw bytes (FormRaw) or the canonical form of
// §8.2 (FormCanonical), which Huawei's own sample verifies and
// which a marketplace that signs it may send with its members in any
// order. FormNone means neither matched (or the parameters were unusable).
//
// The checks run from cheapest to the one with side effects: parameters
// present and well-formed, HMAC over the raw body, then over the canonical
// body (each compared in constant time, hex case ignored), timestamp within
// the window, and only then the nonce claim, so unauthenticated traffic
// never writes to the nonce store. Timestamps of 13 digits are
// milliseconds, 10 digits seconds (§7.1).
//
// A failed check returns an error wrapping ErrMissingSignatureParams,
// ErrBadSignature, ErrStaleTimestamp or ErrReplayedNonce (answer 000001). A
// failing NonceStore returns its error wrapped, which is none of those
// (answer 000005, so the marketplace retries). Error texts never contain
// the signature or the key.
func (v *Verifier) Verify(ctx context.Context, query url.Values, body []byte) (SignedForm, error) {
	if v.AccessKey == "" {
		return FormNone, errors.New("verify request signature: verifier has no access key")
	}
	if v.Nonces == nil {
		return FormNone, errors.New("verify request signature: verifier has no nonce store")
	}
	sig, err := signatureParam(query)
	if err != nil {
		return FormNone, err
	}
	rawTS, ts, err := timestampParam(query)
	if err != nil {
		return FormNone, err
	}
	nonce, err := nonceParam(query)
	if err != nil {
		return FormNone, err
	}
	form := v.matchingForm(sig, nonce, rawTS, body)
	if form == FormNone {
		return FormNone, ErrBadSignature
	}
	return form, admitSigned(ctx, v.Nonces, v.Window, v.Now, rawTS, ts, nonce)
}

// admitSigned runs the checks that follow a matching signature, shared by
// the basic interface's Verifier and the kit's KitVerifier: the timestamp
// within window of the clock (either way; zero or negative window means
// DefaultSignatureWindow, nil now time.Now), then the nonce claim, last
// because it writes. Failures wrap ErrStaleTimestamp or ErrReplayedNonce;
// a failing store's error is wrapped as it is.
func admitSigned(ctx context.Context, nonces NonceStore, window time.Duration, now func() time.Time,
	rawTS string, ts time.Time, nonce string) error {
	if window <= 0 {
		window = DefaultSignatureWindow
	}
	if now == nil {
		now = time.Now
	}
	if skew := now().Sub(ts); skew > window || skew < -window {
		return fmt.Errorf("%w: timestamp %s is %s from the server clock", ErrStaleTimestamp, rawTS, skew.Round(time.Millisecond))
	}
	// The request stays acceptable until ts+window, so the nonce must be
	// remembered at least that long.
	fresh, err := nonces.Claim(ctx, nonce, ts.Add(window+nonceMargin))
	if err != nil {
		return fmt.Errorf("claim nonce %q: %w", nonce, err)
	}
	if !fresh {
		return fmt.Errorf("%w: nonce %q", ErrReplayedNonce, nonce)
	}
	return nil
}

// matchingForm reports which form of body sig signs: the raw bytes first
// (no parsing needed), then the canonical form. A body without a canonical
// form can only match raw.
func (v *Verifier) matchingForm(sig []byte, nonce, timestamp string, body []byte) SignedForm {
	if hmac.Equal(requestMAC(v.AccessKey, nonce, timestamp, body), sig) {
		return FormRaw
	}
	canonical, err := CanonicalBody(body, BasicCanonical)
	if err == nil && hmac.Equal(requestMAC(v.AccessKey, nonce, timestamp, canonical), sig) {
		return FormCanonical
	}
	return FormNone
}

// SignedAt returns when the marketplace signed a request: its timestamp
// query parameter (13 digits milliseconds, 10 seconds). Use it after Verify
// accepted the request; false means the parameter is missing or malformed.
func SignedAt(query url.Values) (time.Time, bool) {
	_, ts, err := timestampParam(query)
	return ts, err == nil
}

// queryParam returns the single value of a query parameter. A repeated
// parameter is refused: two layers could otherwise disagree on which value
// was verified.
func queryParam(query url.Values, name string) (string, error) {
	values := query[name]
	switch {
	case len(values) == 0 || values[0] == "":
		return "", fmt.Errorf("%w: %s is missing", ErrMissingSignatureParams, name)
	case len(values) > 1:
		return "", fmt.Errorf("%w: %s is repeated", ErrMissingSignatureParams, name)
	}
	return values[0], nil
}

// signatureParam decodes the signature parameter (decodeSignatureHex).
func signatureParam(query url.Values) ([]byte, error) {
	s, err := queryParam(query, paramSignature)
	if err != nil {
		return nil, err
	}
	sig, problem := decodeSignatureHex(paramSignature, s)
	if problem != "" {
		return nil, fmt.Errorf("%w: %s", ErrMissingSignatureParams, problem)
	}
	return sig, nil
}

// decodeSignatureHex decodes a signature, named name in the problem it
// returns when s is unusable: 64 hex characters, in either case, into the
// 32 bytes of an HMAC-SHA256.
func decodeSignatureHex(name, s string) ([]byte, string) {
	if len(s) != 2*sha256.Size {
		return nil, fmt.Sprintf("%s must be %d hex characters", name, 2*sha256.Size)
	}
	sig, err := hex.DecodeString(s)
	if err != nil {
		return nil, name + " is not hex"
	}
	return sig, ""
}

// decodeSignatureBase64 is decodeSignatureHex for the signatures sent in
// padded base64 (Body-Sign, authToken, usage pushes): exactly the 44
// characters of an HMAC-SHA256. Go's decoder skips line breaks even in
// strict mode; a signature split by them is refused, not read whole.
func decodeSignatureBase64(name, s string) ([]byte, string) {
	if len(s) != base64.StdEncoding.EncodedLen(sha256.Size) || strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Sprintf("%s must be the %d base64 characters of an HMAC-SHA256", name, base64.StdEncoding.EncodedLen(sha256.Size))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(sig) != sha256.Size {
		return nil, name + " is not padded base64"
	}
	return sig, ""
}

// timestampParam returns the timestamp as received (it is part of the
// signed text) and as a time (parseSignedTimestamp).
func timestampParam(query url.Values) (string, time.Time, error) {
	s, err := queryParam(query, paramTimestamp)
	if err != nil {
		return "", time.Time{}, err
	}
	ts, problem := parseSignedTimestamp(paramTimestamp, s)
	if problem != "" {
		return "", time.Time{}, fmt.Errorf("%w: %s", ErrMissingSignatureParams, problem)
	}
	return s, ts, nil
}

// parseSignedTimestamp reads a signature's timestamp, named name in the
// problem it returns when s is unusable: 13 digits are milliseconds, 10
// digits seconds (§7.1); other lengths are refused rather than guessed.
func parseSignedTimestamp(name, s string) (time.Time, string) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, name + " is not all digits"
		}
	}
	if len(s) != 13 && len(s) != 10 {
		return time.Time{}, fmt.Sprintf("%s must have 13 digits (milliseconds) or 10 (seconds), got %d", name, len(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil { // cannot happen with at most 13 digits
		return time.Time{}, name + " out of range"
	}
	if len(s) == 10 {
		return time.Unix(n, 0), ""
	}
	return time.UnixMilli(n), ""
}

// nonceParam returns the nonce (nonceProblem).
func nonceParam(query url.Values) (string, error) {
	s, err := queryParam(query, paramNonce)
	if err != nil {
		return "", err
	}
	if problem := nonceProblem(paramNonce, s); problem != "" {
		return "", fmt.Errorf("%w: %s", ErrMissingSignatureParams, problem)
	}
	return s, nil
}

// nonceProblem says why s, a nonce named name, is refused, or "". Only
// visible ASCII is accepted, at most maxNonceLen characters: every
// documented nonce is hex or alphanumeric, and the value is stored and
// logged.
func nonceProblem(name, s string) string {
	if len(s) > maxNonceLen {
		return fmt.Sprintf("%s is longer than %d characters", name, maxNonceLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return name + " has a character outside visible ASCII"
		}
	}
	return ""
}
