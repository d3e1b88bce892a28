// Package fault is the one table from what went wrong to the HTTP answer
// that says so. Handlers describe a failure as a kind and a message meant
// for the caller (Invalid, NotFound, …, or Unavailable with its cause);
// Respond answers every one of them the same way: {"error": message} with
// the kind's status. Causes are logged, never answered.
package fault

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Kind is what went wrong, as the caller must understand it.
type Kind int

// The kinds. An error that is not an *Error is KindInternal.
const (
	KindInternal     Kind = iota // a fault of this server: 500
	KindInvalid                  // the request is wrong: 400
	KindUnauthorized             // no or a wrong credential: 401
	KindNotFound                 // what the request names does not exist: 404
	KindConflict                 // the state does not allow it (now): 409
	KindTooLarge                 // the body is over its limit: 413
	KindUnavailable              // a dependency failed; retry later: 503
	KindUpstream                 // a dependency refused the call for good: 502
)

// statuses is the table.
var statuses = map[Kind]int{
	KindInternal:     http.StatusInternalServerError,
	KindInvalid:      http.StatusBadRequest,
	KindUnauthorized: http.StatusUnauthorized,
	KindNotFound:     http.StatusNotFound,
	KindConflict:     http.StatusConflict,
	KindTooLarge:     http.StatusRequestEntityTooLarge,
	KindUnavailable:  http.StatusServiceUnavailable,
	KindUpstream:     http.StatusBadGateway,
}

// Status is the HTTP status of a kind.
func (k Kind) Status() int { return statuses[k] }

// Error is a failure described for the caller.
type Error struct {
	Kind Kind
	// Message is answered to the caller: it names what is wrong and
	// never echoes internal errors.
	Message string
	// Fields are answered beside the message (e.g. a request's ID).
	Fields map[string]any
	// Cause is logged, never answered.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// With returns the error with a field answered beside its message.
func (e *Error) With(key string, value any) *Error {
	out := *e
	out.Fields = make(map[string]any, len(e.Fields)+1)
	for k, v := range e.Fields {
		out.Fields[k] = v
	}
	out.Fields[key] = value
	return &out
}

// The constructors, one per kind the callers meet.
func Invalid(message string) *Error      { return &Error{Kind: KindInvalid, Message: message} }
func Unauthorized(message string) *Error { return &Error{Kind: KindUnauthorized, Message: message} }
func NotFound(message string) *Error     { return &Error{Kind: KindNotFound, Message: message} }
func Conflict(message string) *Error     { return &Error{Kind: KindConflict, Message: message} }
func TooLarge(message string) *Error     { return &Error{Kind: KindTooLarge, Message: message} }

// Unavailable is a failure of a dependency; cause is logged.
func Unavailable(message string, cause error) *Error {
	return &Error{Kind: KindUnavailable, Message: message, Cause: cause}
}

// Upstream is a dependency refusing a call in a way retrying does not
// change (the marketplace refusing the server's credentials); cause is
// logged.
func Upstream(message string, cause error) *Error {
	return &Error{Kind: KindUpstream, Message: message, Cause: cause}
}

// The two dependencies every handler has.
const (
	msgDatabase = "database unavailable; retry later"
	msgTemporal = "Temporal is unavailable; retry later"
)

// Database is the database failing: the caller retries later.
func Database(cause error) *Error { return Unavailable(msgDatabase, cause) }

// Temporal is Temporal failing: the caller retries later.
func Temporal(cause error) *Error { return Unavailable(msgTemporal, cause) }

// Of describes any error for the caller: an *Error as it is, anything else
// as an internal error without detail.
func Of(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindInternal, Message: "internal error", Cause: err}
}

// Respond answers err and aborts the request (gin handlers).
func Respond(c *gin.Context, log *slog.Logger, err error) {
	Write(c.Writer, c.Request, log, err)
	c.Abort()
}

// Write answers err (plain net/http handlers): {"error": message}, the
// error's fields beside it, with its kind's status. Failures that are the
// server's or a dependency's are logged with their cause.
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := Of(err)
	if e.Kind == KindInternal || e.Kind == KindUnavailable || e.Kind == KindUpstream {
		log.Error("Request failed", "path", r.URL.Path, "error", err)
	}
	body := map[string]any{"error": e.Message}
	for k, v := range e.Fields {
		body[k] = v
	}
	raw, jerr := json.Marshal(body)
	if jerr != nil {
		e, raw = Of(jerr), []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.Kind.Status())
	w.Write(raw) //nolint:errcheck // the client is gone
}
