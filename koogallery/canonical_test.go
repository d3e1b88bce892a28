// The canonical-body vectors in testdata/canonical-vectors.json come from
// Java 17 and the real Jackson, canonicalising each body exactly as
// Huawei's SaaS 2.0 sample project does before it verifies a signature
// (regenerate with make vectors; see testdata/CanonicalVectorGen.java).

package koogallery

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type canonicalVector struct {
	Form      string `json:"form"`
	Key       string `json:"key"`
	Nonce     string `json:"nonce"`
	Timestamp string `json:"timestamp"`
	Body      string `json:"body"`
	Canonical string `json:"canonical"`
	Signature string `json:"signature"`
}

func loadCanonicalVectors(t *testing.T) []canonicalVector {
	t.Helper()
	raw, err := os.ReadFile("testdata/canonical-vectors.json")
	require.NoError(t, err)
	var v struct {
		Canonical []canonicalVector `json:"canonical"`
	}
	require.NoError(t, json.Unmarshal(raw, &v))
	require.GreaterOrEqual(t, len(v.Canonical), 14)
	return v.Canonical
}

// TestCanonicalBodyJacksonVectors: CanonicalBody writes byte for byte what
// Jackson writes, and the signatures over it are the sample's.
func TestCanonicalBodyJacksonVectors(t *testing.T) {
	for i, tc := range loadCanonicalVectors(t) {
		form := BasicCanonical
		if tc.Form == "kit" {
			form = KitCanonical
		}
		got, err := CanonicalBody([]byte(tc.Body), form)
		require.NoError(t, err, "vector %d", i)
		require.Equal(t, tc.Canonical, string(got), "vector %d (%s)", i, tc.Form)

		if form == KitCanonical {
			require.True(t, strings.EqualFold(tc.Signature, SignKit(tc.Key, tc.Nonce, tc.Timestamp, got)), "vector %d", i)
			continue
		}
		require.True(t, strings.EqualFold(tc.Signature, Sign(tc.Key, tc.Nonce, tc.Timestamp, got)), "vector %d", i)
		// The Verifier accepts the raw body under the sample's signature,
		// in either hex case, and says it matched the canonical form.
		ts, err := timestampOf(tc.Timestamp)
		require.NoError(t, err)
		for _, sig := range []string{tc.Signature, strings.ToUpper(tc.Signature)} {
			ver := &Verifier{AccessKey: tc.Key, Nonces: newMemNonces(), Now: func() time.Time { return ts }}
			q := url.Values{"signature": {sig}, "timestamp": {tc.Timestamp}, "nonce": {tc.Nonce}}
			form, err := ver.Verify(context.Background(), q, []byte(tc.Body))
			require.NoError(t, err, "vector %d", i)
			want := FormCanonical
			if tc.Body == tc.Canonical {
				want = FormRaw // a sorted compact body is its own canonical form
			}
			require.Equal(t, want, form, "vector %d", i)
		}
	}
}

// TestCanonicalContractVectors are the COMPUTED vectors of §8.3.
func TestCanonicalContractVectors(t *testing.T) {
	t.Run("basic interface, the body of §2.2", func(t *testing.T) {
		canonical, err := CanonicalBody([]byte(specBody), BasicCanonical)
		require.NoError(t, err)
		require.Equal(t, `{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`, string(canonical))
		require.Equal(t, "20D1DD3A2EA6D3711EBFFB8417F9A731CE0C6F437CA7941F2E97C1DC2FA61D52",
			Sign("abcde", "50D83F1E0A6B4C3F", "1680508066618", canonical))

		// The raw body is accepted under either signature.
		ts := time.UnixMilli(1680508066618)
		for sig, want := range map[string]SignedForm{
			"E917B474CFF0FE0F3A15AD9948B7648A2F37DB5F98170EB0881357F3BABB7C0C": FormRaw,
			"20D1DD3A2EA6D3711EBFFB8417F9A731CE0C6F437CA7941F2E97C1DC2FA61D52": FormCanonical,
		} {
			ver := &Verifier{AccessKey: "abcde", Nonces: newMemNonces(), Now: func() time.Time { return ts }}
			q := url.Values{"signature": {sig}, "timestamp": {"1680508066618"}, "nonce": {"50D83F1E0A6B4C3F"}}
			form, err := ver.Verify(context.Background(), q, []byte(specBody))
			require.NoError(t, err)
			require.Equal(t, want, form)
		}
	})
	t.Run("kit, tenantSync", func(t *testing.T) {
		raw := `{"instanceId":"huaiweitest123456","orderId":"CS1906666666ABCDE","tenantId":"68cbc86abc2018ab880d92f36422fa0e","tenantCode":"huawei","name":"huaiweitest","domainName":"https://example.tenantaccount.com","flag":1,"testFlag":0,"timeStamp":"20220413093539534"}`
		canonical, err := CanonicalBody([]byte(raw), KitCanonical)
		require.NoError(t, err)
		require.Equal(t, `{"domainName":"https://example.tenantaccount.com","flag":1,"instanceId":"huaiweitest123456","name":"huaiweitest","orderId":"CS1906666666ABCDE","tenantCode":"huawei","tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":0,"timeStamp":"20220413093539534"}`, string(canonical))
		const nonce, ts = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA", "1680508066618"
		require.Equal(t, "079D3FFB40C04DA4C5A6353716F27BE106A8539C000AADD2677207B5CFD230DC", SignKit("abcde", nonce, ts, canonical))
		require.Equal(t, "F891BBC2112CE481FB2C2723D0D44E66E1BC85941109FAF92F70C2985C3A36AA", SignKit("abcde", nonce, ts, []byte(raw)))
	})
	t.Run("kit, authSync with a nested list", func(t *testing.T) {
		// The same members as the documented canonical form, sent in
		// another order: the top level is sorted, the list's order kept.
		raw := `{"userList":[{"userName":"zhangsan01","name":"张三","orgCode":"123456789","role":"admin","enable":"true"}],"testFlag":0,"timeStamp":"20220420114117642","flag":1,"appId":"app-001","tenantId":"68cbc86abc2018ab880d92f36422fa0e","currentSyncTime":"20220420114117642","instanceId":"huaiweitest123456"}`
		canonical, err := CanonicalBody([]byte(raw), KitCanonical)
		require.NoError(t, err)
		require.Equal(t, `{"appId":"app-001","currentSyncTime":"20220420114117642","flag":1,"instanceId":"huaiweitest123456","tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":0,"timeStamp":"20220420114117642","userList":[{"userName":"zhangsan01","name":"张三","orgCode":"123456789","role":"admin","enable":"true"}]}`, string(canonical))
		require.Equal(t, "9B02BA665F1B556E691122BAC5350064DB2E35A05ABAA1913105825A670A8168",
			SignKit("abcde", "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA", "1680508066618", canonical))
	})
}

func TestCanonicalBodyRules(t *testing.T) {
	tests := []struct {
		name, body string
		form       CanonicalForm
		want       string
	}{
		{"top-level nulls dropped, nested kept", `{"b":null,"a":{"x":null},"c":[null]}`, KitCanonical, `{"a":{"x":null},"c":[null]}`},
		{"basic: scalars become their text", `{"n":7.50e1,"t":true,"f":false,"i":-0}`, BasicCanonical, `{"f":"false","i":"-0","n":"7.50e1","t":"true"}`},
		{"kit: integers as received, -0 as 0", `{"a":-0,"b":12345678901234567890123,"c":-15}`, KitCanonical, `{"a":0,"b":12345678901234567890123,"c":-15}`},
		{"kit: other numbers as Double.toString", `{"a":1e2,"b":0.5,"c":1e-3,"d":9.99e-4,"e":1e7,"f":-0.0,"g":123456.789e3}`, KitCanonical,
			`{"a":100.0,"b":0.5,"c":0.001,"d":9.99E-4,"e":1.0E7,"f":-0.0,"g":1.23456789E8}`},
		{"escapes as Jackson", "{\"s\":\"\\u0000\\u001f\\u007f\\\"\\\\\\/\\b\\f\\n\\r\\t<>&\\u2028\\u00e9\"}", KitCanonical,
			"{\"s\":\"\\u0000\\u001F\u007f\\\"\\\\/\\b\\f\\n\\r\\t<>&\u2028é\"}"},
		{"names sorted by UTF-16 code units", `{"😀":1,"Ａ":2,"z":3}`, KitCanonical, `{"z":3,"😀":1,"Ａ":2}`},
		{"a repeated member: last value, one place", `{"b":1,"a":2,"b":3}`, KitCanonical, `{"a":2,"b":3}`},
		{"nested repeated member: first place, last value", `{"o":{"x":1,"y":2,"x":3}}`, KitCanonical, `{"o":{"x":3,"y":2}}`},
		{"whitespace removed", " {\r\n \"b\" : [ 1 , 2 ] ,\t\"a\" : { } } \n", KitCanonical, `{"a":{},"b":[1,2]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalBody([]byte(tc.body), tc.form)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
		})
	}
}

func TestCanonicalBodyRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"empty":               ``,
		"array":               `[{"a":1}]`,
		"string":              `"x"`,
		"truncated":           `{"a":1`,
		"trailing data":       `{"a":1} {"b":2}`,
		"invalid UTF-8":       "{\"a\":\"\xff\"}",
		"too deep":            `{"a":` + strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1) + `}`,
		"number out of range": `{"a":1e400}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := CanonicalBody([]byte(body), KitCanonical)
			require.ErrorIs(t, err, ErrNotCanonicalisable)
		})
	}
}

// TestJavaDoubleString compares with outputs of Java's Double.toString.
func TestJavaDoubleString(t *testing.T) {
	for f, want := range map[float64]string{
		1: "1.0", 100: "100.0", 0.1: "0.1", 0.001: "0.001", 0.0001: "1.0E-4", 9999999: "9999999.0",
		1e7: "1.0E7", 12345678.9: "1.23456789E7", -2.5: "-2.5", 1.5e-7: "1.5E-7", 3e10: "3.0E10",
		math.MaxFloat64: "1.7976931348623157E308", math.SmallestNonzeroFloat64: "4.9E-324", 123.456: "123.456",
	} {
		require.Equal(t, want, javaDoubleString(f), "%v", f)
	}
}

// TestCanonicalBodyIgnoresMemberOrder: any order of the same members has
// the same canonical form, which is what lets the marketplace send
// members unsorted.
func TestCanonicalBodyIgnoresMemberOrder(t *testing.T) {
	members := []string{`"activity":"refreshInstance"`, `"scene":"RENEWAL"`, `"instanceId":"实例-1"`,
		`"orderId":"CS1"`, `"orderLineId":""`, `"expireTime":"20251231235959"`, `"testFlag":0`, `"x":null`}
	want, err := CanonicalBody([]byte("{"+strings.Join(members, ",")+"}"), BasicCanonical)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		got, err := CanonicalBody([]byte("{"+strings.Join(members, ", ")+"}"), BasicCanonical)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
}

// FuzzCanonicalBody: canonicalisation never panics, is deterministic,
// yields valid compact JSON with sorted top-level names, and is a fixed
// point (the canonical form of a canonical form is itself).
func FuzzCanonicalBody(f *testing.F) {
	for _, body := range []string{
		specBody, `{}`, `{"b":null,"a":[1,2,{"c":null}]}`, `{"a":1e2,"b":-0,"c":true}`, "{\"s\":\"\\u0001\u2028</\"}",
		`{"😀":1,"Ａ":2,"z":3}`, `{"a":1,"a":2}`, `{"activity":"x","ACTIVITY":"y"}`, `[1]`, `{"a":1e400}`, `{"a":0.1e-400}`,
	} {
		f.Add([]byte(body), false)
		f.Add([]byte(body), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, kit bool) {
		form := BasicCanonical
		if kit {
			form = KitCanonical
		}
		got, err := CanonicalBody(body, form)
		if err != nil {
			require.ErrorIs(t, err, ErrNotCanonicalisable)
			_, again := CanonicalBody(body, form)
			require.Error(t, again)
			return
		}
		again, err := CanonicalBody(body, form)
		require.NoError(t, err)
		require.Equal(t, got, again, "not deterministic")
		require.True(t, json.Valid(got), "not JSON: %q", got)

		root, err := parseJSONObject(got)
		require.NoError(t, err)
		names := make([]string, len(root.members))
		for i, m := range root.members {
			names[i] = m.name
			require.NotEqual(t, jsonNull, m.value.kind, "a top-level null was kept")
		}
		require.True(t, slices.IsSortedFunc(names, compareUTF16), "names not sorted: %q", names)
		require.Len(t, slices.Compact(slices.Clone(names)), len(names), "a name repeats")

		fixed, err := CanonicalBody(got, form)
		require.NoError(t, err)
		require.Equal(t, string(got), string(fixed), "not a fixed point")
	})
}

// TestSignedQueryAs: the emulator's signer signs the canonical form by
// default, and a body without one cannot be signed so.
func TestSignedQueryAs(t *testing.T) {
	now := time.UnixMilli(1680508066618)
	body := []byte(`{"status":"FREEZE","instanceId":"i-1","activity":"updateInstanceStatus"}`)
	for _, form := range []SignedForm{FormRaw, FormCanonical} {
		q, err := SignedQueryAs(form, "k", body, now)
		require.NoError(t, err)
		require.Equal(t, strconv.FormatInt(now.UnixMilli(), 10), q.Get("timestamp"))
		ver := &Verifier{AccessKey: "k", Nonces: newMemNonces(), Now: func() time.Time { return now }}
		got, err := ver.Verify(context.Background(), q, body)
		require.NoError(t, err)
		require.Equal(t, form, got)
	}
	_, err := SignedQueryAs(FormCanonical, "k", []byte(`[1]`), now)
	require.ErrorIs(t, err, ErrNotCanonicalisable)
	_, err = SignedQueryAs("sorted", "k", body, now)
	require.ErrorContains(t, err, "unknown signature form")
}

// TestVerifyCanonicalRefusals: a member added, removed or changed after
// signing breaks the canonical signature as it breaks the raw one, and
// nothing reaches the nonce store.
func TestVerifyCanonicalRefusals(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	signed := []byte(`{"status":"FREEZE","instanceId":"i-1","activity":"updateInstanceStatus"}`)
	canonical, err := CanonicalBody(signed, BasicCanonical)
	require.NoError(t, err)
	q := url.Values{"signature": {Sign("k", "n1", ts, canonical)}, "timestamp": {ts}, "nonce": {"n1"}}
	for name, body := range map[string]string{
		"member added":        `{"status":"FREEZE","instanceId":"i-1","activity":"updateInstanceStatus","testFlag":"1"}`,
		"member removed":      `{"status":"FREEZE","activity":"updateInstanceStatus"}`,
		"value changed":       `{"status":"UNFREEZE","instanceId":"i-1","activity":"updateInstanceStatus"}`,
		"name's case changed": `{"STATUS":"FREEZE","instanceId":"i-1","activity":"updateInstanceStatus"}`,
		"not canonicalisable": `{"status":"FREEZE","instanceId":"i-1","activity":"updateInstanceStatus"`,
	} {
		t.Run(name, func(t *testing.T) {
			store := newMemNonces()
			ver := &Verifier{AccessKey: "k", Nonces: store, Now: func() time.Time { return now }}
			form, err := ver.Verify(context.Background(), q, []byte(body))
			require.ErrorIs(t, err, ErrBadSignature)
			require.Equal(t, FormNone, form)
			require.Zero(t, store.claims)
		})
	}
}
