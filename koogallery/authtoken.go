package koogallery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The query parameters that authenticate a V1 call (§2.5). Unlike V2's
// timestamp, V1's timeStamp is a UTC date (yyyyMMddHHmmssSSS) and is
// itself one of the signed parameters.
const (
	ParamAuthToken = "authToken"
	ParamTimeStamp = "timeStamp"
)

// maxAuthTokenLen is the documented length of authToken (String 50, §1.12);
// the base64 of an HMAC-SHA256 is 44 characters.
const maxAuthTokenLen = 50

// SignV1 computes the authToken of a V1 call (§2.5) from its parameters,
// decoded: every parameter except authToken, empty values included, sorted
// by name as Java's TreeMap sorts them, joined as k=v&…, then
// base64(HMAC-SHA256(accessKey + timeStamp, that string)). timeStamp must
// be among the parameters. A parameter with several values is refused: the
// marketplace sends each once, and the official verifier reads only the
// first, so a second value would go unsigned.
func SignV1(accessKey string, params url.Values) (string, error) {
	if accessKey == "" {
		return "", errors.New("sign V1 call: no access key")
	}
	ts := params[ParamTimeStamp]
	if len(ts) != 1 || ts[0] == "" {
		return "", errors.New("sign V1 call: want exactly one timeStamp")
	}
	for name, values := range params {
		if len(values) > 1 && name != ParamAuthToken {
			return "", fmt.Errorf("sign V1 call: parameter %q has %d values, want one", name, len(values))
		}
	}
	return base64.StdEncoding.EncodeToString(v1MAC(accessKey, ts[0], params)), nil
}

// v1MAC is the HMAC of an authToken: the key is the access key followed by
// the call's own timeStamp, exactly as received (§2.5).
func v1MAC(accessKey, timeStamp string, params url.Values) []byte {
	mac := hmac.New(sha256.New, []byte(accessKey+timeStamp))
	mac.Write([]byte(v1StringToSign(params)))
	return mac.Sum(nil)
}

// v1StringToSign joins the parameters as the official Java does: a TreeMap
// of the servlet's decoded parameters (names ordered by UTF-16 code units,
// compareUTF16), authToken removed, the first value of each, k=v joined
// with '&'. A name without values (which url.Values.Encode would not send)
// is left out.
func v1StringToSign(params url.Values) string {
	names := make([]string, 0, len(params))
	for name, values := range params {
		if name != ParamAuthToken && len(values) > 0 {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, compareUTF16)
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(params[name][0])
	}
	return b.String()
}

// SignedV1Query returns params with a timeStamp (now, yyyyMMddHHmmssSSS
// UTC) and its authToken added, as the marketplace sends a V1 call; any
// timeStamp or authToken in params is replaced. params is not modified.
func SignedV1Query(accessKey string, params url.Values, now time.Time) (url.Values, error) {
	signed := make(url.Values, len(params)+2)
	for name, values := range params {
		if name != ParamAuthToken {
			signed[name] = slices.Clone(values)
		}
	}
	signed[ParamTimeStamp] = []string{FormatTimeMillis(now)}
	token, err := SignV1(accessKey, signed)
	if err != nil {
		return nil, err
	}
	signed[ParamAuthToken] = []string{token}
	return signed, nil
}

// EncodeV1Query writes a V1 call's query string: the parameters but
// authToken in name order, then authToken last, as the documented examples
// place it. Every value is percent-encoded, a space as %20 as in the
// documented example and a '+' (of authToken, say) as %2B, so that the
// servlet-style decoding of the receiver gives the signed values back.
func EncodeV1Query(params url.Values) string {
	rest := make(url.Values, len(params))
	for name, values := range params {
		if name != ParamAuthToken {
			rest[name] = values
		}
	}
	// Encode writes a '+' as %2B, so every '+' it leaves is a space.
	q := strings.ReplaceAll(rest.Encode(), "+", "%20")
	for _, token := range params[ParamAuthToken] {
		if q != "" {
			q += "&"
		}
		q += ParamAuthToken + "=" + url.QueryEscape(token)
	}
	return q
}

// V1Verifier checks the authToken of V1 calls (§2.5). AccessKey is
// required; the zero values of the other fields mean the defaults.
//
// V1 has no nonce, so nothing here blocks a replay of a captured call
// while its timeStamp is inside Window. What remains against replays is
// that the timeStamp is signed (it is part of the key and of the signed
// text, so it cannot be refreshed without the key), the window that bounds
// how long a captured URL works, TLS, which keeps URLs from being captured
// in the first place, and the idempotency of each activity (the order,
// instance and status keys of §1.14): a replayed call that was
// already applied changes nothing. A replay inside the window of a status
// call that has since been reversed (FREEZE after NORMAL) would apply it
// again; the window keeps that chance short.
type V1Verifier struct {
	// AccessKey is the V1 key (服务商管理 > 服务商信息, §2.5), not a V2
	// key of 密钥管理.
	AccessKey string
	// Window is the accepted distance between timeStamp and the server
	// clock, either way. Zero means DefaultSignatureWindow, as for V2. The
	// V1 pages document no window at all (§2.5); a negative Window turns
	// the check off, for a marketplace whose retries turn out to resend
	// the first call's timeStamp.
	Window time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify authenticates a V1 call from its raw query string, exactly as
// received (the part of the URL after '?'), and returns its parameters
// decoded, which are what the authToken covers and what ParseV1Request
// reads. A query that is not valid percent-encoding, has a parameter
// without a name, or decodes to text that is not UTF-8 is refused: what
// the marketplace's Java would sign from it cannot be known.
//
// A refusal wraps ErrMissingSignatureParams (authToken or timeStamp
// missing, repeated or malformed, or a malformed query), ErrBadSignature
// or ErrStaleTimestamp: IsAuthError reports all of them (answer 000001).
// Error texts never contain the authToken or the key.
func (v *V1Verifier) Verify(rawQuery string) (url.Values, error) {
	params, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: the query is not valid URL encoding", ErrMissingSignatureParams)
	}
	if err := v.VerifyValues(params); err != nil {
		return nil, err
	}
	return params, nil
}

// VerifyValues is Verify for a query already decoded (url.ParseQuery, or
// an http.Request's URL.Query()). Every parameter must appear once:
// the official Java verifier signs only the first value of each, so a value
// added to a captured call would otherwise pass unsigned.
func (v *V1Verifier) VerifyValues(params url.Values) error {
	if v.AccessKey == "" {
		return errors.New("verify V1 authToken: verifier has no access key")
	}
	if problem := v1ParamsProblem(params); problem != "" {
		return fmt.Errorf("%w: %s", ErrMissingSignatureParams, problem)
	}
	token, err := authTokenParam(params)
	if err != nil {
		return err
	}
	rawTS, ts, err := timeStampParam(params)
	if err != nil {
		return err
	}
	if !hmac.Equal(v1MAC(v.AccessKey, rawTS, params), token) {
		return fmt.Errorf("%w: authToken does not match the parameters", ErrBadSignature)
	}
	return v.checkFresh(rawTS, ts)
}

// checkFresh refuses a timeStamp outside the window (unless the window is
// off).
func (v *V1Verifier) checkFresh(rawTS string, ts time.Time) error {
	window := v.Window
	switch {
	case window < 0:
		return nil
	case window == 0:
		window = DefaultSignatureWindow
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if skew := now().Sub(ts); skew > window || skew < -window {
		return fmt.Errorf("%w: timeStamp %s is %s from the server clock", ErrStaleTimestamp, rawTS, skew.Round(time.Millisecond))
	}
	return nil
}

// v1ParamsProblem says why a decoded query cannot be verified, or "": a
// parameter without a name (a servlet drops it, Go keeps it, so the two
// would sign different texts), a repeated parameter, or text that is not
// UTF-8 (Java would have replaced it before signing). Only known parameter
// names are quoted.
func v1ParamsProblem(params url.Values) string {
	for name, values := range params {
		switch {
		case name == "":
			return "a parameter has no name"
		case !utf8.ValidString(name):
			return "a parameter name is not UTF-8"
		case len(values) > 1:
			if isV1Field(name) {
				return name + " is repeated"
			}
			return "a parameter is repeated"
		}
		for _, value := range values {
			if !utf8.ValidString(value) {
				if isV1Field(name) {
					return name + " is not UTF-8"
				}
				return "a parameter's value is not UTF-8"
			}
		}
	}
	return ""
}

// authTokenParam decodes the authToken into the 32 bytes of its HMAC.
//
// The token is base64, whose '+' the marketplace must send as %2B: a bare
// '+' decodes to a space, as the servlet decodes it, and the official
// verifier then fails. A base64 text never holds a space, so a token with
// spaces can only be such a '+' decoded too eagerly: the spaces are read
// back as '+' (the one leniency, §2.5). Nothing else is repaired; the
// other parameters are signed as decoded.
func authTokenParam(params url.Values) ([]byte, error) {
	values := params[ParamAuthToken]
	if len(values) == 0 || values[0] == "" {
		return nil, fmt.Errorf("%w: authToken is missing", ErrMissingSignatureParams)
	}
	token := strings.ReplaceAll(values[0], " ", "+")
	if len(token) > maxAuthTokenLen {
		return nil, fmt.Errorf("%w: authToken is longer than %d characters", ErrMissingSignatureParams, maxAuthTokenLen)
	}
	mac, problem := decodeSignatureBase64(ParamAuthToken, token)
	if problem != "" {
		return nil, fmt.Errorf("%w: %s", ErrMissingSignatureParams, problem)
	}
	return mac, nil
}

// timeStampParam returns the timeStamp as received (it is part of the key
// and of the signed text) and as a time: yyyyMMddHHmmssSSS UTC as
// documented, or yyyyMMddHHmmss (ParseTime).
func timeStampParam(params url.Values) (string, time.Time, error) {
	values := params[ParamTimeStamp]
	if len(values) == 0 || values[0] == "" {
		return "", time.Time{}, fmt.Errorf("%w: timeStamp is missing", ErrMissingSignatureParams)
	}
	ts, err := ParseTime(values[0])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: timeStamp must be yyyyMMddHHmmssSSS (UTC)", ErrMissingSignatureParams)
	}
	return values[0], ts, nil
}

// V1SignedAt returns when the marketplace signed a V1 call: its timeStamp
// parameter. Use it after Verify accepted the call (to log the clock skew,
// say); false means the parameter is missing or malformed.
func V1SignedAt(params url.Values) (time.Time, bool) {
	_, ts, err := timeStampParam(params)
	return ts, err == nil
}
