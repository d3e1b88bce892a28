package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/inbox"
)

// TestAdminRefusesIDsThatCannotExist: an instance or order ID with a NUL
// character, invalid UTF-8 or over 64 bytes names nothing. It is refused
// with 400 and the rule, before PostgreSQL (which cannot even compare such
// text) could fail the call as "database unavailable" (503), and nothing
// is done.
func TestAdminRefusesIDsThatCannotExist(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken))
	h.allocate(t, "v-active")
	h.save(t, instance("v-active", "active"))
	h.payPerUse(t, "v-ppu")

	bad := map[string]string{
		"NUL":               "v-active\x00",
		"invalid UTF-8":     "v-\xff",
		"65 bytes":          strings.Repeat("v", 65),
		"NUL only":          "\x00",
		"truncated UTF-8 ä": "v-\xc3",
	}
	for name, id := range bad {
		t.Run(name, func(t *testing.T) {
			escaped := url.PathEscape(id)
			cases := []struct {
				route authRoute
				param string
			}{
				{authRoute{method: http.MethodGet, path: "/v1/instances/" + escaped}, "instanceId"},
				{authRoute{method: http.MethodGet, path: "/v1/instances/" + escaped + "/usage"}, "instanceId"},
				{authRoute{method: http.MethodPost, path: "/v1/instances/" + escaped + "/signals/retry", body: `{"reason":"r"}`}, "instanceId"},
				{authRoute{method: http.MethodGet, path: "/v1/instances?orderId=" + url.QueryEscape(id)}, "orderId"},
				{authRoute{method: http.MethodGet, path: "/v1/instances?after=" + url.QueryEscape(id)}, "after"},
			}
			for _, c := range cases {
				before := h.authState(t)

				status, _, raw := h.call(t, c.route, "Bearer "+testAdminToken)

				require.Equal(t, http.StatusBadRequest, status, "%s %s: %s", c.route.method, c.route.path, raw)
				require.JSONEq(t, errorBody(fmt.Sprintf(idErrorFormat, c.param)), string(raw))
				require.Equal(t, before, h.authState(t))
			}

			// In the usage intake the record is refused with the rule, and
			// the batch with it.
			before := h.authState(t)
			status, a := h.postUsage(t, testUsageToken, usageBody(t,
				record("v-ppu", "v-ok", 1, time.Now()), record(id, "v-bad", 1, time.Now())))
			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, "1 of 2 records are invalid; nothing was stored", a.Error)
			require.Len(t, a.Records, 1)
			require.Equal(t, 1, a.Records[0].Index)
			if strings.Contains(id, "\x00") || len(id) > 64 {
				require.Equal(t, fmt.Sprintf(idErrorFormat, "instanceId"), a.Records[0].Error)
			} else {
				// JSON decoding turned the invalid UTF-8 into U+FFFD: a
				// valid ID that names no instance.
				require.Equal(t, "instanceId is unknown", a.Records[0].Error)
			}
			require.Equal(t, before, h.authState(t))
		})
	}

	t.Run("an ID of exactly 64 bytes is looked up", func(t *testing.T) {
		id := strings.Repeat("v", 64)
		status, raw := h.admin(t, "/v1/instances/"+id)
		require.Equal(t, http.StatusNotFound, status)
		require.JSONEq(t, `{"error":"no such instance"}`, string(raw))
	})
}

// TestProduceNeverSpoolsWhatCannotBeRecorded: a verified callback that
// PostgreSQL cannot hold (a NUL character, bytes that are not UTF-8) is
// refused as invalid (000002). Before, the database's refusal looked like
// an outage: the callbacks the marketplace sends only once went to the
// spool with 000000, and the spool, which must be drained in order before
// anything newer is recorded, could never be drained again.
func TestProduceNeverSpoolsWhatCannotBeRecorded(t *testing.T) {
	t.Parallel()
	spool := &inbox.Spool{Dir: t.TempDir()}
	h := newHarness(t, withSpool(spool))
	const id = "v-spool"
	h.allocate(t, id)

	for name, body := range map[string]string{
		"renewal with NUL in its order ID": `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R\u0000","orderLineId":"R-1","instanceId":"v-spool","expireTime":"20301124023618"}`,
		"UNFREEZE that is not UTF-8":       "{\"activity\":\"updateInstanceStatus\",\"instanceId\":\"v-spool\",\"status\":\"UNFREEZE\",\"x\":\"\xc3\"}",
		"release with NUL in its ID":       `{"activity":"releaseInstance","instanceId":"v-spool\u0000"}`,
	} {
		t.Run(name, func(t *testing.T) {
			before := h.effects(t)

			a := h.produce(t, []byte(body))

			require.Equal(t, "000002", a.ResultCode, "answer %s", a.Raw)
			require.Equal(t, before, h.effects(t))
			n, err := spool.Backlog()
			require.NoError(t, err)
			require.Zero(t, n, "nothing spooled")
		})
	}

	// The next callback is recorded as usual, not held behind the spool.
	requireResult(t, h.produce(t, refreshBody(t, id, "R2")), "000000", msgSuccess)
	cbs := h.callbacksOf(t, id)
	require.Equal(t, "refreshInstance:"+id+":R2:R2-000001", cbs[len(cbs)-1].DedupKey)
	n, err := spool.Backlog()
	require.NoError(t, err)
	require.Zero(t, n)
}
