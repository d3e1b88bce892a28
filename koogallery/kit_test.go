package koogallery

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The kit vectors of §12.5 and §12.7 (key abcde).
const (
	kitVectorKey   = "abcde"
	kitVectorTS    = "1680508066618"
	kitVectorNonce = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA"

	kitTenantBody          = `{"instanceId":"huaiweitest123456","orderId":"CS1906666666ABCDE","tenantId":"68cbc86abc2018ab880d92f36422fa0e","tenantCode":"huawei","name":"huaiweitest","domainName":"https://example.tenantaccount.com","flag":1,"testFlag":0,"timeStamp":"20220413093539534"}`
	kitTenantCanonicalSign = "079D3FFB40C04DA4C5A6353716F27BE106A8539C000AADD2677207B5CFD230DC"
	kitTenantRawSign       = "F891BBC2112CE481FB2C2723D0D44E66E1BC85941109FAF92F70C2985C3A36AA"

	// The authSync vector's canonical form, sent here with its members
	// unsorted.
	kitAuthBody = `{"userList":[{"userName":"zhangsan01","name":"张三","orgCode":"123456789","role":"admin","enable":"true"}],"testFlag":0,"tenantId":"68cbc86abc2018ab880d92f36422fa0e","appId":"app-001","instanceId":"huaiweitest123456","timeStamp":"20220420114117642","flag":1,"currentSyncTime":"20220420114117642"}`
	kitAuthSign = "9B02BA665F1B556E691122BAC5350064DB2E35A05ABAA1913105825A670A8168"
)

func kitVectorTime() time.Time {
	ms, _ := strconv.ParseInt(kitVectorTS, 10, 64)
	return time.UnixMilli(ms)
}

func kitHeaders(sign, ts, nonce string) http.Header {
	h := http.Header{}
	h.Set("X-Sign", sign)
	h.Set("X-Timestamp", ts)
	h.Set("X-Nonce", nonce)
	return h
}

func kitVerifier(store NonceStore, now time.Time) *KitVerifier {
	return &KitVerifier{AccessKey: kitVectorKey, Nonces: store, Now: func() time.Time { return now }}
}

func TestKitVerifyVectors(t *testing.T) {
	for _, tc := range []struct {
		name, body, sign string
		form             SignedForm
	}{
		{"tenantSync canonical", kitTenantBody, kitTenantCanonicalSign, FormCanonical},
		{"tenantSync raw", kitTenantBody, kitTenantRawSign, FormRaw},
		{"tenantSync lower-case hex", kitTenantBody, strings.ToLower(kitTenantCanonicalSign), FormCanonical},
		{"authSync canonical", kitAuthBody, kitAuthSign, FormCanonical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemNonces()
			form, err := kitVerifier(store, kitVectorTime().Add(30*time.Second)).
				Verify(context.Background(), kitHeaders(tc.sign, kitVectorTS, kitVectorNonce), []byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, tc.form, form)
			require.Contains(t, store.seen, kitVectorNonce)
		})
	}
	require.Equal(t, kitTenantRawSign, SignKit(kitVectorKey, kitVectorNonce, kitVectorTS, []byte(kitTenantBody)))
}

func TestKitVerifyHeaderNamesAnyCase(t *testing.T) {
	h := http.Header{"x-sign": {kitTenantRawSign}, "X-TIMESTAMP": {kitVectorTS}, "x-Nonce": {kitVectorNonce}}
	form, err := kitVerifier(newMemNonces(), kitVectorTime()).Verify(context.Background(), h, []byte(kitTenantBody))
	require.NoError(t, err)
	require.Equal(t, FormRaw, form)
}

func TestKitVerifyRefusals(t *testing.T) {
	body := []byte(kitTenantBody)
	now := kitVectorTime()
	good := func() http.Header { return kitHeaders(kitTenantCanonicalSign, kitVectorTS, kitVectorNonce) }
	without := func(name string) http.Header { h := good(); h.Del(name); return h }
	with := func(name, value string) http.Header { h := good(); h.Set(name, value); return h }
	repeated := func(name string) http.Header { h := good(); h.Add(name, h.Get(name)); return h }

	for _, tc := range []struct {
		name  string
		h     http.Header
		body  string
		now   time.Time
		param bool
		is    error
	}{
		{name: "no x-sign", h: without("x-sign"), param: true},
		{name: "no x-timestamp", h: without("x-timestamp"), param: true},
		{name: "no x-nonce", h: without("x-nonce"), param: true},
		{name: "empty x-sign", h: with("x-sign", ""), param: true},
		{name: "empty x-nonce", h: with("x-nonce", " "), param: true},
		{name: "repeated x-sign", h: repeated("x-sign"), param: true},
		{name: "repeated x-nonce", h: repeated("x-nonce"), param: true},
		{name: "short x-sign", h: with("x-sign", kitTenantCanonicalSign[:63]), param: true},
		{name: "x-sign not hex", h: with("x-sign", strings.Repeat("G", 64)), param: true},
		{name: "x-timestamp not digits", h: with("x-timestamp", "1680508066.61"), param: true},
		{name: "x-timestamp 12 digits", h: with("x-timestamp", "168050806661"), param: true},
		{name: "x-nonce with a blank", h: with("x-nonce", "a b"), param: true},
		{name: "x-nonce too long", h: with("x-nonce", strings.Repeat("A", maxNonceLen+1)), param: true},
		{name: "wrong x-sign", h: with("x-sign", kitTenantCanonicalSign[:63]+"0"), is: ErrBadSignature},
		{name: "other body", h: good(), body: strings.Replace(kitTenantBody, `"flag":1`, `"flag":0`, 1), is: ErrBadSignature},
		{name: "other timestamp", h: with("x-timestamp", "1680508066619"), is: ErrBadSignature},
		{name: "stale", h: good(), now: now.Add(61 * time.Second), is: ErrStaleTimestamp},
		{name: "from the future", h: good(), now: now.Add(-61 * time.Second), is: ErrStaleTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.body == "" {
				tc.body = string(body)
			}
			if tc.now.IsZero() {
				tc.now = now
			}
			store := newMemNonces()
			form, err := kitVerifier(store, tc.now).Verify(context.Background(), tc.h, []byte(tc.body))
			require.Error(t, err)
			require.Equal(t, tc.param, IsKitParamError(err), "%v", err)
			require.Equal(t, !tc.param, IsAuthError(err), "%v", err)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			if tc.is != ErrStaleTimestamp {
				require.Equal(t, FormNone, form)
			}
			require.Zero(t, store.claims, "no nonce is claimed before the call is authenticated")
			require.NotContains(t, err.Error(), kitVectorKey)
			require.NotContains(t, strings.ToUpper(err.Error()), kitTenantCanonicalSign[:16])
		})
	}
}

func TestKitVerifyReplayedNonce(t *testing.T) {
	store := newMemNonces()
	ver := kitVerifier(store, kitVectorTime())
	body := []byte(kitTenantBody)

	// A wrong signature must not use the nonce up.
	_, err := ver.Verify(context.Background(), kitHeaders(strings.Repeat("0", 64), kitVectorTS, kitVectorNonce), body)
	require.ErrorIs(t, err, ErrBadSignature)

	_, err = ver.Verify(context.Background(), kitHeaders(kitTenantCanonicalSign, kitVectorTS, kitVectorNonce), body)
	require.NoError(t, err)
	_, err = ver.Verify(context.Background(), kitHeaders(kitTenantRawSign, kitVectorTS, kitVectorNonce), body)
	require.ErrorIs(t, err, ErrReplayedNonce)
	require.True(t, IsAuthError(err))
	require.True(t, store.until.After(kitVectorTime().Add(DefaultSignatureWindow)), "the nonce is kept past the window")
}

func TestKitVerifySecondsTimestamp(t *testing.T) {
	now := time.Unix(1680508066, 0)
	ts := "1680508066"
	sign := SignKit("k", "n1", ts, []byte(`{}`))
	_, err := (&KitVerifier{AccessKey: "k", Nonces: newMemNonces(), Now: func() time.Time { return now }}).
		Verify(context.Background(), kitHeaders(sign, ts, "n1"), []byte(`{}`))
	require.NoError(t, err)
}

func TestKitVerifyNonceStoreFailure(t *testing.T) {
	dbDown := errors.New("connection refused")
	store := newMemNonces()
	store.err = dbDown
	_, err := kitVerifier(store, kitVectorTime()).
		Verify(context.Background(), kitHeaders(kitTenantRawSign, kitVectorTS, kitVectorNonce), []byte(kitTenantBody))
	require.ErrorIs(t, err, dbDown)
	require.False(t, IsAuthError(err))
	require.False(t, IsKitParamError(err))
}

func TestKitVerifyMisconfigured(t *testing.T) {
	h := kitHeaders(kitTenantRawSign, kitVectorTS, kitVectorNonce)
	for name, ver := range map[string]*KitVerifier{
		"no key":         {Nonces: newMemNonces()},
		"no nonce store": {AccessKey: "k"},
	} {
		_, err := ver.Verify(context.Background(), h, []byte(kitTenantBody))
		require.Error(t, err, name)
		require.False(t, IsAuthError(err), name)
		require.False(t, IsKitParamError(err), name)
	}
}

func TestSignedKitHeaders(t *testing.T) {
	body := []byte(kitAuthBody)
	now := time.Now()
	for _, form := range []SignedForm{FormCanonical, FormRaw} {
		h, err := SignedKitHeaders(form, "kit-key", body, now)
		require.NoError(t, err)
		require.Len(t, h.Get("x-nonce"), 64)
		require.Equal(t, strings.ToUpper(h.Get("x-nonce")), h.Get("x-nonce"))
		require.Equal(t, strconv.FormatInt(now.UnixMilli(), 10), h.Get("x-timestamp"))
		require.Equal(t, strings.ToUpper(h.Get("x-sign")), h.Get("x-sign"))
		got, err := (&KitVerifier{AccessKey: "kit-key", Nonces: newMemNonces()}).Verify(context.Background(), h, body)
		require.NoError(t, err)
		require.Equal(t, form, got)
		at, ok := KitSignedAt(h)
		require.True(t, ok)
		require.Equal(t, now.UnixMilli(), at.UnixMilli())
	}
	_, err := SignedKitHeaders(FormCanonical, "k", []byte(`[1]`), now)
	require.ErrorIs(t, err, ErrNotCanonicalisable)
	_, err = SignedKitHeaders("sorted", "k", body, now)
	require.ErrorContains(t, err, "unknown signature form")
	_, err = SignedKitHeaders(FormRaw, "", body, now)
	require.Error(t, err)
}

func TestParseKitOperation(t *testing.T) {
	for _, op := range KitOperations {
		got, ok := ParseKitOperation(string(op))
		require.True(t, ok)
		require.Equal(t, op, got)
	}
	for _, s := range []string{"", "TenantSync", "tenantsync", "newInstance", "tenantSync/"} {
		_, ok := ParseKitOperation(s)
		require.False(t, ok, s)
	}
}
