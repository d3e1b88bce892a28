package koogallery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// BodySignHeader is the response header that carries the Body-Sign of every
// answer to the marketplace (§2.4). The marketplace refuses answers without
// it.
const BodySignHeader = "Body-Sign"

// bodySignType is the only documented sign_type.
const bodySignType = "HMAC-SHA256"

// ErrBadBodySign means a Body-Sign header is missing, malformed, names
// another sign_type or does not match the body. VerifyBodySign wraps it.
var ErrBadBodySign = errors.New("bad Body-Sign header")

// BodySign returns the Body-Sign header value for a response body (§2.4):
// sign_type="HMAC-SHA256", signature="<base64(HMAC-SHA256(accessKey,
// body))>". Sign exactly the bytes that are sent (see EncodeResponse):
// re-serialising after signing breaks the signature.
func BodySign(accessKey string, body []byte) string {
	return `sign_type="` + bodySignType + `", signature="` +
		base64.StdEncoding.EncodeToString(bodyMAC(accessKey, body)) + `"`
}

func bodyMAC(accessKey string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(accessKey))
	mac.Write(body)
	return mac.Sum(nil)
}

// VerifyBodySign checks a Body-Sign header value against a response body,
// as the marketplace does; the emulator and the tests use it on our own
// answers.
//
// It is lenient only where the format leaves room: whitespace around the
// comma and the equals signs, and the order of the two attributes. Because
// it checks our own output for conformance, it is strict where the
// marketplace might be: both attributes must appear exactly once, nothing
// else may, the values must be double-quoted as §2.4 requires, the
// sign_type must be "HMAC-SHA256" and the signature padded standard base64.
// The signature is compared in constant time. Errors wrap ErrBadBodySign
// and never contain the key or the expected signature.
func VerifyBodySign(headerValue, accessKey string, body []byte) error {
	if accessKey == "" {
		return errors.New("verify Body-Sign: empty access key")
	}
	if strings.TrimSpace(headerValue) == "" {
		return fmt.Errorf("%w: header is missing", ErrBadBodySign)
	}
	var signType, signature string
	var seenType, seenSig bool
	// base64 has no commas or quotes, so a plain split is unambiguous.
	for _, attr := range strings.Split(headerValue, ",") {
		name, value, ok := strings.Cut(attr, "=")
		if !ok {
			return fmt.Errorf("%w: attribute without '='", ErrBadBodySign)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
			return fmt.Errorf("%w: value of %q is not double-quoted", ErrBadBodySign, name)
		}
		value = value[1 : len(value)-1]
		switch name {
		case "sign_type":
			if seenType {
				return fmt.Errorf("%w: sign_type is repeated", ErrBadBodySign)
			}
			seenType, signType = true, value
		case "signature":
			if seenSig {
				return fmt.Errorf("%w: signature is repeated", ErrBadBodySign)
			}
			seenSig, signature = true, value
		default:
			return fmt.Errorf("%w: unknown attribute %q", ErrBadBodySign, name)
		}
	}
	if !seenType || !seenSig {
		return fmt.Errorf("%w: want both sign_type and signature", ErrBadBodySign)
	}
	if signType != bodySignType {
		return fmt.Errorf("%w: sign_type %q, want %q", ErrBadBodySign, signType, bodySignType)
	}
	got, problem := decodeSignatureBase64("signature", signature)
	if problem != "" {
		return fmt.Errorf("%w: %s", ErrBadBodySign, problem)
	}
	if !hmac.Equal(got, bodyMAC(accessKey, body)) {
		return fmt.Errorf("%w: signature does not match the body", ErrBadBodySign)
	}
	return nil
}
