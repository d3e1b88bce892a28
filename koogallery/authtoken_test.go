// The V1 reference vectors in testdata/v1-vectors.json come from Java 17's
// javax.crypto and URLDecoder (testdata/V1VectorGen.java). Regenerate them
// with:
//
//	cd koogallery/testdata && java V1VectorGen.java > v1-vectors.json

package koogallery

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// v1Vectors is testdata/v1-vectors.json.
type v1Vectors struct {
	AuthToken []struct {
		Key                  string `json:"key"`
		Query                string `json:"query"`
		StringToSign         string `json:"stringToSign"`
		AuthToken            string `json:"authToken"`
		PlainTokenQuery      string `json:"plainTokenQuery"`
		OfficialAcceptsPlain bool   `json:"officialAcceptsPlain"`
		OfficialAcceptsQuery bool   `json:"officialAcceptsQuery"`
	} `json:"authToken"`
}

// v1VerifierAt is a verifier whose clock is the call's own timeStamp.
func v1VerifierAt(t *testing.T, key, timeStamp string) *V1Verifier {
	t.Helper()
	ts, err := ParseTime(timeStamp)
	require.NoError(t, err)
	return &V1Verifier{AccessKey: key, Now: func() time.Time { return ts }}
}

// The COMPUTED vectors of §2.5, key abcde, checked literally.
func TestSignV1ContractVectors(t *testing.T) {
	for _, tc := range []struct{ toSign, token string }{
		{"activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903",
			"00jAKGYR9tWO3REKLzFEhEQ9XCvVaxgQQ1ArV1AkR74="},
		{"activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e&customerName=&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903",
			"l+qjBstYxV1YidMVq0D5ykwmQM/oq8nHqG/C8Cp25+s="},
		{"activity=expireInstance&instanceId=03pf80c2bae96vc49b80b917bea776d7&orderId=CS1906666666ABCDE&testFlag=0&timeStamp=20170725025113409",
			"dQm5YCiw692iiMPqFYNg6dnaZs1aXGvJDdfqsYaeg/Y="},
		{"activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=FREEZE&testFlag=1&timeStamp=20230327070251713",
			"ZZpaxbi52T7kXnOCalcvMA+n43IgJEB5J2Npt21ukG4="},
		{"activity=newInstance&businessId=b-1&customerId=c-1&customerName=华为 测试&mobilePhone=A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x+zjRfg==&orderId=CS1&productId=p-1&skuCode=s-1&testFlag=1&timeStamp=20240101000000000",
			"EGkrJ4SMNMTBzIo1e95em2/gUX05u0BHB+uBdvwROkI="},
		{"activity=releaseInstance&instanceId=abc123&testFlag=0&timeStamp=20170725025113409",
			"YPSnTS7l0/x1Kh+OgjooZgSOep8Jo/EnRQNV5C3NfAg="},
	} {
		params := url.Values{}
		for pair := range strings.SplitSeq(tc.toSign, "&") {
			name, value, _ := strings.Cut(pair, "=")
			params[name] = []string{value}
		}
		require.Equal(t, tc.toSign, v1StringToSign(params))
		token, err := SignV1("abcde", params)
		require.NoError(t, err)
		require.Equal(t, tc.token, token)
	}

	// The request of §2.5, exactly as the marketplace sends it.
	const raw = "activity=newInstance&businessId=b-1&customerId=c-1&customerName=%E5%8D%8E%E4%B8%BA%20%E6%B5%8B%E8%AF%95&mobilePhone=A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x%2BzjRfg%3D%3D&orderId=CS1&productId=p-1&skuCode=s-1&testFlag=1&timeStamp=20240101000000000&authToken=EGkrJ4SMNMTBzIo1e95em2%2FgUX05u0BHB%2BuBdvwROkI%3D"
	params, err := v1VerifierAt(t, "abcde", "20240101000000000").Verify(raw)
	require.NoError(t, err)
	require.Equal(t, "华为 测试", params.Get("customerName"))
	require.Equal(t, "A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x+zjRfg==", params.Get("mobilePhone"), "encrypted fields are signed encrypted")
}

func TestV1VerifierJavaVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/v1-vectors.json")
	require.NoError(t, err)
	var vectors v1Vectors
	require.NoError(t, json.Unmarshal(raw, &vectors))
	require.GreaterOrEqual(t, len(vectors.AuthToken), 30)
	plainRefused := 0
	for i, tc := range vectors.AuthToken {
		require.True(t, tc.OfficialAcceptsQuery, "vector %d", i)
		params, err := url.ParseQuery(tc.Query)
		require.NoError(t, err, "vector %d", i)
		require.Equal(t, tc.StringToSign, v1StringToSign(params), "vector %d", i)
		token, err := SignV1(tc.Key, params)
		require.NoError(t, err)
		require.Equal(t, tc.AuthToken, token, "vector %d", i)

		v := v1VerifierAt(t, tc.Key, params.Get(ParamTimeStamp))
		got, err := v.Verify(tc.Query)
		require.NoError(t, err, "vector %d", i)
		require.Equal(t, params, got)

		// The token sent without percent-encoding: the official verifier
		// refuses it when the token has a '+' (decoded to a space); this
		// one accepts it either way (§2.5).
		require.Equal(t, !strings.Contains(tc.AuthToken, "+"), tc.OfficialAcceptsPlain, "vector %d", i)
		if !tc.OfficialAcceptsPlain {
			plainRefused++
		}
		_, err = v.Verify(tc.PlainTokenQuery)
		require.NoError(t, err, "vector %d, token not encoded", i)

		// Any change to a signed parameter is refused.
		tampered := strings.Replace(tc.Query, "activity=", "activity=x", 1)
		_, err = v.Verify(tampered)
		require.ErrorIs(t, err, ErrBadSignature, "vector %d", i)
		require.True(t, IsAuthError(err))
		// So is the right token under another key.
		_, err = (&V1Verifier{AccessKey: tc.Key + "x", Now: v.Now}).Verify(tc.Query)
		require.ErrorIs(t, err, ErrBadSignature)
	}
	require.Positive(t, plainRefused, "some vector exercises the '+' leniency")
}

func TestV1VerifierRefusals(t *testing.T) {
	signed, err := SignedV1Query("k", url.Values{"activity": {"queryInstance"}, "instanceId": {"I1"}, "customerName": {""}},
		time.Date(2026, 12, 5, 1, 2, 3, 456e6, time.UTC))
	require.NoError(t, err)
	require.Equal(t, "20261205010203456", signed.Get(ParamTimeStamp))
	good := EncodeV1Query(signed)
	require.True(t, strings.HasSuffix(good, "&"+ParamAuthToken+"="+url.QueryEscape(signed.Get(ParamAuthToken))), good)
	require.Contains(t, good, "customerName=&", "empty values are sent and signed")
	v := v1VerifierAt(t, "k", "20261205010203456")
	_, err = v.Verify(good)
	require.NoError(t, err)

	without := func(name string) string {
		q := url.Values{}
		for k, vs := range signed {
			if k != name {
				q[k] = vs
			}
		}
		return EncodeV1Query(q)
	}
	for _, tc := range []struct {
		name, query string
		want        error
		msg         string
	}{
		{"no authToken", without(ParamAuthToken), ErrMissingSignatureParams, "authToken is missing"},
		{"no timeStamp", without(ParamTimeStamp), ErrMissingSignatureParams, "timeStamp is missing"},
		{"empty value dropped", strings.Replace(good, "customerName=&", "", 1), ErrBadSignature, "does not match"},
		{"repeated known", good + "&activity=releaseInstance", ErrMissingSignatureParams, "activity is repeated"},
		{"repeated unknown", "x=1&x=2&" + good, ErrMissingSignatureParams, "a parameter is repeated"},
		{"added parameter", "x=1&" + good, ErrBadSignature, "does not match"},
		{"nameless", "=1&" + good, ErrMissingSignatureParams, "has no name"},
		{"bad escape", "x=%zz&" + good, ErrMissingSignatureParams, "not valid URL encoding"},
		{"not UTF-8", "x=%ff&" + good, ErrMissingSignatureParams, "not UTF-8"},
		{"token not base64", without(ParamAuthToken) + "&authToken=abc", ErrMissingSignatureParams, "base64 characters of an HMAC-SHA256"},
		{"token split by a line break", without(ParamAuthToken) + "&authToken=" + url.QueryEscape(signed.Get(ParamAuthToken)[:20]+"\n"+signed.Get(ParamAuthToken)[20:]), ErrMissingSignatureParams, "base64 characters of an HMAC-SHA256"},
		{"token too long", without(ParamAuthToken) + "&authToken=" + strings.Repeat("A", 51), ErrMissingSignatureParams, "longer than 50"},
		{"timeStamp not a time", strings.Replace(good, "timeStamp=20261205010203456", "timeStamp=2026-12-05", 1), ErrMissingSignatureParams, "yyyyMMddHHmmssSSS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params, err := v.Verify(tc.query)
			require.Nil(t, params)
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
			require.True(t, IsAuthError(err))
			require.NotContains(t, err.Error(), signed.Get(ParamAuthToken))
		})
	}

	_, err = (&V1Verifier{}).Verify(good)
	require.ErrorContains(t, err, "no access key")
	require.False(t, IsAuthError(err), "a verifier without a key is the server's fault")
}

func TestV1VerifierWindow(t *testing.T) {
	at := time.Date(2026, 12, 5, 1, 2, 3, 0, time.UTC)
	signed, err := SignedV1Query("k", url.Values{"activity": {"releaseInstance"}, "instanceId": {"I1"}}, at)
	require.NoError(t, err)
	query := EncodeV1Query(signed)
	for _, tc := range []struct {
		window time.Duration
		now    time.Time
		ok     bool
	}{
		{0, at.Add(59 * time.Second), true},
		{0, at.Add(-59 * time.Second), true},
		{0, at.Add(61 * time.Second), false},
		{0, at.Add(-61 * time.Second), false},
		{time.Hour, at.Add(59 * time.Minute), true},
		{time.Hour, at.Add(61 * time.Minute), false},
		{-1, at.Add(3 * time.Hour), true},
		{-1, at.Add(-24 * time.Hour), true},
	} {
		v := &V1Verifier{AccessKey: "k", Window: tc.window, Now: func() time.Time { return tc.now }}
		_, err := v.Verify(query)
		if tc.ok {
			require.NoError(t, err, "window %s, now %s", tc.window, tc.now)
			continue
		}
		require.ErrorIs(t, err, ErrStaleTimestamp, "window %s, now %s", tc.window, tc.now)
		require.True(t, IsAuthError(err))
	}
	ts, ok := V1SignedAt(signed)
	require.True(t, ok)
	require.Equal(t, at, ts)
	_, ok = V1SignedAt(url.Values{})
	require.False(t, ok)
}

func TestSignV1Refusals(t *testing.T) {
	_, err := SignV1("", url.Values{ParamTimeStamp: {"20260101000000000"}})
	require.ErrorContains(t, err, "no access key")
	_, err = SignV1("k", url.Values{"activity": {"x"}})
	require.ErrorContains(t, err, "timeStamp")
	_, err = SignV1("k", url.Values{ParamTimeStamp: {"20260101000000000"}, "a": {"1", "2"}})
	require.ErrorContains(t, err, "has 2 values")

	// The authToken in the input is ignored and replaced; the input is
	// not modified.
	in := url.Values{"activity": {"x"}, ParamAuthToken: {"old"}}
	out, err := SignedV1Query("k", in, time.Now())
	require.NoError(t, err)
	require.Equal(t, url.Values{"activity": {"x"}, ParamAuthToken: {"old"}}, in)
	require.NotEqual(t, "old", out.Get(ParamAuthToken))
}

// FuzzV1Verify: whatever the query, Verify either refuses it with an
// authentication error whose text never holds the authToken, or accepts
// it only if its authToken is the one SignV1 computes for what it
// returns.
func FuzzV1Verify(f *testing.F) {
	raw, err := os.ReadFile("testdata/v1-vectors.json")
	require.NoError(f, err)
	var vectors v1Vectors
	require.NoError(f, json.Unmarshal(raw, &vectors))
	for _, tc := range vectors.AuthToken[:6] {
		f.Add(tc.Query)
		f.Add(tc.PlainTokenQuery)
	}
	f.Add("")
	f.Add("authToken=&timeStamp=")
	f.Add("a=%zz&authToken=YPSnTS7l0/x1Kh+OgjooZgSOep8Jo/EnRQNV5C3NfAg=&timeStamp=20170725025113409")
	f.Fuzz(func(t *testing.T, query string) {
		v := &V1Verifier{AccessKey: "abcde", Window: -1}
		params, err := v.Verify(query)
		if err != nil {
			require.Nil(t, params)
			require.True(t, IsAuthError(err), "%v", err)
			if q, perr := url.ParseQuery(query); perr == nil && len(q.Get(ParamAuthToken)) == 44 { // a real token; short ones may be words of the message
				require.NotContains(t, err.Error(), q.Get(ParamAuthToken))
			}
			return
		}
		token, err := SignV1("abcde", params)
		require.NoError(t, err)
		require.Equal(t, token, strings.ReplaceAll(params.Get(ParamAuthToken), " ", "+"))
	})
}
