package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Defences against a faulty or hostile marketplace, seen from outside: the
// built binary, a real Temporal and PostgreSQL, HTTP only.

// hasEventKind reports whether the instance's timeline has an event of
// the kind whose key starts with prefix.
func hasEventKind(in instance, kind, keyPrefix string) bool {
	for _, e := range in.Events {
		if e.Kind == kind && strings.HasPrefix(e.Key, keyPrefix) {
			return true
		}
	}
	return false
}

// TestDebugProbesNeverSwallowRealCallbacks: a debug FREEZE (testFlag "1"),
// as the console's debugger sends, is ignored on a real instance; the real
// FREEZE after it freezes the tenant. The same for releaseInstance.
func TestDebugProbesNeverSwallowRealCallbacks(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	id := s.buyActive("PROBED01")[0]
	app := s.waitForAppInfo(id)

	probe := fmt.Sprintf(`{"activity":"updateInstanceStatus","instanceId":%q,"status":"FREEZE","testFlag":"1"}`, id)
	require.Equal(t, "000000", s.produce(probe).ResultCode)
	s.waitFor(id, "the probe ignored", func(in instance) bool { return hasEventKind(in, "ignored", "callback/debug:updateInstanceStatus") })
	require.Equal(t, "active", s.instance(id).State)

	require.Equal(t, "000000", s.produce(statusBody(id, "FREEZE")).ResultCode)
	s.waitState(id, "frozen")
	require.Equal(t, http.StatusLocked, tenantStatus(t, app.FrontEndURL))

	probe = fmt.Sprintf(`{"activity":"releaseInstance","instanceId":%q,"testFlag":"1"}`, id)
	require.Equal(t, "000000", s.produce(probe).ResultCode)
	s.waitFor(id, "the probe ignored", func(in instance) bool { return hasEventKind(in, "ignored", "callback/debug:releaseInstance") })
	require.Equal(t, "000000", s.produce(releaseBody(id)).ResultCode)
	s.waitState(id, "released")
	require.Equal(t, http.StatusGone, tenantStatus(t, app.FrontEndURL))
}

// TestInstanceIDsThatCannotBeServedAreRefused: a businessId that could not
// start a workflow, be reached by the admin API or be queried is refused
// with 000002 and allocates nothing: the order line is then bought with a
// proper one, which works end to end.
func TestInstanceIDsThatCannotBeServedAreRefused(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	s.openAPI.AddOrder(yearlyOrder("ODDIDS01"))
	for _, bad := range []string{"实例-ü-😀-x", "../../etc/x", "a,b", " x "} {
		r := s.produce(newInstanceBody("ODDIDS01", "ODDIDS01-000001", bad))
		require.Equal(t, "000002", r.ResultCode, "%q: %s", bad, r.raw)
		require.Empty(t, r.InstanceID)
	}
	r := s.produce(newInstanceBody("ODDIDS01", "ODDIDS01-000001", "biz-proper-1"))
	require.Equal(t, "000000", r.ResultCode, string(r.raw))
	require.Equal(t, "biz-proper-1", r.InstanceID, "nothing was allocated for the refused ones")
	s.waitForAppInfo("biz-proper-1")
	s.waitState("biz-proper-1", "active")
}

// TestPerpetualExpiryKeepsTheReadModelCurrent: Query Order gives an
// expiry of 9999-12-31 (a perpetual purchase): the instance is active
// with that expiry, and the read model follows a FREEZE and an UNFREEZE
// (the grace and retention, in the year 10000, are never due).
func TestPerpetualExpiryKeepsTheReadModelCurrent(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	order := yearlyOrder("FOREVER01")
	order.OrderLines[0].ExpireTime = "99991231235959"
	s.openAPI.AddOrder(order)
	r := s.produce(newInstanceBody("FOREVER01", "FOREVER01-000001", "biz-forever-1"))
	require.Equal(t, "000000", r.ResultCode, string(r.raw))
	id := r.InstanceID
	s.waitForAppInfo(id)
	active := s.waitState(id, "active")
	require.Equal(t, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), active.ExpireTime.UTC())

	require.Equal(t, "000000", s.produce(statusBody(id, "FREEZE")).ResultCode)
	s.waitState(id, "frozen")
	require.Equal(t, "000000", s.produce(statusBody(id, "UNFREEZE")).ResultCode)
	s.waitState(id, "active")

	// A renewal to the same far date is shown as sent.
	require.Equal(t, "000000", s.produce(refreshBody(id, "FOREVERRENEW", "RENEWAL", "99991231235959999")).ResultCode)
	s.waitFor(id, "renewed", func(in instance) bool { return hasEventKind(in, "expiry", "callback/refreshInstance") })
	require.Equal(t, "active", s.instance(id).State)
}

// TestEachTenantOperationHasItsOwnIdempotencyKey: FREEZE, UNFREEZE, FREEZE
// reach an application that skips any call whose Idempotency-Key it has
// already carried out, as docs/provisioner.md allows: the second freeze
// has a key of its own, so the tenant ends frozen.
func TestEachTenantOperationHasItsOwnIdempotencyKey(t *testing.T) {
	t.Parallel()
	app := newMerchantApp(t, "app-key-ops", false)
	s := startStack(t, "PROVISIONER="+app.URL(), "PROVISIONER_KEY=app-key-ops")
	id := s.buyActive("OPKEYS01")[0]

	for _, status := range []string{"FREEZE", "UNFREEZE", "FREEZE"} {
		require.Equal(t, "000000", s.produce(statusBody(id, status)).ResultCode)
		s.waitState(id, map[string]string{"FREEZE": "frozen", "UNFREEZE": "active"}[status])
	}
	require.Eventually(t, func() bool {
		ops, _ := app.tenantOps(id)
		return len(ops) == 3
	}, 30*time.Second, 100*time.Millisecond)
	ops, frozen := app.tenantOps(id)
	require.Equal(t, []string{"freeze freeze:" + id + ":1", "unfreeze unfreeze:" + id + ":2", "freeze freeze:" + id + ":3"}, ops)
	require.True(t, frozen, "the second freeze was carried out")
}

// TestConnectionsAreNotHeldForever: an idle keep-alive connection is closed
// after the idle timeout, a /produce body trickled slower than KooGallery
// would ever send it is cut off after 5 s, and so are headers that never
// end.
func TestConnectionsAreNotHeldForever(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	addr := strings.TrimPrefix(s.baseURL, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin reads until the server closes the connection and
	// returns how long that took, failing after limit.
	closedWithin := func(c net.Conn, limit time.Duration) time.Duration {
		start := time.Now()
		require.NoError(t, c.SetReadDeadline(start.Add(limit)))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the connection was still open after %s", limit)
		return time.Since(start)
	}

	t.Run("idle keep-alive", func(t *testing.T) {
		t.Parallel()
		c := dial()
		_, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_ = resp.Body.Close()
		took := closedWithin(c, 20*time.Second)
		require.Greater(t, took, 5*time.Second, "kept for a while for the next request")
	})
	t.Run("trickled body", func(t *testing.T) {
		t.Parallel()
		c := dial()
		body := statusBody("nobody", "FREEZE")
		query := koogallery.SignedQuery(accessKey, []byte(body), time.Now())
		_, err := fmt.Fprintf(c, "POST /produce?%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			query.Encode(), addr, len(body))
		require.NoError(t, err)
		start := time.Now()
		go func() {
			for i := range len(body) {
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		took := closedWithin(c, 15*time.Second)
		require.Less(t, time.Since(start), 9*time.Second, "cut off after about 5 s (took %s)", took)
	})
	t.Run("headers that never end", func(t *testing.T) {
		t.Parallel()
		c := dial()
		_, err := fmt.Fprintf(c, "POST /produce?%s HTTP/1.1\r\nHost: %s\r\n", url.Values{"a": {"b"}}.Encode(), addr)
		require.NoError(t, err)
		took := closedWithin(c, 15*time.Second)
		require.Less(t, took, 9*time.Second)
	})
}
