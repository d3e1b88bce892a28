package koogallery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// CanonicalForm says how a body is canonicalised before it is signed
// (§8.2). Huawei's sample re-reads the body into a Java map, sorts it with
// a TreeMap, drops null members and re-serialises it with Jackson; what the
// map holds differs between the two interfaces.
type CanonicalForm int

const (
	// BasicCanonical is the basic interface's form: the sample binds the
	// body to Map<String,String>, so top-level numbers and booleans become
	// strings, written as they were received ("1", "1.50", "true").
	BasicCanonical CanonicalForm = iota
	// KitCanonical is the 联营 kit's form: the sample binds the body to
	// Map<String,Object>, so values keep their JSON type; numbers are
	// written as Java prints them (integers as received, other numbers
	// as Double.toString does).
	KitCanonical
)

// ErrNotCanonicalisable means a body has no canonical form: it is not one
// JSON object of valid UTF-8, or it holds a number Java cannot represent.
var ErrNotCanonicalisable = errors.New("body has no canonical form")

// CanonicalBody returns the canonical form of a request body (§8.2): the
// top-level members sorted by name as Java's String.compareTo orders them
// (UTF-16 code units), top-level nulls dropped, compact, with
// Jackson's escaping: \" \\ \b \t \n \f \r, other control characters as
// \u00XX in upper-case hex, everything else (non-ASCII, '/', '<', U+2028)
// written as is. Nested objects and arrays keep the order in which they
// were received, and their values their JSON type.
//
// A member repeated in the body appears once, with its last value at the
// place of its first, as a Java map keeps it; such a body is refused when
// it is read (ParseRequest), so this only decides 000001 against 000002.
//
// encoding/json is not used to write it on purpose: it escapes HTML
// characters and U+2028/U+2029 and writes \u00xx in lower case, so its
// bytes would differ from the marketplace's and the signature would fail.
func CanonicalBody(body []byte, form CanonicalForm) ([]byte, error) {
	root, err := parseJSONObject(body)
	if err != nil {
		return nil, err
	}
	members := slices.Clone(dedupMembers(root.members))
	members = slices.DeleteFunc(members, func(m jsonMember) bool { return m.value.kind == jsonNull })
	slices.SortStableFunc(members, func(a, b jsonMember) int { return compareUTF16(a.name, b.name) })

	out := make([]byte, 0, len(body)+16)
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendJacksonString(out, m.name)
		out = append(out, ':')
		v := m.value
		if form == BasicCanonical && (v.kind == jsonNumber || v.kind == jsonBool) {
			// Map<String,String>: Jackson binds a scalar as its text.
			v = jsonValue{kind: jsonString, text: v.text}
		}
		if out, err = appendCanonicalValue(out, v, form); err != nil {
			return nil, err
		}
	}
	return append(out, '}'), nil
}

// jsonKind is the type of a parsed JSON value.
type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

// jsonValue is a JSON value read with every member name exactly as sent
// and every member in the order received, repeats included: the tree both
// the canonical form and the typed requests are made from.
type jsonValue struct {
	kind jsonKind
	// text is a string's content, a number's literal as received, or
	// "true"/"false".
	text    string
	items   []jsonValue  // an array's elements
	members []jsonMember // an object's members, in order
}

// jsonMember is one member of an object.
type jsonMember struct {
	name  string
	value jsonValue
}

// member returns the last value named exactly name, as Java reads a
// repeated member.
func (v jsonValue) member(name string) (jsonValue, bool) {
	for i := len(v.members) - 1; i >= 0; i-- {
		if v.members[i].name == name {
			return v.members[i].value, true
		}
	}
	return jsonValue{}, false
}

// maxJSONDepth bounds nesting, so that a hostile body cannot exhaust the
// stack of the recursive writers (the documented bodies nest 3 deep).
const maxJSONDepth = 64

// parseJSONObject reads body as exactly one JSON object of valid UTF-8.
func parseJSONObject(body []byte) (jsonValue, error) {
	if !utf8.Valid(body) {
		// json.Decoder would replace invalid bytes silently; Jackson refuses them.
		return jsonValue{}, fmt.Errorf("%w: not valid UTF-8", ErrNotCanonicalisable)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return jsonValue{}, fmt.Errorf("%w: not JSON", ErrNotCanonicalisable)
	}
	if tok != json.Delim('{') {
		return jsonValue{}, fmt.Errorf("%w: not a JSON object", ErrNotCanonicalisable)
	}
	root, err := readJSONObject(dec, 1)
	if err != nil {
		return jsonValue{}, fmt.Errorf("%w: %w", ErrNotCanonicalisable, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return jsonValue{}, fmt.Errorf("%w: data after the JSON object", ErrNotCanonicalisable)
	}
	return root, nil
}

// readJSONValue reads the value that starts with tok.
func readJSONValue(dec *json.Decoder, tok json.Token, depth int) (jsonValue, error) {
	switch t := tok.(type) {
	case nil:
		return jsonValue{kind: jsonNull}, nil
	case bool:
		return jsonValue{kind: jsonBool, text: strconv.FormatBool(t)}, nil
	case json.Number:
		return jsonValue{kind: jsonNumber, text: string(t)}, nil
	case string:
		return jsonValue{kind: jsonString, text: t}, nil
	case json.Delim:
		if depth >= maxJSONDepth {
			return jsonValue{}, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
		}
		if t == '{' {
			return readJSONObject(dec, depth+1)
		}
		return readJSONArray(dec, depth+1)
	}
	return jsonValue{}, fmt.Errorf("unexpected token %T", tok)
}

func readJSONObject(dec *json.Decoder, depth int) (jsonValue, error) {
	obj := jsonValue{kind: jsonObject}
	for {
		tok, err := dec.Token()
		if err != nil {
			return jsonValue{}, err
		}
		if tok == json.Delim('}') {
			return obj, nil
		}
		name, ok := tok.(string)
		if !ok {
			return jsonValue{}, errors.New("object member without a name")
		}
		if tok, err = dec.Token(); err != nil {
			return jsonValue{}, err
		}
		v, err := readJSONValue(dec, tok, depth)
		if err != nil {
			return jsonValue{}, err
		}
		obj.members = append(obj.members, jsonMember{name: name, value: v})
	}
}

func readJSONArray(dec *json.Decoder, depth int) (jsonValue, error) {
	arr := jsonValue{kind: jsonArray}
	for {
		tok, err := dec.Token()
		if err != nil {
			return jsonValue{}, err
		}
		if tok == json.Delim(']') {
			if arr.items == nil {
				arr.items = []jsonValue{}
			}
			return arr, nil
		}
		v, err := readJSONValue(dec, tok, depth)
		if err != nil {
			return jsonValue{}, err
		}
		arr.items = append(arr.items, v)
	}
}

// dedupMembers keeps one member per name, as a Java map reads an object: at
// the place of the first, with the value of the last.
func dedupMembers(members []jsonMember) []jsonMember {
	seen := make(map[string]int, len(members))
	out := make([]jsonMember, 0, len(members))
	for _, m := range members {
		if i, ok := seen[m.name]; ok {
			out[i].value = m.value
			continue
		}
		seen[m.name] = len(out)
		out = append(out, m)
	}
	return out
}

// appendCanonicalValue writes a nested value as Jackson writes what a Java
// map holds: objects as LinkedHashMaps (received order, repeats merged),
// arrays in order, numbers as Java prints them.
func appendCanonicalValue(out []byte, v jsonValue, form CanonicalForm) ([]byte, error) {
	var err error
	switch v.kind {
	case jsonNull:
		return append(out, "null"...), nil
	case jsonBool:
		return append(out, v.text...), nil
	case jsonString:
		return appendJacksonString(out, v.text), nil
	case jsonNumber:
		return appendJavaNumber(out, v.text)
	case jsonArray:
		out = append(out, '[')
		for i, item := range v.items {
			if i > 0 {
				out = append(out, ',')
			}
			if out, err = appendCanonicalValue(out, item, form); err != nil {
				return nil, err
			}
		}
		return append(out, ']'), nil
	default:
		out = append(out, '{')
		for i, m := range dedupMembers(v.members) {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendJacksonString(out, m.name)
			out = append(out, ':')
			if out, err = appendCanonicalValue(out, m.value, form); err != nil {
				return nil, err
			}
		}
		return append(out, '}'), nil
	}
}

// appendJacksonString writes s as a JSON string the way Jackson's default
// generator does.
func appendJacksonString(out []byte, s string) []byte {
	const hexDigits = "0123456789ABCDEF"
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			out = append(out, '\\', '"')
		case c == '\\':
			out = append(out, '\\', '\\')
		case c == '\b':
			out = append(out, '\\', 'b')
		case c == '\t':
			out = append(out, '\\', 't')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\f':
			out = append(out, '\\', 'f')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		default:
			out = append(out, c) // UTF-8 bytes pass through unchanged
		}
	}
	return append(out, '"')
}

// appendJavaNumber writes a JSON number as Jackson writes the Java value
// it was read into: an integer literal becomes an Integer, Long or
// BigInteger and prints as its digits ("-0" as "0"); any other number
// becomes a Double and prints as Double.toString does ("1e2" as "100.0").
func appendJavaNumber(out []byte, literal string) ([]byte, error) {
	if !strings.ContainsAny(literal, ".eE") {
		if strings.TrimLeft(literal, "-0") == "" {
			return append(out, '0'), nil
		}
		return append(out, literal...), nil
	}
	f, err := strconv.ParseFloat(literal, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: number %s is out of a Java double's range", ErrNotCanonicalisable, literal)
	}
	return append(out, javaDoubleString(f)...), nil
}

// javaDoubleString formats f as Java's Double.toString: the shortest digits
// that read back as f; plain notation with at least one decimal for
// 10^-3 <= |f| < 10^7, else d.dddE±n.
func javaDoubleString(f float64) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	plain := f >= 1e-3 && f < 1e7
	// Shortest round-trip digits and the decimal exponent: d.ddd e±x. In
	// scientific notation Java prints at least two significant digits, and
	// when one would do it takes the two closest to the exact value
	// (4.9E-324, not 5.0E-324).
	sci := strconv.FormatFloat(f, 'e', -1, 64)
	if !plain && !strings.Contains(sci, ".") {
		sci = strconv.FormatFloat(f, 'e', 1, 64)
	}
	mantissa, expText, _ := strings.Cut(sci, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mantissa, ".", "", 1)
	if plain {
		var s string
		switch {
		case exp < 0:
			s = "0." + strings.Repeat("0", -exp-1) + digits
		case exp+1 >= len(digits):
			s = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
		default:
			s = digits[:exp+1] + "." + digits[exp+1:]
		}
		return sign + s
	}
	frac := digits[1:]
	if frac == "" {
		frac = "0"
	}
	return sign + digits[:1] + "." + frac + "E" + strconv.Itoa(exp)
}

// compareUTF16 orders strings as Java's String.compareTo: by UTF-16 code
// units, which differs from byte order only for characters above U+FFFF
// against U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	if isASCII(a) && isASCII(b) {
		return strings.Compare(a, b)
	}
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
