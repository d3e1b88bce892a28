package api

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/internal/fault"
)

// maxIDBytes is the longest instance or order ID there can be: the
// marketplace's IDs are at most 64 characters (contract §1.2–§1.9), and
// newInstance refuses a longer businessId, so no longer instance exists.
const maxIDBytes = 64

// storable reports whether PostgreSQL can hold s in a text column: it
// refuses NUL and invalid UTF-8 with an error that would otherwise reach
// the caller as "database unavailable" (503, or 000005 which the
// marketplace retries for hours), although retrying can never help.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// validID reports whether s can name an instance or an order.
func validID(s string) bool {
	return s != "" && len(s) <= maxIDBytes && storable(s)
}

// idError is the 400 answer's message for a malformed ID in a path or
// query parameter.
func idError(name string) string {
	return fmt.Sprintf("%s must be text of 1 to %d bytes, valid UTF-8 without NUL characters", name, maxIDBytes)
}

// instanceIDParam returns the path's instanceId, or an error when it
// cannot name an instance: such an ID is refused before any database
// lookup, which PostgreSQL would fail.
func instanceIDParam(c *gin.Context) (string, error) {
	id := c.Param("instanceId")
	if !validID(id) {
		return "", fault.Invalid(idError("instanceId"))
	}
	return id, nil
}

// nulField names the first string field of a parsed request (by its JSON
// name, nested fields joined with dots) that holds a NUL character, or
// returns "". JSON may carry NUL as \u0000, but PostgreSQL text cannot
// store it, so such a callback could never be recorded: it is refused as
// invalid (000002) instead of failing as if the database were down
// (000005, retried by the marketplace, and kept by the spool forever).
func nulField(v any) string {
	return nulIn(reflect.ValueOf(v), "")
}

func nulIn(v reflect.Value, prefix string) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ""
		}
		return nulIn(v.Elem(), prefix)
	case reflect.String:
		if strings.ContainsRune(v.String(), 0) {
			return prefix
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = f.Name
			}
			if prefix != "" {
				name = prefix + "." + name
			}
			if found := nulIn(v.Field(i), name); found != "" {
				return found
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if found := nulIn(v.Index(i), prefix); found != "" {
				return found
			}
		}
	}
	return ""
}
