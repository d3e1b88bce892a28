package fault_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/fault"
)

// respond answers err as a handler would and returns the status, the
// body and what was logged.
func respond(t *testing.T, err error) (int, map[string]any, string) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	var logs bytes.Buffer
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest(http.MethodGet, "/v1/x", nil)
	fault.Respond(c, slog.New(slog.NewTextHandler(&logs, nil)), err)
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.True(t, c.IsAborted())
	return rec.Code, body, logs.String()
}

func TestRespondAnswersEachKindWithItsStatus(t *testing.T) {
	cases := []struct {
		err    error
		status int
		logged bool
	}{
		{fault.Invalid("limit must be a number"), 400, false},
		{fault.Unauthorized("missing or wrong bearer token"), 401, false},
		{fault.NotFound("no such instance"), 404, false},
		{fault.Conflict("the callback is no longer parked"), 409, false},
		{fault.TooLarge("the body must be at most 8 MiB"), 413, false},
		{fault.Database(errors.New("dial tcp 10.0.0.7:5432: refused")), 503, true},
		{fault.Temporal(errors.New("rpc error")), 503, true},
		{fmt.Errorf("wrapped: %w", fault.NotFound("no such purchase")), 404, false},
	}
	for _, c := range cases {
		status, body, logs := respond(t, c.err)
		require.Equal(t, c.status, status, c.err.Error())
		require.Equal(t, fault.Of(c.err).Message, body["error"])
		require.Equal(t, c.logged, logs != "", c.err.Error())
	}
}

func TestRespondNeverEchoesCauses(t *testing.T) {
	status, body, logs := respond(t, fault.Database(errors.New("password authentication failed for 10.0.0.7")))
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, map[string]any{"error": "database unavailable; retry later"}, body)
	require.Contains(t, logs, "10.0.0.7", "the cause is logged")

	status, body, _ = respond(t, errors.New("nil pointer at 10.0.0.7"))
	require.Equal(t, http.StatusInternalServerError, status)
	require.Equal(t, map[string]any{"error": "internal error"}, body, "an unclassified error says nothing of itself")
}

func TestWithAddsFieldsWithoutChangingTheOriginal(t *testing.T) {
	base := fault.Conflict("the instance's workflow is not running")
	_, body, _ := respond(t, base.With("requestId", "op-1"))
	require.Equal(t, map[string]any{"error": "the instance's workflow is not running", "requestId": "op-1"}, body)
	require.Empty(t, base.Fields)
}
