package koogallery

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
)

// Verifying API-gateway AK/SK signatures, as a local stand-in for the
// marketplace's gateway (the emulator, the mock open API) must. The client
// side signs with the official SDK signer (openapi.go); the verifier cannot
// reuse it, because the SDK signs only the headers it chooses (never
// Content-Type) while the gateway verifies whatever SignedHeaders lists, and
// merchants using other SDKs sign other headers (§10). So the
// gateway's documented algorithm is computed here, and the tests check it
// against the SDK signer and an independent public vector.

// ErrAKSKInvalid is wrapped by every VerifyAKSK rejection, so servers can
// answer "illegal token" without exposing the detail.
var ErrAKSKInvalid = errors.New("AK/SK signature rejected")

func akskReject(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAKSKInvalid, fmt.Sprintf(format, args...))
}

// VerifyAKSK checks an API-gateway AK/SK signature (SDK-HMAC-SHA256) on an
// incoming request. body is the raw request body (already read by the
// caller). It requires Access to equal ak, X-Sdk-Date to be within maxSkew of
// now (non-positive: DefaultAKSKMaxSkew), and host and x-sdk-date to be
// among the signed headers; any other headers the caller chose to sign
// (Content-Type, x-stage, …) are verified as listed.
//
// The canonical request is the gateway's: method; the path with each
// segment percent-encoded and a trailing '/' ("/a" and "/a/" sign alike);
// the query sorted by name and value, percent-encoded; each signed header as
// "name:value" (values trimmed and sorted; host is r.Host); the
// SignedHeaders list; the body's hex SHA-256. A body hash given in
// X-Sdk-Content-Sha256 must be the body's: UNSIGNED-PAYLOAD is refused, so
// the body is always covered. The request must reach the handler with the
// Host and path the client signed: verify before http.StripPrefix or a
// Host-rewriting proxy.
//
// Every error wraps ErrAKSKInvalid and never contains the SK or the
// Authorization header.
func VerifyAKSK(r *http.Request, body []byte, ak, sk string, now time.Time, maxSkew time.Duration) error {
	if ak == "" || sk == "" {
		return akskReject("verifier has no AK/SK configured")
	}
	if maxSkew <= 0 {
		maxSkew = DefaultAKSKMaxSkew
	}
	auth, err := parseAKSKAuthorization(r.Header.Get(signer.HeaderAuthorization))
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(auth.access), []byte(ak)) != 1 {
		return akskReject("unknown access key")
	}

	dates := r.Header.Values(signer.HeaderXDate)
	if len(dates) != 1 {
		return akskReject("want exactly one X-Sdk-Date header")
	}
	signedAt, err := time.Parse(signer.BasicDateFormat, dates[0])
	if err != nil || signedAt.Format(signer.BasicDateFormat) != dates[0] {
		return akskReject("X-Sdk-Date is not yyyyMMdd'T'HHmmss'Z'")
	}
	if d := now.Sub(signedAt); d > maxSkew || d < -maxSkew {
		return akskReject("X-Sdk-Date is %s away from the server clock (allowed %s)", d.Round(time.Second), maxSkew)
	}

	names := strings.Split(auth.signedHeaders, ";")
	lower := make([]string, len(names))
	for i, name := range names {
		lower[i] = strings.ToLower(name)
	}
	if slices.Contains(lower, "") || len(slices.Compact(slices.Sorted(slices.Values(lower)))) != len(lower) {
		return akskReject("SignedHeaders is not a list of distinct names")
	}
	if !slices.Contains(lower, "host") || !slices.Contains(lower, "x-sdk-date") {
		return akskReject("SignedHeaders must include host and x-sdk-date")
	}
	if slices.Contains(lower, "authorization") {
		return akskReject("SignedHeaders names authorization")
	}

	canonical, err := akskCanonicalRequest(r, body, names)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(canonical))
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte(akskAlgorithm + "\n" + dates[0] + "\n" + hex.EncodeToString(sum[:])))
	want := hex.EncodeToString(mac.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(auth.signature)), []byte(want)) != 1 {
		return akskReject("signature mismatch")
	}
	return nil
}

// akskCanonicalRequest builds the gateway's canonical request with the
// signed headers in the order the caller listed them.
func akskCanonicalRequest(r *http.Request, body []byte, names []string) (string, error) {
	var headers strings.Builder
	for _, name := range names {
		values := r.Header.Values(name)
		if strings.EqualFold(name, "host") {
			// Go moves the Host header into r.Host.
			values = []string{r.Host}
		}
		if len(values) == 0 {
			return "", akskReject("signed header %s is missing", name)
		}
		values = slices.Clone(values)
		for i := range values {
			values[i] = strings.TrimSpace(values[i])
		}
		slices.Sort(values)
		for _, v := range values {
			headers.WriteString(name + ":" + v + "\n")
		}
	}

	payload := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(payload[:])
	if given := r.Header.Values(akskContentSHA256); len(given) > 0 {
		if len(given) != 1 || !strings.EqualFold(given[0], payloadHash) {
			return "", akskReject("%s must be the body's SHA-256; unsigned payloads are refused", akskContentSHA256)
		}
		payloadHash = given[0] // the signer hashed the value it sent
	}

	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", akskReject("malformed query string")
	}
	return strings.Join([]string{
		r.Method,
		akskCanonicalURI(r.URL.Path),
		akskCanonicalQuery(query),
		headers.String(),
		strings.Join(names, ";"),
		payloadHash,
	}, "\n"), nil
}

// akskCanonicalURI percent-encodes each path segment and ends the path with
// '/', as the gateway does.
func akskCanonicalURI(path string) string {
	segments := strings.Split(path, "/")
	for i, s := range segments {
		segments[i] = akskEscape(s)
	}
	uri := strings.Join(segments, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return uri
}

// akskCanonicalQuery lists every parameter as name=value, percent-encoded,
// sorted by name and then by value.
func akskCanonicalQuery(query url.Values) string {
	var pairs []string
	for _, name := range slices.Sorted(maps.Keys(query)) {
		values := slices.Sorted(slices.Values(query[name]))
		for _, v := range values {
			pairs = append(pairs, akskEscape(name)+"="+akskEscape(v))
		}
	}
	return strings.Join(pairs, "&")
}

// akskEscape percent-encodes every byte but A-Z a-z 0-9 - _ . ~, in
// upper-case hex.
func akskEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xF])
	}
	return b.String()
}

type akskAuthorization struct {
	access, signedHeaders, signature string
}

// parseAKSKAuthorization reads
// "SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…".
func parseAKSKAuthorization(h string) (akskAuthorization, error) {
	var a akskAuthorization
	if strings.TrimSpace(h) == "" {
		return a, akskReject("missing Authorization header")
	}
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != akskAlgorithm {
		return a, akskReject("Authorization is not %s", akskAlgorithm)
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" || seen[k] {
			return a, akskReject("malformed Authorization parameters")
		}
		seen[k] = true
		switch k {
		case "Access":
			a.access = v
		case "SignedHeaders":
			a.signedHeaders = v
		case "Signature":
			a.signature = v
		default:
			return a, akskReject("malformed Authorization parameters")
		}
	}
	if a.access == "" || a.signedHeaders == "" || a.signature == "" {
		return a, akskReject("Authorization lacks Access, SignedHeaders or Signature")
	}
	return a, nil
}
