package koogallery

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// v1Reader reads the parameters of one V1 call and keeps the first
// problem, so that a request's read method is a plain list of its fields.
// Messages name the field, from the code, and never quote a value.
type v1Reader struct {
	params url.Values
	err    *RequestError
}

func (r *v1Reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = invalid(format, args...)
	}
}

// str returns a parameter's value ("" when absent or empty). A parameter
// given twice is refused: which value was meant cannot be known (and the
// verifier refuses it too). A required one must not be blank.
func (r *v1Reader) str(name string, maxLen int, required bool) string {
	values := r.params[name]
	switch {
	case r.err != nil:
		return ""
	case len(values) > 1:
		r.fail("field %s is repeated", name)
		return ""
	case len(values) == 0 || strings.TrimSpace(values[0]) == "":
		if required {
			r.fail("missing field %s", name)
		}
		return ""
	case len(values[0]) > maxLen:
		r.fail("field %s is longer than %d characters", name, maxLen)
		return ""
	}
	return values[0]
}

// instanceID reads a field that names an instance (ValidInstanceID).
func (r *v1Reader) instanceID(name string, required bool) string {
	id := r.str(name, maxIDLen, required)
	if id != "" && !ValidInstanceID(id) {
		r.fail("field %s must be letters, digits, '-', '_' or '.', starting with a letter or a digit", name)
		return ""
	}
	return id
}

// flag reads a 0/1 flag (testFlag, trialFlag, trialToFormal): absent,
// empty or "0" is false, "1" true.
func (r *v1Reader) flag(name string) bool {
	switch r.str(name, maxV1FlagLen, false) {
	case "", "0":
		return false
	case "1":
		return true
	}
	r.fail("field %s must be \"0\" or \"1\"", name)
	return false
}

// time reads a UTC time of 14 or 17 digits (ParseTime), as sent and
// parsed.
func (r *v1Reader) time(name string, required bool) (string, time.Time) {
	s := r.str(name, maxV1TimeLen, required)
	if s == "" {
		return "", time.Time{}
	}
	t, err := ParseTime(s)
	if err != nil {
		r.fail("field %s must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC)", name)
		return "", time.Time{}
	}
	return s, t
}

// integer reads a non-negative integer of at most maxV1IntDigits digits
// (the documented Integer 7 of the linear attributes); 0 when absent.
func (r *v1Reader) integer(name string) int {
	s := r.str(name, maxV1IntDigits, false)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if !allDigits(s) || err != nil {
		r.fail("field %s must be a whole number", name)
		return 0
	}
	return n
}

// v1Amount is a BigDecimal of at most 3 decimals, as orderAmount is
// documented; the sign is allowed only where a refund may be sent.
var v1Amount = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,3})?$`)

// amount reads an orderAmount, kept as sent so that no digit is lost.
func (r *v1Reader) amount(name string, negativeOK bool) string {
	s := r.str(name, maxV1AmountLen, false)
	switch {
	case s == "":
		return ""
	case !v1Amount.MatchString(s):
		r.fail("field %s must be an amount with at most 3 decimals", name)
		return ""
	case strings.HasPrefix(s, "-") && !negativeOK:
		r.fail("field %s must not be negative", name)
		return ""
	}
	return s
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// V1ExtendParam is one of the buyer's custom fields (saasExtendParams).
type V1ExtendParam struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// decodeExtendParams reads base64 of a JSON list of name/value pairs,
// URL-decoding once more if the value as received is not base64 (the pages
// write base64Decode(urlDecode(value)), and the query is decoded once
// already).
func decodeExtendParams(s string) ([]V1ExtendParam, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		unescaped, uerr := url.QueryUnescape(s)
		if uerr != nil {
			return nil, fmt.Errorf("saasExtendParams is not base64")
		}
		if raw, err = base64.StdEncoding.DecodeString(unescaped); err != nil {
			return nil, fmt.Errorf("saasExtendParams is not base64")
		}
	}
	var params []V1ExtendParam
	if err := json.Unmarshal(raw, &params); err != nil {
		return nil, fmt.Errorf("saasExtendParams is not a JSON list of name/value pairs")
	}
	return params, nil
}

// V1Query writes a V1 request back as the query parameters it was read
// from (authToken aside): every field under its query tag, empty strings,
// zero integers and false flags left out, flags as "1". It is how the
// emulator and the tests send V1 calls (SignedV1Query signs the result).
func V1Query(req V1Request) url.Values {
	q := url.Values{"activity": {string(req.V1Activity())}}
	appendV1Fields(q, reflect.ValueOf(req).Elem())
	return q
}

func appendV1Fields(q url.Values, v reflect.Value) {
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Tag.Get("query")
		if name == "" {
			if f.Anonymous && fv.Kind() == reflect.Struct {
				appendV1Fields(q, fv)
			}
			continue
		}
		switch fv.Kind() {
		case reflect.String:
			if fv.String() != "" {
				q.Set(name, fv.String())
			}
		case reflect.Int:
			if fv.Int() != 0 {
				q.Set(name, strconv.FormatInt(fv.Int(), 10))
			}
		case reflect.Bool:
			if fv.Bool() {
				q.Set(name, "1")
			}
		}
	}
}

// v1Fields are the parameter names the V1 requests are read from, which a
// message may name: the query tags of every V1 request, and activity and
// authToken.
var v1Fields = func() map[string]bool {
	fields := map[string]bool{"activity": true, ParamAuthToken: true}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if name := f.Tag.Get("query"); name != "" {
				fields[name] = true
			} else if f.Anonymous {
				walk(f.Type)
			}
		}
	}
	for _, a := range V1Activities {
		walk(reflect.TypeOf(newV1Request(a)).Elem())
	}
	return fields
}()

// isV1Field reports whether an error message may quote a parameter's name:
// only the names this package reads, never the caller's own.
func isV1Field(name string) bool { return v1Fields[name] }
