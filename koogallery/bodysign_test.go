// Body-Sign vectors come from testdata/vectors.json; see signature_test.go
// for how to regenerate them (cd koogallery/testdata && java VectorGen.java
// > vectors.json).

package koogallery

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBodySignSpecVector(t *testing.T) {
	body := []byte(`{"resultCode":"000000","resultMsg":"success"}`)
	want := `sign_type="HMAC-SHA256", signature="vWbSmInUdGAwMKsi5zPrDi4Kw9g3IWClm4oU7+cgIR0="`
	require.Equal(t, want, BodySign("abcde", body))
	require.NoError(t, VerifyBodySign(want, "abcde", body))
}

func TestBodySignJavaVectors(t *testing.T) {
	v := loadVectors(t)
	require.GreaterOrEqual(t, len(v.BodySign), 10)
	for i, tc := range v.BodySign {
		require.Equal(t, tc.Header, BodySign(tc.Key, []byte(tc.Body)), "vector %d", i)
		require.NoError(t, VerifyBodySign(tc.Header, tc.Key, []byte(tc.Body)), "vector %d", i)
	}
}

// TestBodySignEncodedResponse signs what EncodeResponse produces: the \u
// escapes are part of the signed bytes.
func TestBodySignEncodedResponse(t *testing.T) {
	body, err := EncodeResponse(Response{ResultCode: ResultSuccess, ResultMsg: "成功"})
	require.NoError(t, err)
	require.Equal(t, `{"resultCode":"000000","resultMsg":"\u6210\u529f"}`, string(body))
	header := BodySign("abcde", body)
	require.NoError(t, VerifyBodySign(header, "abcde", body))
	require.ErrorIs(t, VerifyBodySign(header, "abcde", []byte(`{"resultCode":"000000","resultMsg":"成功"}`)), ErrBadBodySign)
}

func TestVerifyBodySign(t *testing.T) {
	const key = "abcde"
	body := []byte(`{"resultCode":"000000","resultMsg":"success"}`)
	sig := base64.StdEncoding.EncodeToString(bodyMAC(key, body))
	require.Contains(t, sig, "+")
	otherSig := base64.StdEncoding.EncodeToString(bodyMAC(key, []byte(`{}`)))

	tests := []struct {
		name   string
		header string
		ok     bool
	}{
		{"canonical", `sign_type="HMAC-SHA256", signature="` + sig + `"`, true},
		{"no space after comma", `sign_type="HMAC-SHA256",signature="` + sig + `"`, true},
		{"attributes swapped", `signature="` + sig + `", sign_type="HMAC-SHA256"`, true},
		{"extra whitespace and tabs", " \tsign_type = \"HMAC-SHA256\" ,\t signature = \"" + sig + "\"  ", true},
		{"missing header", "", false},
		{"blank header", "   ", false},
		{"wrong sign_type", `sign_type="HMAC-SHA1", signature="` + sig + `"`, false},
		{"lowercase sign_type", `sign_type="hmac-sha256", signature="` + sig + `"`, false},
		{"empty sign_type", `sign_type="", signature="` + sig + `"`, false},
		{"missing sign_type", `signature="` + sig + `"`, false},
		{"missing signature", `sign_type="HMAC-SHA256"`, false},
		{"empty signature", `sign_type="HMAC-SHA256", signature=""`, false},
		{"signature of another body", `sign_type="HMAC-SHA256", signature="` + otherSig + `"`, false},
		{"signature of another key", BodySign("abcdf", body), false},
		{"signature unquoted", `sign_type="HMAC-SHA256", signature=` + sig, false},
		{"sign_type unquoted", `sign_type=HMAC-SHA256, signature="` + sig + `"`, false},
		{"single quotes", `sign_type='HMAC-SHA256', signature='` + sig + `'`, false},
		{"half quoted", `sign_type="HMAC-SHA256", signature="` + sig, false},
		{"signature without padding", `sign_type="HMAC-SHA256", signature="` + strings.TrimRight(sig, "=") + `"`, false},
		{"signature hex", `sign_type="HMAC-SHA256", signature="` + strings.Repeat("ab", 32) + `"`, false},
		{"signature truncated", `sign_type="HMAC-SHA256", signature="` + sig[:40] + `"`, false},
		{"signature url-safe alphabet", `sign_type="HMAC-SHA256", signature="` + base64.URLEncoding.EncodeToString(bodyMAC(key, body)) + `"`, false}, // sig has a '+'

		{"repeated signature", `sign_type="HMAC-SHA256", signature="` + sig + `", signature="` + sig + `"`, false},
		{"repeated sign_type", `sign_type="HMAC-SHA256", sign_type="HMAC-SHA256", signature="` + sig + `"`, false},
		{"unknown attribute", `sign_type="HMAC-SHA256", signature="` + sig + `", extra="1"`, false},
		{"trailing comma", `sign_type="HMAC-SHA256", signature="` + sig + `",`, false},
		{"semicolon separator", `sign_type="HMAC-SHA256"; signature="` + sig + `"`, false},
		{"attribute name case", `Sign_Type="HMAC-SHA256", Signature="` + sig + `"`, false},
		{"garbage", `not a header`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyBodySign(tc.header, key, body)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBadBodySign)
			require.NotContains(t, err.Error(), key)
			require.NotContains(t, err.Error(), sig)
		})
	}
}

func TestVerifyBodySignOneByteChanged(t *testing.T) {
	body := []byte(`{"resultCode":"000000","resultMsg":"success"}`)
	header := BodySign("abcde", body)
	for i := range body {
		changed := append([]byte{}, body...)
		changed[i] ^= 1
		require.ErrorIs(t, VerifyBodySign(header, "abcde", changed), ErrBadBodySign, "byte %d", i)
	}
	require.ErrorIs(t, VerifyBodySign(header, "abcde", append(append([]byte{}, body...), '\n')), ErrBadBodySign)
}

// TestVerifyBodySignRefusesLineBreaks: a signature split by line breaks
// is refused, not read whole (Go's base64 decoder would skip them).
func TestVerifyBodySignRefusesLineBreaks(t *testing.T) {
	body := []byte(`{"resultCode":"000000","resultMsg":"success"}`)
	sig := base64.StdEncoding.EncodeToString(bodyMAC("abcde", body))
	for _, split := range []string{sig[:29] + "\n" + sig[29:], sig[:4] + "\r\n" + sig[4:], sig + "\n", "\n" + sig} {
		err := VerifyBodySign(`sign_type="HMAC-SHA256", signature="`+split+`"`, "abcde", body)
		require.ErrorIs(t, err, ErrBadBodySign, "%q", split)
	}
}

func TestVerifyBodySignEmptyKey(t *testing.T) {
	err := VerifyBodySign(BodySign("", nil), "", nil)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrBadBodySign, "an empty key is a configuration fault")
}

func FuzzVerifyBodySign(f *testing.F) {
	const key = "fuzz-key"
	body := []byte(`{"resultCode":"000000","resultMsg":"success"}`)
	f.Add(BodySign(key, body), body)
	f.Add(`signature="", sign_type="HMAC-SHA256"`, []byte{})
	f.Add(`sign_type="HMAC-SHA256", signature="=", ,,=`, []byte("x"))
	f.Add(`"`, []byte(nil))
	// Edges: the attributes swapped and spaced out, unpadded base64, a
	// third attribute, the type in another case.
	sig := base64.StdEncoding.EncodeToString(bodyMAC(key, body))
	f.Add(` signature = "`+sig+`" , sign_type = "HMAC-SHA256" `, body)
	f.Add(`sign_type="HMAC-SHA256", signature="`+strings.TrimRight(sig, "=")+`"`, body)
	f.Add(`sign_type="HMAC-SHA256", signature="`+sig+`", extra="1"`, body)
	f.Add(`sign_type="hmac-sha256", signature="`+sig+`"`, body)
	// Go's base64 decoder skips line breaks, even in strict mode.
	f.Add(`sign_type="HMAC-SHA256",signature="`+sig[:29]+"\n\n\n\n\n\n"+sig[29:]+`"`, body)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		require.NoError(t, VerifyBodySign(BodySign(key, body), key, body))
		if err := VerifyBodySign(header, key, body); err != nil {
			require.ErrorIs(t, err, ErrBadBodySign)
			return
		}
		// Accepted: the header must carry this body's signature.
		require.Contains(t, header, base64.StdEncoding.EncodeToString(bodyMAC(key, body)))
	})
}
