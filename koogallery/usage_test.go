package koogallery_test

import (
	"encoding/json"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"sorted keys, compact", `{ "b" : 1, "a" : 2 }`, `{"a":2,"b":1}`},
		{"nested objects sorted recursively", `{"z":{"y":{"b":true,"a":null}},"a":{"d":1,"c":2}}`,
			`{"a":{"c":2,"d":1},"z":{"y":{"a":null,"b":true}}}`},
		{"arrays keep their order", `[3, 1, {"b":1,"a":2}, [2, 1]]`, `[3,1,{"a":2,"b":1},[2,1]]`},
		{"numbers as written", `{"a":1.50,"b":1e2,"c":-0.0001,"d":12345678901234567890,"e":0.30000000000000004}`,
			`{"a":1.50,"b":1e2,"c":-0.0001,"d":12345678901234567890,"e":0.30000000000000004}`},
		{"byte order of keys", `{"b":1,"B":2,"_":3,"a":4,"é":5,"aa":6}`, `{"B":2,"_":3,"a":4,"aa":6,"b":1,"é":5}`},
		{"unicode literal, escapes normalised", `{"k":"\u8ba1\u91cf é 😀"}`, `{"k":"计量 é 😀"}`},
		{"HTML characters not escaped", `{"k":"\u003ca\u003e&amp;"}`, `{"k":"<a>&amp;"}`},
		{"control characters escaped as encoding/json does", `{"k":"a\u0001\n\t\/\"\\"}`, `{"k":"a\u0001\n\t/\"\\"}`},
		{"scalars", `  "x"  `, `"x"`},
		{"empty containers", `{"a":[],"b":{}}`, `{"a":[],"b":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := koogallery.CanonicalJSON([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
			// Canonical form is a fixed point.
			again, err := koogallery.CanonicalJSON(got)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(again))
		})
	}

	for _, bad := range []string{
		``, `{`, `{"a":1,}`, `{"a" 1}`, `[1 2]`, `{} {}`, `{"a":1} x`, `nul`, `{"a":01}`,
		`{"a":1,"a":2}`, strings.Repeat("[", 101) + strings.Repeat("]", 101),
	} {
		_, err := koogallery.CanonicalJSON([]byte(bad))
		require.ErrorIs(t, err, koogallery.ErrInvalidJSON, "input %q", bad)
	}
	_, err := koogallery.CanonicalJSON([]byte(strings.Repeat("[", 100) + strings.Repeat("]", 100)))
	require.NoError(t, err)
}

// The known answer was computed independently, with Java's javax.crypto.Mac
// (and checked with Python's hmac), over the canonical text written by hand:
//
//	String canonical = "{\"a\":{\"b\":[3,1,2],\"z\":1.50},\"note\":\"计量 é <&>\",\"usage_records\":[{...}]}";
//	Mac mac = Mac.getInstance("HmacSHA256");
//	mac.init(new SecretKeySpec("test-access-key".getBytes(UTF_8), "HmacSHA256"));
//	Base64.getEncoder().encodeToString(mac.doFinal(("ts=1704165300000&nonce=0123456789abcdef0123456789abcdef&body=" + canonical).getBytes(UTF_8)));
const (
	kavKey       = "test-access-key"
	kavTS        = "1704165300000"
	kavNonce     = "0123456789abcdef0123456789abcdef"
	kavSignature = "8QlXYADY4ZJIZix83hwdKtdu3YRrTcUYytB89TAJG3I="
	kavCanonical = `{"a":{"b":[3,1,2],"z":1.50},"note":"计量 é <&>","usage_records":[{"begin_time":"20240102T020000Z","end_time":"20240102T030000Z","instance_id":"inst-1","metering_sn":"sn-1","record_time":"20240102T031500Z","relate_pkg_instance":"pkg-1","usage_value":12.3456}]}`
	// kavBody is the same document as sent by some client: unsorted,
	// indented, escaped differently.
	kavBody = `{
  "usage_records": [{
    "usage_value": 12.3456, "metering_sn": "sn-1", "instance_id": "inst-1",
    "relate_pkg_instance": "pkg-1", "end_time": "20240102T030000Z",
    "begin_time": "20240102T020000Z", "record_time": "20240102T031500Z"
  }],
  "note": "\u8ba1\u91cf \u00e9 \u003c&\u003e",
  "a": {"z": 1.50, "b": [3, 1, 2]}
}`
)

func TestUsageBodySignatureKnownAnswer(t *testing.T) {
	canonical, err := koogallery.CanonicalJSON([]byte(kavBody))
	require.NoError(t, err)
	require.Equal(t, kavCanonical, string(canonical))

	for _, body := range []string{kavBody, kavCanonical} {
		sig, err := koogallery.UsageBodySignature(kavKey, kavTS, kavNonce, []byte(body))
		require.NoError(t, err)
		require.Equal(t, kavSignature, sig)
	}

	_, err = koogallery.UsageBodySignature("", kavTS, kavNonce, []byte(kavBody))
	require.Error(t, err)
	_, err = koogallery.UsageBodySignature(kavKey, kavTS, kavNonce, []byte(`{"a":`))
	require.ErrorIs(t, err, koogallery.ErrInvalidJSON)
}

func TestVerifyUsageBodySignature(t *testing.T) {
	signedAt := time.UnixMilli(1704165300000)
	good := func() http.Header {
		h := http.Header{}
		h.Set("signature", kavSignature)
		h.Set("ts", kavTS)
		h.Set("nonce", kavNonce)
		return h
	}
	tests := []struct {
		name    string
		edit    func(http.Header)
		key     string
		body    string
		now     time.Time
		wantErr error
		form    koogallery.UsageSignatureForm
	}{
		{name: "good", now: signedAt, form: koogallery.UsageSignedSorted},
		{name: "good, canonical body", body: kavCanonical, now: signedAt, form: koogallery.UsageSignedRaw},
		{name: "good, clock 59s ahead", now: signedAt.Add(59 * time.Second), form: koogallery.UsageSignedSorted},
		{name: "good, clock 59s behind", now: signedAt.Add(-59 * time.Second), form: koogallery.UsageSignedSorted},
		{name: "stale", now: signedAt.Add(61 * time.Second), wantErr: koogallery.ErrBadUsageSignature},
		{name: "from the future", now: signedAt.Add(-61 * time.Second), wantErr: koogallery.ErrBadUsageSignature},
		{name: "wrong key", key: "other-key", now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "body changed", body: strings.Replace(kavCanonical, "12.3456", "12.3457", 1), now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "number rewritten", body: strings.Replace(kavCanonical, "1.50", "1.5", 1), now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "nonce changed", edit: func(h http.Header) { h.Set("nonce", "x"+kavNonce[1:]) }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "ts changed", edit: func(h http.Header) { h.Set("ts", "1704165300001") }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "missing signature", edit: func(h http.Header) { h.Del("signature") }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "missing ts", edit: func(h http.Header) { h.Del("ts") }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "missing nonce", edit: func(h http.Header) { h.Del("nonce") }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "repeated nonce header", edit: func(h http.Header) { h.Add("nonce", kavNonce) }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "ts not digits", edit: func(h http.Header) { h.Set("ts", "17041653e0000") }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "signature not base64", edit: func(h http.Header) { h.Set("signature", "!!"+kavSignature[2:]) }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "signature split by a line break", edit: func(h http.Header) { h.Set("signature", kavSignature[:10]+"\n"+kavSignature[10:]) }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "nonce too long", edit: func(h http.Header) { h.Set("nonce", strings.Repeat("a", 65)) }, now: signedAt, wantErr: koogallery.ErrBadUsageSignature},
		{name: "body not JSON", body: `{"usage_records":`, now: signedAt, wantErr: koogallery.ErrInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good()
			if tt.edit != nil {
				tt.edit(h)
			}
			key := kavKey
			if tt.key != "" {
				key = tt.key
			}
			body := kavBody
			if tt.body != "" {
				body = tt.body
			}
			form, err := koogallery.VerifyUsageBodySignature(h, key, []byte(body), tt.now, time.Minute)
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, tt.form, form)
				return
			}
			require.Empty(t, form)
			require.ErrorIs(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), kavKey)
			require.NotContains(t, err.Error(), kavSignature)
		})
	}

	// An empty key is a configuration error, not a bad request.
	_, err := koogallery.VerifyUsageBodySignature(good(), "", []byte(kavBody), signedAt, time.Minute)
	require.Error(t, err)
	require.NotErrorIs(t, err, koogallery.ErrBadUsageSignature)
}

func TestUsageValue(t *testing.T) {
	for _, tt := range []struct {
		in    string
		units int64
	}{
		{"1", 10000}, {"0.0001", 1}, {"12.3456", 123456}, {"1.50", 15000}, {"1.23450", 12345},
		{"1e2", 1000000}, {"1.5E-3", 15}, {"922337203685477.5807", 9223372036854775807},
	} {
		v, err := koogallery.ParseUsageValue(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.in, v.String(), "kept as written")
		units, err := v.Units()
		require.NoError(t, err)
		require.Equal(t, tt.units, units, tt.in)
	}
	for _, in := range []string{
		"0", "0.0", "-0", "-1", "1.23456", "0.00001", "1e-5", "1e-999999999", "1e999999999",
		"922337203685477.5808", "", "abc", "1.", ".5", "+1", "01", "0x10", "1/3", "NaN", " 1",
	} {
		_, err := koogallery.ParseUsageValue(in)
		require.Error(t, err, "%q", in)
	}

	// Exact arithmetic: 0.1 + 0.2 is 0.3, not 0.30000000000000004.
	a, err := koogallery.ParseUsageValue("0.1")
	require.NoError(t, err)
	b, err := koogallery.ParseUsageValue("0.2")
	require.NoError(t, err)
	sum, err := a.Add(b)
	require.NoError(t, err)
	require.Equal(t, "0.3", sum.String())
	sum, err = sum.Add(koogallery.UsageValueFromUnits(7))
	require.NoError(t, err)
	require.Equal(t, "0.3007", sum.String())
	_, err = koogallery.UsageValueFromUnits(1<<63 - 1).Add(koogallery.UsageValueFromUnits(1))
	require.Error(t, err, "overflow")
	_, err = a.Add(koogallery.UsageValue{})
	require.Error(t, err)

	for units, want := range map[int64]string{1: "0.0001", 10000: "1", 123456: "12.3456", 5000: "0.5", 0: "0", -15000: "-1.5", 1000010: "100.001"} {
		require.Equal(t, want, koogallery.UsageValueFromUnits(units).String())
	}
	require.Error(t, koogallery.UsageValueFromUnits(0).Validate())
	require.Error(t, koogallery.UsageValueFromUnits(-1).Validate())

	// JSON round trip is byte for byte.
	for _, num := range []string{"0.3", "1.50", "12.3456", "1e2", "0.30000000000000004"} {
		var r struct {
			V koogallery.UsageValue `json:"v"`
		}
		require.NoError(t, json.Unmarshal([]byte(`{"v":`+num+`}`), &r))
		require.Equal(t, num, r.V.String())
		out, err := json.Marshal(r)
		require.NoError(t, err)
		require.Equal(t, `{"v":`+num+`}`, string(out))
	}
	var r struct {
		V koogallery.UsageValue `json:"v"`
	}
	// A string holding a number is that number, and keeps its form.
	require.NoError(t, json.Unmarshal([]byte(`{"v":"1.50"}`), &r))
	require.Equal(t, "1.50", r.V.String())
	require.Equal(t, koogallery.UsageValueString, r.V.Form())
	out, err := json.Marshal(r)
	require.NoError(t, err)
	require.Equal(t, `{"v":"1.50"}`, string(out))
	for _, bad := range []string{`"1.5 "`, `"1,5"`, `""`, `"abc"`, `"\u0031"x`} {
		require.Error(t, json.Unmarshal([]byte(`{"v":`+bad+`}`), &r), bad)
	}
	require.Error(t, json.Unmarshal([]byte(`{"v":true}`), &r))
	require.NoError(t, json.Unmarshal([]byte(`{"v":null}`), &r))
	require.True(t, r.V.IsZero())
	out, err = json.Marshal(r)
	require.NoError(t, err)
	require.Equal(t, `{"v":null}`, string(out))
}

func validRecord(now time.Time) koogallery.UsageRecord {
	begin := now.Truncate(time.Hour).Add(-time.Hour)
	return koogallery.UsageRecord{
		InstanceID: "inst-1",
		RecordTime: koogallery.FormatUsageTime(now),
		BeginTime:  koogallery.FormatUsageTime(begin),
		EndTime:    koogallery.FormatUsageTime(begin.Add(time.Hour)),
		UsageValue: koogallery.UsageValueFromUnits(15000),
		MeteringSN: "sn-1",
	}
}

func TestValidateUsageRecord(t *testing.T) {
	now := time.Date(2024, 1, 22, 3, 10, 0, 0, time.UTC)
	value := func(s string) koogallery.UsageValue {
		var v koogallery.UsageValue
		require.NoError(t, json.Unmarshal([]byte(s), &v))
		return v
	}
	tests := []struct {
		name      string
		edit      func(*koogallery.UsageRecord)
		wantCode  string
		wantField string
	}{
		{name: "valid"},
		{name: "valid with package", edit: func(r *koogallery.UsageRecord) { r.RelatePkgInstance = "pkg-1" }},
		{name: "begin exactly 21 days ago", edit: func(r *koogallery.UsageRecord) {
			r.BeginTime = koogallery.FormatUsageTime(now.Add(-koogallery.UsageMaxAge))
		}},
		{name: "end equals begin", edit: func(r *koogallery.UsageRecord) { r.EndTime = r.BeginTime }},
		{"missing instance_id", func(r *koogallery.UsageRecord) { r.InstanceID = "" }, "MKT.0100", "instance_id"},
		{"missing metering_sn", func(r *koogallery.UsageRecord) { r.MeteringSN = " " }, "MKT.0100", "metering_sn"},
		{"instance_id too long", func(r *koogallery.UsageRecord) { r.InstanceID = strings.Repeat("i", 65) }, "MKT.0100", "instance_id"},
		{"relate_pkg_instance too long", func(r *koogallery.UsageRecord) { r.RelatePkgInstance = strings.Repeat("p", 65) }, "MKT.0100", "relate_pkg_instance"},
		{"missing record_time", func(r *koogallery.UsageRecord) { r.RecordTime = "" }, "MKT.0100", "record_time"},
		{"begin_time in Beijing format", func(r *koogallery.UsageRecord) { r.BeginTime = "20240122020000" }, "MKT.0100", "begin_time"},
		{"end_time with offset", func(r *koogallery.UsageRecord) { r.EndTime = "2024-01-22T03:00:00Z" }, "MKT.0100", "end_time"},
		{"end_time not a date", func(r *koogallery.UsageRecord) { r.EndTime = "20240132T030000Z" }, "MKT.0100", "end_time"},
		{"end before begin", func(r *koogallery.UsageRecord) { r.EndTime = "20240122T015959Z" }, "MKT.0100", "end_time"},
		{"missing usage_value", func(r *koogallery.UsageRecord) { r.UsageValue = koogallery.UsageValue{} }, "MKT.0100", "usage_value"},
		{"usage_value 0", func(r *koogallery.UsageRecord) { r.UsageValue = value("0") }, "MKT.0100", "usage_value"},
		{"usage_value negative", func(r *koogallery.UsageRecord) { r.UsageValue = value("-1") }, "MKT.0100", "usage_value"},
		{"usage_value 5 decimals", func(r *koogallery.UsageRecord) { r.UsageValue = value("1.23456") }, "MKT.0100", "usage_value"},
		{"begin older than 21 days", func(r *koogallery.UsageRecord) {
			r.BeginTime = koogallery.FormatUsageTime(now.Add(-koogallery.UsageMaxAge - time.Second))
		}, "MKT.9004", "begin_time"},
		{"old and malformed: the format wins", func(r *koogallery.UsageRecord) {
			r.BeginTime = koogallery.FormatUsageTime(now.AddDate(0, -2, 0))
			r.UsageValue = value("0")
		}, "MKT.0100", "usage_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRecord(now)
			if tt.edit != nil {
				tt.edit(&r)
			}
			err := koogallery.ValidateUsageRecord(r, now)
			if tt.wantCode == "" {
				require.NoError(t, err)
				return
			}
			var ue *koogallery.UsageRecordError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, tt.wantCode, ue.Code)
			require.Equal(t, tt.wantField, ue.Field)
			require.Equal(t, -1, ue.Index)
			require.False(t, koogallery.IsRetryable(err))
		})
	}
}

func TestValidateUsageRecords(t *testing.T) {
	now := time.Date(2024, 1, 22, 3, 10, 0, 0, time.UTC)
	code := func(err error) (string, int) {
		t.Helper()
		var ue *koogallery.UsageRecordError
		require.ErrorAs(t, err, &ue)
		return ue.Code, ue.Index
	}

	c, i := code(koogallery.ValidateUsageRecords(nil, now))
	require.Equal(t, koogallery.OpenAPIParamCheckFailed, c)
	require.Equal(t, -1, i)

	records := make([]koogallery.UsageRecord, koogallery.MaxUsageRecords+1)
	for i := range records {
		records[i] = validRecord(now)
	}
	c, i = code(koogallery.ValidateUsageRecords(records, now))
	require.Equal(t, koogallery.OpenAPITooManyRecords, c)
	require.Equal(t, -1, i)
	require.NoError(t, koogallery.ValidateUsageRecords(records[:koogallery.MaxUsageRecords], now))

	records = records[:3]
	records[2].EndTime = "bad"
	err := koogallery.ValidateUsageRecords(records, now)
	c, i = code(err)
	require.Equal(t, koogallery.OpenAPIParamCheckFailed, c)
	require.Equal(t, 2, i)
	require.Equal(t, "usage record 2: end_time: is not UTC yyyyMMdd'T'HHmmss'Z' (MKT.0100)", err.Error())
}

// jsonNumber is RFC 8259's number grammar, the reference for what
// ParseUsageValue may accept.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// referenceUnits is the exact value of a JSON number in units of 0.0001,
// computed with math/big: ok when it is a positive whole number of units
// that fits an int64. decided is false when the exponent is beyond ±100,
// which ParseUsageValue refuses without looking further (such a value is
// either far below 0.0001 or far beyond int64, unless written with about
// a hundred padding zeros, which no sender does) and math/big would take
// long to compute.
func referenceUnits(s string) (units int64, ok, decided bool) {
	m := jsonNumber.FindStringSubmatch(s)
	if m == nil {
		return 0, false, true
	}
	if exp := strings.TrimLeft(strings.TrimLeft(m[3], "eE+-"), "0"); len(exp) > 3 || (len(exp) == 3 && exp > "100") {
		return 0, false, false
	}
	r, good := new(big.Rat).SetString(s)
	if !good {
		return 0, false, false
	}
	r.Mul(r, big.NewRat(koogallery.UsageValueScale, 1))
	if r.Sign() <= 0 || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false, true
	}
	return r.Num().Int64(), true, true
}

// FuzzParseUsageValue: the quantities of the usage intake (POST /v1/usage)
// and of the usage push. A value is accepted exactly when it is a JSON
// number greater than 0 with at most 4 decimals that fits int64 units, its
// units are exact (never a float), and it survives a units round trip.
func FuzzParseUsageValue(f *testing.F) {
	for _, s := range []string{
		"1", "0.0001", "12.3456", "1e2", "1E-4", "0.00010", "1.5e+3", "100e-6", "0", "0.0", "-1", "-0.0001",
		"0.00001", "1e-5", "922337203685477.5807", "922337203685477.5808", "1e100", "1e-100", "1e-999999999",
		"1e999999999999999999999", "01", "1.", ".5", " 1", "1 ", "1e", "1e+", "NaN", "Infinity", "0x10", "1_000",
		"١", "1\x00", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := koogallery.ParseUsageValue(s)
		want, ok, decided := referenceUnits(s)
		if err != nil {
			require.False(t, decided && ok, "%q is %d units, yet refused: %v", s, want, err)
			return
		}
		require.True(t, decided && ok, "%q accepted, but it is not a positive number of whole units", s)
		require.Equal(t, s, v.String(), "the value is kept as written")
		units, err := v.Units()
		require.NoError(t, err)
		require.Equal(t, want, units)
		back, err := koogallery.ParseUsageValue(koogallery.UsageValueFromUnits(units).String())
		require.NoError(t, err)
		backUnits, err := back.Units()
		require.NoError(t, err)
		require.Equal(t, units, backUnits)
	})
}

func TestShortestUsageValue(t *testing.T) {
	for in, want := range map[string]string{
		"3.0000": "3", "1.7500": "1.75", "0.0005": "0.0005", "12345678.5000": "12345678.5", "10": "10", "2.5": "2.5",
	} {
		v, err := koogallery.ShortestUsageValue(in)
		require.NoError(t, err, in)
		require.Equal(t, want, v.String(), in)
	}
	for _, bad := range []string{"0.0000", "-1", "1.23456", "x", ""} {
		_, err := koogallery.ShortestUsageValue(bad)
		require.Error(t, err, bad)
	}
}

// The vectors of contract §11.4: key abcde, ts 1680508066618, nonce abc123,
// two records; one signature per reading of "naturally sorted" and per type
// of usage_value.
const (
	v114Key, v114TS, v114Nonce = "abcde", "1680508066618", "abc123"
	// v114Sorted is what the server sends: keys sorted at every level.
	v114Sorted = `{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"sn-0001","record_time":"20220809T091000Z","usage_value":1.5},{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"sn-0002","record_time":"20220809T091000Z","relate_pkg_instance":"pkg-01","usage_value":2}]}`
	// v114TopLevel has the record keys in the order of the contract's table.
	v114TopLevel = `{"usage_records":[{"instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","record_time":"20220809T091000Z","begin_time":"20220809T080000Z","end_time":"20220809T090000Z","usage_value":1.5,"metering_sn":"sn-0001"},{"instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","record_time":"20220809T091000Z","begin_time":"20220809T080000Z","end_time":"20220809T090000Z","usage_value":2,"metering_sn":"sn-0002","relate_pkg_instance":"pkg-01"}]}`

	v114SortedSig   = "oEM1KqAdDpvewgDo1jlcn714m9mC8KMr749juDAGBpE="
	v114TopLevelSig = "rSpTqX0AVgQJxFzDRMVz9kePOMgg3/iELBWm6h/swJU="
	v114StringSig   = "T/IdTAW4IiB89KnGxWMJMO80pl/BnJgVToJ3M8emZ7k="
	// v114JavaDoubleSig signs v114Sorted with 2 re-printed as 2.0, as a
	// verifier that reads numbers into Java doubles would.
	v114JavaDoubleSig = "RJPV5leRp+suMHqq7m/s3EqzBBkRKkribxboXvBZH88="
)

// v114String is v114Sorted with usage_value sent as strings.
var v114String = strings.NewReplacer(`"usage_value":1.5`, `"usage_value":"1.5"`, `"usage_value":2`, `"usage_value":"2"`).Replace(v114Sorted)

func TestVerifyUsageBodySignatureForms(t *testing.T) {
	signedAt := time.UnixMilli(1680508066618)
	tests := []struct {
		name, body, sig string
		form            koogallery.UsageSignatureForm
	}{
		{"sorted body, as this server sends it", v114Sorted, v114SortedSig, koogallery.UsageSignedRaw},
		{"table-order body, signed as sent", v114TopLevel, v114TopLevelSig, koogallery.UsageSignedRaw},
		{"table-order body, signed top-level-sorted (a top-level null dropped, whitespace)",
			"{ \"usage_records\" : " + v114TopLevel[len(`{"usage_records":`):len(v114TopLevel)-1] + ", \"extra\": null}",
			v114TopLevelSig, koogallery.UsageSignedTopLevelSorted},
		{"table-order body, signed fully sorted", v114TopLevel, v114SortedSig, koogallery.UsageSignedSorted},
		{"usage_value as strings, sorted", v114String, v114StringSig, koogallery.UsageSignedRaw},
		{"refused: the numbers re-printed by a Java verifier", v114Sorted, v114JavaDoubleSig, ""},
		{"refused: string signature over numbers", v114Sorted, v114StringSig, ""},
		{"refused: number signature over strings", v114String, v114SortedSig, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("signature", tt.sig)
			h.Set("ts", v114TS)
			h.Set("nonce", v114Nonce)
			form, err := koogallery.VerifyUsageBodySignature(h, v114Key, []byte(tt.body), signedAt, time.Minute)
			if tt.form == "" {
				require.ErrorIs(t, err, koogallery.ErrBadUsageSignature)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.form, form)
		})
	}

	// The sorted forms of the table-order body are the vectors' bodies.
	top, err := koogallery.TopLevelSortedJSON([]byte(v114TopLevel))
	require.NoError(t, err)
	require.Equal(t, v114TopLevel, string(top))
	sorted, err := koogallery.CanonicalJSON([]byte(v114TopLevel))
	require.NoError(t, err)
	require.Equal(t, v114Sorted, string(sorted))
}

func TestTopLevelSortedJSON(t *testing.T) {
	got, err := koogallery.TopLevelSortedJSON([]byte(`{ "b": {"z": 1, "a": [ {"y":null,"x":1.50} ]}, "n": null, "a": "\u00e9" }`))
	require.NoError(t, err)
	require.Equal(t, `{"a":"é","b":{"z":1,"a":[{"y":null,"x":1.50}]}}`, string(got))
	_, err = koogallery.TopLevelSortedJSON([]byte(`{"a":{"b":1,"b":2}}`))
	require.ErrorIs(t, err, koogallery.ErrInvalidJSON, "a repeated key nested in an unsorted object")
}
