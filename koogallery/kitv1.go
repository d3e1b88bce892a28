package koogallery

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
)

// The V1 kit (§12.10): the same five syncs on sub-paths without /v2,
// authenticated by an authToken header computed like a V1 call's (§2.5)
// over the body's members instead of query parameters.

// HeaderV1KitAuthToken carries a V1 kit call's authToken.
const HeaderV1KitAuthToken = "authToken"

// ErrV1KitBody means a V1 kit body cannot be signed as the marketplace
// signs it: it is not a JSON object, has no timeStamp, or holds a member
// that is not a single value (the V1 userList and orgInfo are strings).
var ErrV1KitBody = errors.New("V1 kit body cannot be authenticated")

// v1KitParams are the members a V1 kit authToken covers (§12.10): every
// top-level member of the body but the blank ones (null, empty, or only
// white space: Java's StringUtils.isBlank), numbers and booleans as their
// literal text, the last of repeated members (as Jackson binds them).
func v1KitParams(body []byte) (url.Values, error) {
	root, err := parseJSONObject(body)
	if err != nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrV1KitBody)
	}
	params := url.Values{}
	for _, m := range dedupMembers(root.members) {
		switch m.value.kind {
		case jsonNull:
			continue
		case jsonString, jsonNumber, jsonBool:
			if strings.TrimFunc(m.value.text, unicode.IsSpace) == "" {
				continue
			}
			params.Set(m.name, m.value.text)
		default:
			return nil, fmt.Errorf("%w: member %q is a list or an object", ErrV1KitBody, m.name)
		}
	}
	if params.Get(ParamTimeStamp) == "" {
		return nil, fmt.Errorf("%w: no timeStamp", ErrV1KitBody)
	}
	return params, nil
}

// SignV1Kit computes the authToken header of a V1 kit call with body.
func SignV1Kit(accessKey string, body []byte) (string, error) {
	if accessKey == "" {
		return "", errors.New("sign V1 kit call: no access key")
	}
	params, err := v1KitParams(body)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(v1MAC(accessKey, params.Get(ParamTimeStamp), params)), nil
}

// VerifyV1Kit checks a V1 kit call's authToken header against its body
// with the V1 key, in constant time. No window applies to the body's
// timeStamp: none is documented for V1, and a person may send a failed
// sync again from the console (§2.5, §12.10); the syncs are idempotent.
// Every refusal satisfies IsAuthError.
func VerifyV1Kit(accessKey string, h http.Header, body []byte) error {
	if accessKey == "" {
		return errors.New("verify V1 kit call: no access key")
	}
	raw := h.Values(HeaderV1KitAuthToken)
	if len(raw) != 1 || raw[0] == "" || len(raw[0]) > 255 {
		return fmt.Errorf("%w: want exactly one authToken header", ErrMissingSignatureParams)
	}
	token, problem := decodeSignatureBase64(HeaderV1KitAuthToken, strings.TrimSpace(raw[0]))
	if problem != "" {
		return fmt.Errorf("%w: %s", ErrBadSignature, problem)
	}
	params, err := v1KitParams(body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if !hmac.Equal(v1MAC(accessKey, params.Get(ParamTimeStamp), params), token) {
		return fmt.Errorf("%w: authToken does not match the body", ErrBadSignature)
	}
	return nil
}
