package koogallery

import (
	"encoding/json"
	"reflect"
	"strings"
	"unicode"
)

// Reading a body exactly. encoding/json matches member names to fields
// case-insensitively and lets a repeated member overwrite the first, so
// {"activity":"queryInstance","ACTIVITY":"releaseInstance"} would be applied
// as a release while the marketplace's Java reads a query. A request body is
// therefore read into a jsonValue tree first: bodies whose members repeat, or
// differ only in case, are refused (namesProblem), and the typed request is
// decoded from a copy that holds only the members whose names are exactly
// those of its fields (exactJSON), so what was signed is what is applied.

// namesProblem returns why v's member names are ambiguous, or "": a name
// that appears twice in one object, or two names that differ only in case
// (as encoding/json folds them), at any depth. known names the fields the
// server reads, which the message may quote; other names stay unechoed.
func namesProblem(v jsonValue, known func(string) bool) string {
	switch v.kind {
	case jsonArray:
		for _, item := range v.items {
			if p := namesProblem(item, known); p != "" {
				return p
			}
		}
	case jsonObject:
		exact := make(map[string]bool, len(v.members))
		folded := make(map[string]string, len(v.members))
		for _, m := range v.members {
			if exact[m.name] {
				if known(m.name) {
					return "member " + m.name + " appears more than once"
				}
				return "a member appears more than once"
			}
			exact[m.name] = true
			key := foldName(m.name)
			if other, ok := folded[key]; ok {
				for _, name := range []string{other, m.name} {
					if known(name) {
						return "a member's name differs from " + name + " only in case"
					}
				}
				return "two members' names differ only in case"
			}
			folded[key] = m.name
			if p := namesProblem(m.value, known); p != "" {
				return p
			}
		}
	}
	return ""
}

// foldName maps every name that strings.EqualFold (and encoding/json's
// matching) treats as equal to one key: each rune becomes the smallest
// rune of its case-folding orbit.
func foldName(name string) string {
	var b strings.Builder
	for _, r := range name {
		smallest := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			smallest = min(smallest, f)
		}
		b.WriteRune(smallest)
	}
	return b.String()
}

// decodeExact decodes v into target (a pointer), reading only the members
// whose names are exactly those of target's fields, at every depth.
func decodeExact(v jsonValue, target any) error {
	return json.Unmarshal(appendExact(nil, v, reflect.TypeOf(target)), target)
}

// appendExact writes v as JSON for decoding into a value of type t: an
// object bound to a struct keeps only the members named exactly as one of
// the struct's fields (json tags); a list bound to a struct is filtered
// element by element (the lenient object-or-list fields); anything else, and
// everything under a nil type, is written as received. Members are distinct
// by then (namesProblem), so their order does not matter.
func appendExact(out []byte, v jsonValue, t reflect.Type) []byte {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch v.kind {
	case jsonObject:
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		out = append(out, '{')
		first := true
		for _, m := range v.members {
			var ft reflect.Type
			if fields != nil {
				var ok bool
				if ft, ok = fields[m.name]; !ok {
					continue
				}
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = appendJacksonString(out, m.name)
			out = append(out, ':')
			out = appendExact(out, m.value, ft)
		}
		return append(out, '}')
	case jsonArray:
		elem := t
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		out = append(out, '[')
		for i, item := range v.items {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendExact(out, item, elem)
		}
		return append(out, ']')
	case jsonString:
		return appendJacksonString(out, v.text)
	case jsonNull:
		return append(out, "null"...)
	default: // numbers and booleans, as received
		return append(out, v.text...)
	}
}

// jsonFields maps the JSON names of a struct's fields (their json tags, or
// the Go names without one) to the fields' types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}
