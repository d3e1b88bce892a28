package koogallery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The pay-per-use usage push (按需使用量推送, §6.2): the merchant reports
// metered usage of ON_DEMAND instances to the marketplace, which bills it.

// UsageDataPath is the usage push endpoint (§6.2).
const UsageDataPath = "/api/mkp-openapi-public/global/v1/isv/usage-data"

const (
	// MaxUsageRecords is the most records one push may carry (§6.2; an
	// older page said 100, §7.11). More are refused with MKT.9003.
	MaxUsageRecords = 1000
	// UsageMaxAge is how old a record's begin_time may be (§6.2). Older
	// records are refused with MKT.9004.
	UsageMaxAge = 21 * 24 * time.Hour
	// UsageValueScale is how many units make 1 in UsageValueFromUnits and
	// UsageValue.Units: the marketplace accepts at most 4 decimals.
	UsageValueScale = 10000
	// MaxUsageValue is the largest usage_value one record can carry: every
	// value is counted exactly in int64 units of 0.0001. A period's usage
	// beyond it cannot be pushed as one record.
	MaxUsageValue = "922337203685477.5807"
)

// The headers that carry the usage push's body signature (§6.2). Their
// names have no '_', so the AK/SK signer signs them as well.
const (
	usageHeaderSignature = "signature"
	usageHeaderTS        = "ts"
	usageHeaderNonce     = "nonce"
)

const (
	// usageIDMaxLen is the documented length of instance_id, metering_sn
	// and relate_pkg_instance (§6.2).
	usageIDMaxLen = 64
	// usageNonceMaxLen is the documented length of the nonce header.
	usageNonceMaxLen = 64
	// usageTSMaxLen is the documented length of the ts header.
	usageTSMaxLen = 20
	// canonicalMaxDepth bounds the nesting CanonicalJSON accepts. A usage
	// push is three levels deep; the bound only stops a hostile body from
	// exhausting the stack.
	canonicalMaxDepth = 100
)

var (
	// ErrBadUsageSignature is wrapped by every VerifyUsageBodySignature
	// rejection: a signature, ts or nonce header that is missing, repeated
	// or malformed, a signature that does not match, or a stale ts. It means
	// MKT.0102.
	ErrBadUsageSignature = errors.New("bad usage body signature")
	// ErrInvalidJSON is wrapped by CanonicalJSON (and so by
	// UsageBodySignature and VerifyUsageBodySignature) when the body is not
	// one well-formed JSON value. It means MKT.0101: the body, not the
	// signature, is at fault.
	ErrInvalidJSON = errors.New("body is not valid JSON")
)

// UsageRecord is one metering record of a usage push (UsagePushData, §6.2).
// The times are strings, so that a record read from a request can hold a
// malformed time for ValidateUsageRecord to report; FormatUsageTime writes
// them.
type UsageRecord struct {
	// InstanceID is the pay-per-use instance, as returned by newInstance.
	InstanceID string `json:"instance_id"`
	// RecordTime is when the record was generated, UTC yyyyMMdd'T'HHmmss'Z'.
	RecordTime string `json:"record_time"`
	// BeginTime and EndTime delimit the metered period, same format. The
	// marketplace keeps the first record of an (instance, begin, end) triple.
	BeginTime string `json:"begin_time"`
	EndTime   string `json:"end_time"`
	// UsageValue is the usage in the period: > 0, at most 4 decimals.
	UsageValue UsageValue `json:"usage_value"`
	// MeteringSN is the record's unique serial number, the marketplace's
	// deduplication key: a resent record must keep it.
	MeteringSN string `json:"metering_sn"`
	// RelatePkgInstance is the package instance the usage draws on; required
	// for stop-before-excess (用完即停) packages.
	RelatePkgInstance string `json:"relate_pkg_instance,omitempty"`
}

// UsagePush is the body of a usage push (§6.2).
type UsagePush struct {
	UsageRecords []UsageRecord `json:"usage_records"`
}

// FormatUsageTime writes t as the usage push's UTC yyyyMMdd'T'HHmmss'Z'.
func FormatUsageTime(t time.Time) string { return t.UTC().Format(LayoutOpenAPI) }

// ParseUsageTime reads a usage-push time. Only the exact 16-character form
// is accepted (no offset, no fractions), so that equal instants have equal
// text, which the marketplace's (instance, begin, end) deduplication relies
// on.
func ParseUsageTime(s string) (time.Time, error) {
	t, err := time.ParseInLocation(LayoutOpenAPI, s, time.UTC)
	if err != nil || t.Format(LayoutOpenAPI) != s {
		return time.Time{}, fmt.Errorf("time %q is not yyyyMMdd'T'HHmmss'Z'", s)
	}
	return t, nil
}

// UsageValue is a usage quantity: a JSON number kept exactly as written, so
// that it round-trips byte for byte (never through float64, which would turn
// a sum of 0.1 and 0.2 into 0.30000000000000004) and the body signature
// covers what the caller meant. The zero UsageValue is "absent" and encodes
// as null.
//
// Decoding accepts any JSON number, so that a server can report a bad value
// (MKT.0100) rather than a malformed body; Validate and Units apply the
// marketplace's rule: greater than 0, at most 4 decimals (trailing zeros do
// not count: 1.50000 is 1.5).
type UsageValue struct {
	text string // a syntactically valid JSON number, or "" when absent
	// quoted writes the number as a JSON string ("1.5"): the type one of
	// the marketplace's pages gives usage_value (contract §11.3).
	quoted bool
}

// UsageValueForm is the JSON type usage_value is sent as: the pages
// disagree (contract §11.3), so it is a setting, settled with the seller
// console's debugger or the first live push.
type UsageValueForm string

// The JSON types usage_value can be sent as.
const (
	// UsageValueNumber sends 1.5: the international page's Double.
	UsageValueNumber UsageValueForm = "number"
	// UsageValueString sends "1.5": the Chinese page's String(20), and the
	// old API's example.
	UsageValueString UsageValueForm = "string"
)

// ParseUsageValueForm reads "number" or "string".
func ParseUsageValueForm(s string) (UsageValueForm, error) {
	switch f := UsageValueForm(strings.ToLower(strings.TrimSpace(s))); f {
	case UsageValueNumber, UsageValueString:
		return f, nil
	}
	return "", fmt.Errorf("usage value form %q is neither number nor string", s)
}

// In returns v written in form f; an unknown form leaves it a number.
func (f UsageValueForm) In(v UsageValue) UsageValue {
	v.quoted = f == UsageValueString && v.text != ""
	return v
}

// Form is the JSON type v is written as.
func (v UsageValue) Form() UsageValueForm {
	if v.quoted {
		return UsageValueString
	}
	return UsageValueNumber
}

// ParseUsageValue reads a usage value written as a JSON number, e.g.
// "12.3456", and validates it (see Validate). The text is kept as written.
func ParseUsageValue(s string) (UsageValue, error) {
	if !isJSONNumber(s) {
		return UsageValue{}, fmt.Errorf("usage value %q is not a decimal number", s)
	}
	v := UsageValue{text: s}
	if err := v.Validate(); err != nil {
		return UsageValue{}, err
	}
	return v, nil
}

// ShortestUsageValue reads a valid usage value written in any form
// ("3.0000", "1.7500") and returns it in the shortest plain decimal form
// ("3", "1.75"): the form a marketplace that re-reads the body with Java
// and re-prints it before checking its signature prints back unchanged
// (§11.3), where "3.0000" would come back as "3.0".
func ShortestUsageValue(s string) (UsageValue, error) {
	v, err := ParseUsageValue(s)
	if err != nil {
		return UsageValue{}, err
	}
	units, err := v.Units()
	if err != nil {
		return UsageValue{}, err
	}
	return UsageValueFromUnits(units), nil
}

// UsageValueFromUnits returns units/UsageValueScale, i.e. units of 0.0001,
// written in the shortest plain decimal form (12.3456, 0.5, 3). Counting in
// integer units keeps sums exact. A non-positive units gives a value that
// Validate refuses.
func UsageValueFromUnits(units int64) UsageValue {
	var neg string
	u := uint64(units)
	if units < 0 {
		neg, u = "-", -u // two's complement, also right for math.MinInt64
	}
	s := neg + strconv.FormatUint(u/UsageValueScale, 10)
	if frac := u % UsageValueScale; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%04d", frac), "0")
	}
	return UsageValue{text: s}
}

// String returns the number as written, or "" for the zero UsageValue.
func (v UsageValue) String() string { return v.text }

// IsZero reports an absent value (not a value of 0, which is present and
// invalid).
func (v UsageValue) IsZero() bool { return v.text == "" }

// Validate applies the marketplace's rule (§6.2): present, greater than 0,
// at most 4 decimals, and small enough to count in int64 units of 0.0001.
func (v UsageValue) Validate() error {
	_, err := v.Units()
	return err
}

// Units returns the value in units of 0.0001 (see UsageValueScale), or the
// Validate error.
func (v UsageValue) Units() (int64, error) {
	if v.text == "" {
		return 0, errors.New("usage value is missing")
	}
	return decimalUnits(v.text)
}

// Add returns the exact sum of two valid values, in the shortest plain form.
func (v UsageValue) Add(w UsageValue) (UsageValue, error) {
	a, err := v.Units()
	if err != nil {
		return UsageValue{}, err
	}
	b, err := w.Units()
	if err != nil {
		return UsageValue{}, err
	}
	sum := a + b
	if sum < a { // both are positive, so a wrap-around makes sum smaller
		return UsageValue{}, errors.New("usage value sum out of range")
	}
	return UsageValueFromUnits(sum), nil
}

// MarshalJSON writes the number as written, in quotes when its form is
// UsageValueString, or null when absent.
func (v UsageValue) MarshalJSON() ([]byte, error) {
	switch {
	case v.text == "":
		return []byte("null"), nil
	case v.quoted:
		// A JSON number has nothing a JSON string must escape.
		return []byte(`"` + v.text + `"`), nil
	}
	return []byte(v.text), nil
}

// UnmarshalJSON keeps a JSON number as written, reads a JSON string that
// holds one as that number (remembering its form), and reads null as
// absent. The pages type usage_value both ways (contract §11.3), so a
// marketplace must take both; other types are refused.
func (v *UsageValue) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	switch {
	case s == "null":
		*v = UsageValue{}
		return nil
	case isJSONNumber(s):
		*v = UsageValue{text: s}
		return nil
	}
	var text string
	if err := json.Unmarshal(b, &text); err == nil && isJSONNumber(text) {
		*v = UsageValue{text: text, quoted: true}
		return nil
	}
	return errors.New("usage_value must be a JSON number, or a string holding one")
}

// isJSONNumber reports whether s is exactly one JSON number (RFC 8259):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	if n := digits(); n == 0 || (n > 1 && s[start] == '0') {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// decimalUnits converts a JSON number to units of 0.0001, refusing values
// that are not positive, have more than 4 decimals or do not fit an int64.
// It works on the digits, never on a float, and bounds the exponent so that
// 1e-999999999 costs nothing.
func decimalUnits(s string) (int64, error) {
	if !isJSONNumber(s) {
		return 0, errors.New("usage value is not a decimal number")
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expPart, _ := strings.Cut(strings.ToLower(s), "e")
	intPart, fracPart, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+fracPart, "0")
	scale := len(fracPart) // value = digits × 10^-scale × 10^exp
	if digits == "" {
		return 0, errors.New("usage value must be greater than 0")
	}
	if neg {
		return 0, errors.New("usage value must be greater than 0")
	}
	trimmed := strings.TrimRight(digits, "0")
	scale -= len(digits) - len(trimmed)
	digits = trimmed
	if expPart != "" {
		exp, err := strconv.Atoi(expPart)
		if err != nil || exp > 100 || exp < -100 {
			// Either far more than 4 decimals or far beyond int64.
			if strings.HasPrefix(expPart, "-") {
				return 0, errors.New("usage value has more than 4 decimals")
			}
			return 0, errors.New("usage value is too large")
		}
		scale -= exp
	}
	if scale > 4 {
		return 0, errors.New("usage value has more than 4 decimals")
	}
	// value × 10^4 = digits × 10^(4-scale), an integer.
	zeros := 4 - scale
	if len(digits)+zeros > 19 {
		return 0, errors.New("usage value is too large")
	}
	units, err := strconv.ParseInt(digits+strings.Repeat("0", zeros), 10, 64)
	if err != nil {
		return 0, errors.New("usage value is too large")
	}
	return units, nil
}

// UsageRecordError is a usage record or batch the marketplace refuses,
// with the open-API code it answers (§6.3): MKT.0100 for a missing or
// malformed field, an empty batch, end_time before begin_time or a bad
// usage_value; MKT.9003 for more than MaxUsageRecords records; MKT.9004 for
// a begin_time older than UsageMaxAge. (MKT.9001, an unknown instance, only
// the server can tell.) It is permanent: resending the same data fails the
// same way.
type UsageRecordError struct {
	Code    string // e.g. OpenAPIParamCheckFailed, OpenAPIRecordTooOld
	Index   int    // the record's position in the batch; -1 for the batch itself or a lone record
	Field   string // the JSON field at fault, e.g. "begin_time"; "usage_records" for the batch
	Message string // what is wrong, without the field's value
}

// Error implements error.
func (e *UsageRecordError) Error() string {
	prefix := "usage record"
	switch {
	case e.Index >= 0:
		prefix = "usage record " + strconv.Itoa(e.Index)
	case e.Field == "usage_records":
		prefix = "usage push"
	}
	return fmt.Sprintf("%s: %s: %s (%s)", prefix, e.Field, e.Message, e.Code)
}

// Retryable is false: the record will not become valid by resending it.
func (e *UsageRecordError) Retryable() bool { return false }

// ValidateUsageRecord checks one record as the marketplace documents it
// (§6.2, §6.3), at time now. Malformed-field problems are reported before
// age, so a record that is both gets MKT.0100. Not checked: whether the
// instance exists (the server's MKT.9001), duplicates (the server keeps the
// first) and future times (nothing documents them). The error is a
// *UsageRecordError with Index -1.
func ValidateUsageRecord(r UsageRecord, now time.Time) error {
	bad := func(code, field, msg string) error {
		return &UsageRecordError{Code: code, Index: -1, Field: field, Message: msg}
	}
	for _, f := range []struct {
		name, value string
		required    bool
	}{
		{"instance_id", r.InstanceID, true},
		{"metering_sn", r.MeteringSN, true},
		{"relate_pkg_instance", r.RelatePkgInstance, false},
	} {
		if f.required && strings.TrimSpace(f.value) == "" {
			return bad(OpenAPIParamCheckFailed, f.name, "is missing")
		}
		if len(f.value) > usageIDMaxLen {
			return bad(OpenAPIParamCheckFailed, f.name, fmt.Sprintf("is longer than %d characters", usageIDMaxLen))
		}
	}
	times := make([]time.Time, 3)
	for i, f := range []struct{ name, value string }{
		{"record_time", r.RecordTime}, {"begin_time", r.BeginTime}, {"end_time", r.EndTime},
	} {
		if f.value == "" {
			return bad(OpenAPIParamCheckFailed, f.name, "is missing")
		}
		t, err := ParseUsageTime(f.value)
		if err != nil {
			return bad(OpenAPIParamCheckFailed, f.name, "is not UTC yyyyMMdd'T'HHmmss'Z'")
		}
		times[i] = t
	}
	begin, end := times[1], times[2]
	if end.Before(begin) {
		return bad(OpenAPIParamCheckFailed, "end_time", "is before begin_time")
	}
	if err := r.UsageValue.Validate(); err != nil {
		return bad(OpenAPIParamCheckFailed, "usage_value", strings.TrimPrefix(err.Error(), "usage value "))
	}
	if now.Sub(begin) > UsageMaxAge {
		return bad(OpenAPIRecordTooOld, "begin_time", "is older than 21 days")
	}
	return nil
}

// ValidateUsageRecords checks a batch: 1 to MaxUsageRecords records, each
// valid per ValidateUsageRecord. It returns the first problem as a
// *UsageRecordError whose Index is the record's position (-1 for the batch
// size).
func ValidateUsageRecords(records []UsageRecord, now time.Time) error {
	switch {
	case len(records) == 0:
		return &UsageRecordError{Code: OpenAPIParamCheckFailed, Index: -1, Field: "usage_records", Message: "is empty"}
	case len(records) > MaxUsageRecords:
		return &UsageRecordError{Code: OpenAPITooManyRecords, Index: -1, Field: "usage_records",
			Message: fmt.Sprintf("has %d records, at most %d are allowed", len(records), MaxUsageRecords)}
	}
	for i, r := range records {
		if err := ValidateUsageRecord(r, now); err != nil {
			var ue *UsageRecordError
			if errors.As(err, &ue) {
				ue.Index = i
			}
			return err
		}
	}
	return nil
}

// CanonicalJSON returns the "natural-sorted" form of a JSON body that the
// usage push signs (§6.2). The documentation says only that the body is put
// in natural order before signing (§7.12); this is the interpretation
// (§11.2):
//
//   - object keys sorted recursively, by the bytes of their UTF-8 text
//     (the same as Java's String order for keys without characters beyond
//     U+FFFF, and the usage push's keys are ASCII);
//   - arrays keep their order: the order of records is data;
//   - compact: no whitespace between tokens;
//   - numbers exactly as written (1.50 stays 1.50, 1e2 stays 1e2), never
//     through a float;
//   - strings re-escaped as encoding/json does with SetEscapeHTML(false):
//     '<', '>', '&' and non-ASCII characters literal; '"', '\\' and control
//     characters escaped (\n, \r, \t, \b, \f, else \u00XX); U+2028, U+2029
//     and invalid UTF-8 as \u2028, \u2029, \ufffd. IDs and times are ASCII,
//     so a real body only meets the first two rules;
//   - literals true, false, null unchanged.
//
// A body that is not exactly one JSON value, nests deeper than 100 levels or
// repeats a key in one object (which would make the order ambiguous) is
// refused with an error wrapping ErrInvalidJSON.
func CanonicalJSON(body []byte) ([]byte, error) {
	return rewriteJSON(body, canonicalForm{sortDepth: canonicalMaxDepth})
}

// TopLevelSortedJSON writes body as Huawei's SaaS sample re-writes the
// bodies it verifies (contract §8.1): the top-level object's keys sorted and
// its null members dropped, nested objects with their keys in the order
// received; otherwise as CanonicalJSON (compact, numbers as written,
// strings re-escaped). A marketplace may check a usage push's signature
// over this form (contract §11.2), so a verifier of usage pushes accepts it.
// Errors are CanonicalJSON's.
func TopLevelSortedJSON(body []byte) ([]byte, error) {
	return rewriteJSON(body, canonicalForm{sortDepth: 1, dropTopNulls: true})
}

// canonicalForm says how rewriteJSON writes objects: the keys of objects
// nested less than sortDepth deep sorted (the top level is depth 0), and
// the top level's null members dropped or kept.
type canonicalForm struct {
	sortDepth    int
	dropTopNulls bool
}

func rewriteJSON(body []byte, form canonicalForm) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out bytes.Buffer
	out.Grow(len(body))
	if err := canonicalValue(dec, &out, 0, form); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the top-level value", ErrInvalidJSON)
	}
	return out.Bytes(), nil
}

func canonicalValue(dec *json.Decoder, out *bytes.Buffer, depth int, form canonicalForm) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= canonicalMaxDepth {
			return fmt.Errorf("nested deeper than %d levels", canonicalMaxDepth)
		}
		switch t {
		case '{':
			return canonicalObject(dec, out, depth, form)
		case '[':
			out.WriteByte('[')
			for first := true; dec.More(); first = false {
				if !first {
					out.WriteByte(',')
				}
				if err := canonicalValue(dec, out, depth+1, form); err != nil {
					return err
				}
			}
			if err := closing(dec, ']'); err != nil {
				return err
			}
			out.WriteByte(']')
			return nil
		default:
			return fmt.Errorf("unexpected %q", rune(t))
		}
	case string:
		writeJSONString(out, t)
	case json.Number:
		out.WriteString(t.String())
	case bool:
		out.WriteString(strconv.FormatBool(t))
	case nil:
		out.WriteString("null")
	default:
		return fmt.Errorf("unexpected token %T", tok)
	}
	return nil
}

func canonicalObject(dec *json.Decoder, out *bytes.Buffer, depth int, form canonicalForm) error {
	type member struct {
		key   string
		value []byte
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("object key is not a string")
		}
		// A repeated key would make the order, and which value counts,
		// ambiguous.
		if seen[key] {
			return fmt.Errorf("key %q repeated in one object", key)
		}
		seen[key] = true
		var v bytes.Buffer
		if err := canonicalValue(dec, &v, depth+1, form); err != nil {
			return err
		}
		if depth == 0 && form.dropTopNulls && v.String() == "null" {
			continue
		}
		members = append(members, member{key, v.Bytes()})
	}
	if err := closing(dec, '}'); err != nil {
		return err
	}
	if depth < form.sortDepth {
		slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	}
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		writeJSONString(out, m.key)
		out.WriteByte(':')
		out.Write(m.value)
	}
	out.WriteByte('}')
	return nil
}

// closing consumes the delimiter that ends an object or array.
func closing(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q", rune(want))
	}
	return nil
}

// writeJSONString escapes s as encoding/json does without HTML escaping.
func writeJSONString(out *bytes.Buffer, s string) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	out.Truncate(out.Len() - 1)
}

// UsageBodySignature returns the signature header of a usage push (§6.2):
// base64(HMAC-SHA256(key=accessKey, "ts={ts}&nonce={nonce}&body={CanonicalJSON(body)}")).
// accessKey is the merchant key bound to 基础接口 (§2.1), not the AK/SK pair;
// ts is Unix milliseconds as sent in the ts header. The error wraps
// ErrInvalidJSON when body is not JSON.
func UsageBodySignature(accessKey, ts, nonce string, body []byte) (string, error) {
	if accessKey == "" {
		return "", errors.New("usage body signature: empty access key")
	}
	mac, err := usageBodyMAC(accessKey, ts, nonce, body)
	if err != nil {
		return "", fmt.Errorf("usage body signature: %w", err)
	}
	return base64.StdEncoding.EncodeToString(mac), nil
}

func usageBodyMAC(accessKey, ts, nonce string, body []byte) ([]byte, error) {
	canonical, err := CanonicalJSON(body)
	if err != nil {
		return nil, err
	}
	return usageMAC(accessKey, ts, nonce, canonical), nil
}

// usageMAC is the HMAC of the string signed, over text exactly as given.
func usageMAC(accessKey, ts, nonce string, text []byte) []byte {
	mac := hmac.New(sha256.New, []byte(accessKey))
	io.WriteString(mac, "ts="+ts+"&nonce="+nonce+"&body=")
	mac.Write(text)
	return mac.Sum(nil)
}

// UsageSignatureForm names the text of a usage push's body that its
// signature was found to cover. "Naturally sorted" is not defined further
// (contract §11.1), so a verifier accepts any of the three readings and
// says which one matched: the first, in this order.
type UsageSignatureForm string

// The forms of a usage push's body a signature may cover.
const (
	// UsageSignedRaw: the bytes as received. A client that sends what it
	// signed, as this server does (contract §11.2), matches it.
	UsageSignedRaw UsageSignatureForm = "raw"
	// UsageSignedTopLevelSorted: TopLevelSortedJSON of the body, what
	// Huawei's SaaS sample verifies (contract §8.1).
	UsageSignedTopLevelSorted UsageSignatureForm = "top-level-sorted"
	// UsageSignedSorted: CanonicalJSON of the body, keys sorted at every
	// level.
	UsageSignedSorted UsageSignatureForm = "sorted"
)

// VerifyUsageBodySignature checks the signature, ts and nonce headers of a
// usage push against its body, as the marketplace does; the mock open API
// and the emulator use it. The signature may cover the raw bytes, the
// top-level-sorted form or the fully sorted form of the body (see
// UsageSignatureForm); the form that matched is returned. Whatever the
// form, the body must be one JSON value without repeated keys, since the
// marketplace reads it as JSON. Each header must occur exactly once; ts must be
// Unix milliseconds within window of now, either way (non-positive window:
// DefaultAKSKMaxSkew, the gateway's tolerance, since none is documented for
// ts); nonce at most 64 visible ASCII characters; signature padded standard
// base64 of the HMAC, compared in constant time. Nonces are not remembered:
// a replay inside the window can only resend records that metering_sn
// deduplicates.
//
// Rejections wrap ErrBadUsageSignature (MKT.0102). A body that is not JSON,
// which cannot be canonicalised and so not verified, returns an error
// wrapping ErrInvalidJSON (MKT.0101) instead. Errors never contain the key
// or the expected signature.
func VerifyUsageBodySignature(header http.Header, accessKey string, body []byte, now time.Time, window time.Duration) (UsageSignatureForm, error) {
	ts, nonce, sig, err := usageSignatureHeaders(header, accessKey, now, window)
	if err != nil {
		return "", err
	}
	sorted, err := CanonicalJSON(body)
	if err != nil {
		return "", fmt.Errorf("verify usage body signature: %w", err)
	}
	topSorted, err := TopLevelSortedJSON(body)
	if err != nil {
		return "", fmt.Errorf("verify usage body signature: %w", err)
	}
	for _, f := range []struct {
		form UsageSignatureForm
		text []byte
	}{{UsageSignedRaw, body}, {UsageSignedTopLevelSorted, topSorted}, {UsageSignedSorted, sorted}} {
		if hmac.Equal(sig, usageMAC(accessKey, ts, nonce, f.text)) {
			return f.form, nil
		}
	}
	return "", fmt.Errorf("%w: signature mismatch (raw, top-level-sorted and sorted forms tried)", ErrBadUsageSignature)
}

// usageSignatureHeaders reads and checks the signature, ts and nonce
// headers of a usage push, ts against the clock.
func usageSignatureHeaders(header http.Header, accessKey string, now time.Time, window time.Duration) (ts, nonce string, sig []byte, err error) {
	if accessKey == "" {
		return "", "", nil, errors.New("verify usage body signature: verifier has no access key")
	}
	if window <= 0 {
		window = DefaultAKSKMaxSkew
	}
	bad := func(format string, args ...any) (string, string, []byte, error) {
		return "", "", nil, fmt.Errorf("%w: "+format, append([]any{ErrBadUsageSignature}, args...)...)
	}
	var values [3]string
	for i, name := range []string{usageHeaderSignature, usageHeaderTS, usageHeaderNonce} {
		vs := header.Values(name)
		switch {
		case len(vs) == 0 || vs[0] == "":
			return bad("%s header is missing", name)
		case len(vs) > 1:
			return bad("%s header is repeated", name)
		}
		values[i] = vs[0]
	}
	sigText, ts, nonce := values[0], values[1], values[2]
	sig, problem := decodeSignatureBase64(usageHeaderSignature, sigText)
	if problem != "" {
		return bad("%s", problem)
	}
	if len(ts) > usageTSMaxLen || strings.Trim(ts, "0123456789") != "" {
		return bad("ts is not Unix milliseconds")
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return bad("ts is out of range")
	}
	if len(nonce) > usageNonceMaxLen || strings.IndexFunc(nonce, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return bad("nonce must be at most %d visible ASCII characters", usageNonceMaxLen)
	}
	if skew := now.Sub(time.UnixMilli(ms)); skew > window || skew < -window {
		return bad("ts is %s from the server clock (allowed %s)", skew.Round(time.Millisecond), window)
	}
	return ts, nonce, sig, nil
}

// PushUsage sends usage records to the marketplace (§6.2). accessKey is the
// merchant key bound to 基础接口 that signs the body; the client's AK/SK sign
// the request as for every open-API call.
//
// The records are first checked with ValidateUsageRecords at the client's
// clock: the marketplace validates asynchronously and may answer MKT.0000 for
// records it later drops (§6.2), so a bad record is refused here, as a
// *UsageRecordError, before anything is sent. The body is sent in canonical
// (sorted) form, so the bytes signed are the bytes sent; each usage_value
// is written in the form its UsageValue carries (UsageValueForm.In).
//
// Success is HTTP 200 with error_code (or resultCode) MKT.0000. Any other
// answer is an *OpenAPIError, an unreachable marketplace a *TransportError;
// IsRetryable classifies both. Resending a batch is safe: the marketplace
// deduplicates by metering_sn and keeps the first record of an (instance,
// begin, end) triple.
func (c *OpenAPIClient) PushUsage(ctx context.Context, accessKey string, records []UsageRecord) error {
	if accessKey == "" {
		return errors.New("push usage: the body-signing access key is empty")
	}
	now := c.now()
	if err := ValidateUsageRecords(records, now); err != nil {
		return fmt.Errorf("push usage: %w", err)
	}
	raw, err := json.Marshal(UsagePush{UsageRecords: records})
	if err != nil {
		return fmt.Errorf("push usage: encode %d records: %w", len(records), err)
	}
	body, err := CanonicalJSON(raw)
	if err != nil {
		return fmt.Errorf("push usage: canonicalise body: %w", err)
	}
	var nb [16]byte
	rand.Read(nb[:]) // never fails: crypto/rand crashes the program instead
	nonce := hex.EncodeToString(nb[:])
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	// Signed over exactly the bytes sent: a verifier that hashes the raw
	// body, and one that sorts it first, see the same text (contract §11.2).
	sig := base64.StdEncoding.EncodeToString(usageMAC(accessKey, ts, nonce, body))
	headers := map[string]string{usageHeaderSignature: sig, usageHeaderTS: ts, usageHeaderNonce: nonce}
	status, resp, err := c.do(ctx, http.MethodPost, UsageDataPath, nil, body, headers)
	if err != nil {
		return fmt.Errorf("push usage (%d records): %w", len(records), err)
	}
	oe := parseOpenAPIError(status, resp)
	if status == http.StatusOK && oe.Code == OpenAPISuccess {
		return nil
	}
	if status == http.StatusOK && oe.Code == "" {
		// A 200 without a result code is not the documented answer; as for
		// Query Order it is not retried automatically.
		oe.Message = "answer has no error_code: " + oe.Message
	}
	return fmt.Errorf("push usage (%d records): %w", len(records), oe)
}

// SplitUsageValue splits a usage total too large for one record (more than
// MaxUsageValue; a decimal with at most 4 decimals, of any size) into the
// fewest parts that each fit one record, as equal as units of 0.0001 allow
// (the larger parts first). Their exact sum is the total.
func SplitUsageValue(total string) ([]UsageValue, error) {
	units, ok := new(big.Rat).SetString(total)
	if !ok || units.Sign() <= 0 {
		return nil, fmt.Errorf("usage total %q is not a positive decimal", total)
	}
	units.Mul(units, big.NewRat(UsageValueScale, 1))
	if !units.IsInt() {
		return nil, fmt.Errorf("usage total %q has more than 4 decimals", total)
	}
	n := units.Num()
	limit := big.NewInt(math.MaxInt64)
	parts := new(big.Int).Add(n, new(big.Int).Sub(limit, big.NewInt(1)))
	parts.Quo(parts, limit) // ceil(n / limit)
	if !parts.IsInt64() || parts.Int64() > 1_000_000 {
		return nil, fmt.Errorf("usage total %q would need too many records", total)
	}
	k := parts.Int64()
	each, rest := new(big.Int).QuoRem(n, parts, new(big.Int))
	out := make([]UsageValue, 0, k)
	for i := range k {
		u := each.Int64()
		if big.NewInt(i).Cmp(rest) < 0 {
			u++
		}
		out = append(out, UsageValueFromUnits(u))
	}
	return out, nil
}
