package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Answer messages of the API, asserted exactly: they are what the
// marketplace's console shows to the merchant.
const (
	msgSuccess     = "success"
	msgAuthFailed  = "authentication failed"
	msgUnknown     = "instance does not exist"
	msgUnavailable = "service temporarily unavailable; please retry"
)

// ---------------------------------------------------------------------------
// Refused calls.

func TestProduceRefusesUnauthenticatedCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-auth"
	h.allocate(t, id)
	body := refreshBody(t, id, "CSrenew-auth")

	signed := func() url.Values { return koogallery.SignedQuery(testAccessKey, body, time.Now()) }
	without := func(param string) func(*testing.T) url.Values {
		return func(*testing.T) url.Values {
			q := signed()
			q.Del(param)
			return q
		}
	}
	// signedOff signs with a timestamp off the clock by the given amount,
	// taken when the case runs.
	signedOff := func(off time.Duration) func(*testing.T) url.Values {
		return func(*testing.T) url.Values {
			at := time.Now().Add(off)
			nonce := fmt.Sprintf("N%031d", at.UnixNano()%1e15)
			ts := strconv.FormatInt(at.UnixMilli(), 10)
			return url.Values{"signature": {koogallery.Sign(testAccessKey, nonce, ts, body)},
				"timestamp": {ts}, "nonce": {nonce}}
		}
	}
	tests := []struct {
		name string
		// query returns the query string to send with body; it may make
		// earlier calls of its own.
		query func(t *testing.T) url.Values
	}{
		{"bad signature", func(*testing.T) url.Values {
			q := signed()
			sig := []byte(q.Get("signature"))
			if sig[10] == 'A' {
				sig[10] = 'B'
			} else {
				sig[10] = 'A'
			}
			q.Set("signature", string(sig))
			return q
		}},
		{"signature of another body", func(t *testing.T) url.Values {
			return koogallery.SignedQuery(testAccessKey, refreshBody(t, id, "CSother"), time.Now())
		}},
		{"signature with another key", func(*testing.T) url.Values {
			return koogallery.SignedQuery("another-access-key", body, time.Now())
		}},
		{"signature not hex", func(*testing.T) url.Values {
			q := signed()
			q.Set("signature", strings.Repeat("Z", 64))
			return q
		}},
		{"signature repeated", func(*testing.T) url.Values {
			q := signed()
			q.Add("signature", q.Get("signature"))
			return q
		}},
		{"signature too short", func(*testing.T) url.Values {
			q := signed()
			q.Set("signature", q.Get("signature")[:63])
			return q
		}},
		{"signature empty", func(*testing.T) url.Values {
			q := signed()
			q.Set("signature", "")
			return q
		}},
		{"missing signature", without("signature")},
		{"missing timestamp", without("timestamp")},
		{"missing nonce", without("nonce")},
		{"no query at all", func(*testing.T) url.Values { return url.Values{} }},
		{"timestamp 61 s old", signedOff(-61 * time.Second)},
		{"timestamp 61 s ahead", signedOff(61 * time.Second)},
		{"timestamp in seconds, 61 s old", func(*testing.T) url.Values {
			ts := strconv.FormatInt(time.Now().Add(-61*time.Second).Unix(), 10)
			return url.Values{"signature": {koogallery.Sign(testAccessKey, "SECONDS-NONCE-1", ts, body)},
				"timestamp": {ts}, "nonce": {"SECONDS-NONCE-1"}}
		}},
		{"timestamp not all digits", func(*testing.T) url.Values {
			ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
			ts = ts[:5] + "x" + ts[6:]
			return url.Values{"signature": {koogallery.Sign(testAccessKey, "DIGITS-NONCE-1", ts, body)},
				"timestamp": {ts}, "nonce": {"DIGITS-NONCE-1"}}
		}},
		{"timestamp of 11 digits", func(*testing.T) url.Values {
			ts := strconv.FormatInt(time.Now().Unix(), 10) + "0"
			return url.Values{"signature": {koogallery.Sign(testAccessKey, "ELEVEN-NONCE-1", ts, body)},
				"timestamp": {ts}, "nonce": {"ELEVEN-NONCE-1"}}
		}},
		{"timestamp repeated", func(*testing.T) url.Values {
			q := signed()
			q.Add("timestamp", q.Get("timestamp"))
			return q
		}},
		{"nonce with a space", func(*testing.T) url.Values {
			ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
			return url.Values{"signature": {koogallery.Sign(testAccessKey, "SPACE NONCE", ts, body)},
				"timestamp": {ts}, "nonce": {"SPACE NONCE"}}
		}},
		{"nonce of 129 characters", func(*testing.T) url.Values {
			ts, nonce := strconv.FormatInt(time.Now().UnixMilli(), 10), strings.Repeat("N", 129)
			return url.Values{"signature": {koogallery.Sign(testAccessKey, nonce, ts, body)},
				"timestamp": {ts}, "nonce": {nonce}}
		}},
		{"nonce repeated", func(*testing.T) url.Values {
			q := signed()
			q.Add("nonce", q.Get("nonce"))
			return q
		}},
		{"replayed nonce", func(t *testing.T) url.Values {
			q := signed()
			requireResult(t, h.produceQuery(t, q, body), "000000", msgSuccess)
			return q
		}},
		{"used nonce, signed again with a new timestamp", func(t *testing.T) url.Values {
			q := signed()
			requireResult(t, h.produceQuery(t, q, body), "000000", msgSuccess)
			ts := strconv.FormatInt(time.Now().Add(time.Second).UnixMilli(), 10)
			return url.Values{"signature": {koogallery.Sign(testAccessKey, q.Get("nonce"), ts, body)},
				"timestamp": {ts}, "nonce": {q.Get("nonce")}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.query(t)
			before, beforeCallbacks, beforeNonces := h.effects(t), h.callbacksOf(t, id), h.nonces(t)

			a := h.produceQuery(t, q, body)

			requireResult(t, a, "000001", msgAuthFailed)
			require.JSONEq(t, `{"resultCode":"000001","resultMsg":"authentication failed"}`, string(a.Raw))
			require.Equal(t, before, h.effects(t), "a refused call records and signals nothing")
			require.Equal(t, beforeCallbacks, h.callbacksOf(t, id))
			require.Equal(t, beforeNonces, h.nonces(t), "nor remembers its nonce")
		})
	}

	// Whatever the activity, a bad signature is refused before the body is
	// read: nothing allocated, recorded, asked or answered (a queryInstance
	// hands out no credentials).
	h.save(t, instance(id, "active"))
	h.saveCredentials(t, id, "auth-admin", "Auth-Pa55word")
	for _, body := range [][]byte{
		newInstanceBody(t, "CSauth-new", "CSauth-new-000001", "inst-auth-new"),
		queryBody(t, id), refreshBody(t, id, "CSauth-renew"), statusBody(t, id, "FREEZE"), statusBody(t, id, "UNFREEZE"),
		releaseBody(t, id), upgradeBody(t, id, "CSauth-up"), changeCheckBody(t, id),
		jsonBody(t, map[string]any{"activity": "orderNotify", "orderId": "CSauth-n", "orderLineId": "CSauth-n-1"}),
		[]byte(`{"activity":"bogus"}`), []byte(`not json`),
	} {
		t.Run("any activity: "+string(body), func(t *testing.T) {
			before, beforeNonces := h.effects(t), h.nonces(t)

			a := h.produceQuery(t, koogallery.SignedQuery("another-access-key", body, time.Now()), body)

			require.JSONEq(t, `{"resultCode":"000001","resultMsg":"authentication failed"}`, string(a.Raw))
			require.Equal(t, before, h.effects(t))
			require.Equal(t, beforeNonces, h.nonces(t))
		})
	}
}

// nonces counts the nonces remembered.
func (h *harness) nonces(t testing.TB) int {
	t.Helper()
	var n int
	require.NoError(t, h.raw.QueryRowContext(t.Context(), `SELECT count(*) FROM koogallery_nonces`).Scan(&n))
	return n
}

func TestProduceRefusesInvalidRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-invalid"
	h.allocate(t, id)

	tests := []struct{ name, body, wantMsg string }{
		{"malformed JSON", `{"activity":"newInstance","orderId":`, "request body is not a JSON object"},
		{"not an object", `["newInstance"]`, "request body is not a JSON object"},
		{"empty body", ``, "request body is not a JSON object"},
		{"missing activity", `{"instanceId":"inst-invalid"}`, "missing field activity"},
		{"unknown activity", `{"activity":"deleteEverything","instanceId":"inst-invalid"}`, "unknown activity"},
		{"newInstance without businessId",
			`{"activity":"newInstance","orderId":"CS1","orderLineId":"CS1-000001"}`, "missing field businessId"},
		{"newInstance without orderId",
			`{"activity":"newInstance","orderLineId":"CS1-000001","businessId":"b-1"}`, "missing field orderId"},
		{"refreshInstance without expireTime",
			`{"activity":"refreshInstance","scene":"RENEWAL","orderId":"CS2","orderLineId":"CS2-1","instanceId":"inst-invalid"}`,
			"missing field expireTime"},
		{"refreshInstance with an unknown scene",
			`{"activity":"refreshInstance","scene":"GIFT","orderId":"CS2","orderLineId":"CS2-1","instanceId":"inst-invalid","expireTime":"20301124023618"}`, ""},
		{"updateInstanceStatus without status",
			`{"activity":"updateInstanceStatus","instanceId":"inst-invalid"}`, "missing field status"},
		{"updateInstanceStatus with an unknown status",
			`{"activity":"updateInstanceStatus","instanceId":"inst-invalid","status":"PAUSE"}`, "field status must be FREEZE or UNFREEZE"},
		{"releaseInstance without instanceId", `{"activity":"releaseInstance"}`, "missing field instanceId"},
		{"upgradeInstance without orderLineId",
			`{"activity":"upgradeInstance","instanceId":"inst-invalid","orderId":"CS3"}`, "missing field orderLineId"},
		{"queryInstance without instanceId", `{"activity":"queryInstance"}`, "missing field instanceId"},
		{"changeInstanceCheck without productInfo",
			`{"activity":"changeInstanceCheck","instanceId":"inst-invalid"}`, "missing field productInfo"},
		{"orderNotify without orderLineId", `{"activity":"orderNotify","orderId":"CS4","testFlag":"1"}`, "missing field orderLineId"},
		{"bad testFlag", `{"activity":"releaseInstance","instanceId":"inst-invalid","testFlag":"yes"}`, ""},
		{"wrong field type", `{"activity":"releaseInstance","instanceId":42}`, ""},
		{"activity not a string", `{"activity":7,"instanceId":"inst-invalid"}`, "field activity must be a string"},
		{"trailing garbage", `{"activity":"releaseInstance","instanceId":"inst-invalid"} {}`, "request body is not a JSON object"},
		{"not UTF-8", "{\"activity\":\"releaseInstance\",\"instanceId\":\"inst-invalid\",\"note\":\"\xff\"}",
			"request body is not valid UTF-8"},
		{"NUL in an instance ID", `{"activity":"releaseInstance","instanceId":"inst-invalid\u0000"}`,
			"field instanceId must be letters, digits, '-', '_' or '.', starting with a letter or a digit"},
		{"NUL in a businessId", `{"activity":"newInstance","orderId":"CS9","orderLineId":"CS9-1","businessId":"b\u0000"}`,
			"field businessId must be letters, digits, '-', '_' or '.', starting with a letter or a digit"},
		{"NUL in an order ID", `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"CS\u0000","orderLineId":"CS-1","instanceId":"inst-invalid","expireTime":"20301124023618"}`,
			"field orderId must not contain NUL characters"},
		{"NUL in a queryInstance list", `{"activity":"queryInstance","instanceId":"inst-invalid,\u0000"}`,
			"an instanceId in the list is not letters, digits, '-', '_' or '.', starting with a letter or a digit"},
		{"NUL in productInfo", `{"activity":"changeInstanceCheck","instanceId":"inst-invalid","productInfo":{"skuCode":"s\u0000"}}`,
			"field productInfo.skuCode must not contain NUL characters"},
		{"expireTime not a time", `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"CS2","orderLineId":"CS2-1","instanceId":"inst-invalid","expireTime":"20301324023618"}`,
			"field expireTime must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC)"},
		{"queryInstance list over 100 characters", `{"activity":"queryInstance","instanceId":"` + strings.Repeat("i,", 51) + `"}`,
			"field instanceId is longer than 100 characters"},
		{"queryInstance list with an ID over 64 characters", `{"activity":"queryInstance","instanceId":"inst-invalid,` + strings.Repeat("i", 65) + `"}`,
			"an instanceId in the list is longer than 64 characters"},
		{"queryInstance list of blanks", `{"activity":"queryInstance","instanceId":" , ,"}`, "missing field instanceId"},
	}
	// Every mandatory field of every activity, absent, blank and (IDs)
	// over their 64 characters.
	for activity, fields := range map[string]struct {
		body      map[string]any
		mandatory []string
		ids       []string
	}{
		"newInstance": {map[string]any{"orderId": "CS5", "orderLineId": "CS5-1", "businessId": "b-5"},
			[]string{"orderId", "orderLineId", "businessId"}, []string{"orderId", "orderLineId", "businessId"}},
		"queryInstance": {map[string]any{"instanceId": id}, []string{"instanceId"}, nil},
		"refreshInstance": {map[string]any{"scene": "RENEWAL", "orderId": "CS6", "orderLineId": "CS6-1", "instanceId": id,
			"expireTime": "20301124023618256", "productId": "p"},
			[]string{"scene", "orderId", "orderLineId", "instanceId", "expireTime"},
			[]string{"orderId", "orderLineId", "instanceId", "productId", "scene"}},
		"updateInstanceStatus": {map[string]any{"instanceId": id, "status": "FREEZE"}, []string{"instanceId", "status"}, []string{"instanceId"}},
		"releaseInstance": {map[string]any{"instanceId": id, "orderId": "CS7", "orderLineId": "CS7-1"},
			[]string{"instanceId"}, []string{"instanceId", "orderId", "orderLineId"}},
		"upgradeInstance": {map[string]any{"instanceId": id, "orderId": "CS8", "orderLineId": "CS8-1"},
			[]string{"instanceId", "orderId", "orderLineId"}, []string{"instanceId", "orderId", "orderLineId"}},
		"changeInstanceCheck": {map[string]any{"instanceId": id, "productInfo": map[string]any{"skuCode": "s"}},
			[]string{"instanceId", "productInfo"}, []string{"instanceId"}},
		"orderNotify": {map[string]any{"orderId": "CS9", "orderLineId": "CS9-1"}, []string{"orderId", "orderLineId"},
			[]string{"orderId", "orderLineId"}},
	} {
		with := func(field string, value any) string {
			b := map[string]any{"activity": activity}
			for k, v := range fields.body {
				b[k] = v
			}
			if value == nil {
				delete(b, field)
			} else {
				b[field] = value
			}
			return string(jsonBody(t, b))
		}
		for _, f := range fields.mandatory {
			tests = append(tests, struct{ name, body, wantMsg string }{
				activity + " without " + f, with(f, nil), "missing field " + f})
			if f != "productInfo" {
				tests = append(tests, struct{ name, body, wantMsg string }{
					activity + " with a blank " + f, with(f, "  "), "missing field " + f})
			}
		}
		for _, f := range fields.ids {
			tests = append(tests, struct{ name, body, wantMsg string }{
				activity + " with a " + f + " of 65 characters", with(f, strings.Repeat("x", 65)),
				"field " + f + " is longer than 64 characters"})
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeCallbacks := h.effects(t), h.callbacksOf(t, id)

			a := h.produce(t, []byte(tc.body))

			requireResult(t, a, "000002", tc.wantMsg)
			require.NotEmpty(t, a.ResultMsg)
			require.NotContains(t, a.ResultMsg, "deleteEverything", "the answer never echoes input")
			require.Empty(t, a.InstanceID)
			require.Equal(t, before, h.effects(t), "an invalid call records and signals nothing")
			require.Equal(t, beforeCallbacks, h.callbacksOf(t, id))
		})
	}
}

func TestProduceUnknownInstance(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.allocate(t, "inst-known")
	const unknown = "inst-nobody-bought"

	tests := []struct {
		name string
		body []byte
	}{
		{"refreshInstance", refreshBody(t, unknown, "CSrenew")},
		{"updateInstanceStatus FREEZE", statusBody(t, unknown, "FREEZE")},
		{"updateInstanceStatus UNFREEZE", statusBody(t, unknown, "UNFREEZE")},
		{"releaseInstance", releaseBody(t, unknown)},
		{"upgradeInstance", upgradeBody(t, unknown, "CSup")},
		{"changeInstanceCheck", changeCheckBody(t, unknown)},
		{"queryInstance", queryBody(t, unknown)},
		{"queryInstance listing a known one too", queryBody(t, "inst-known,"+unknown)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.effects(t)

			a := h.produce(t, tc.body)

			requireResult(t, a, "000003", msgUnknown)
			want := `{"resultCode":"000003","resultMsg":"instance does not exist"}`
			if strings.HasPrefix(tc.name, "queryInstance") {
				want = `{"resultCode":"000003","resultMsg":"instance does not exist","info":[]}`
			}
			require.JSONEq(t, want, string(a.Raw))
			require.Equal(t, before, h.effects(t))
			require.Empty(t, h.callbacksOf(t, unknown))
		})
	}
}

// TestProduceUnreadableBody: a body that breaks off while it is read is
// answered (signed) 000002, and nothing is recorded.
func TestProduceUnreadableBody(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	before := h.effects(t)
	body := io.MultiReader(strings.NewReader(`{"activity":"newInstance",`), iotest.ErrReader(io.ErrUnexpectedEOF))
	q := koogallery.SignedQuery(testAccessKey, nil, time.Now())
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/produce?"+q.Encode(), body)
	rec := httptest.NewRecorder()

	h.handler.ServeHTTP(rec, req)

	a := requireSignedAnswer(t, rec.Code, rec.Header(), rec.Body.Bytes())
	requireResult(t, a, "000002", "request body could not be read")
	require.Equal(t, before, h.effects(t))
}

func TestProduceBodyLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	t.Run("a body of exactly 1 MiB is accepted", func(t *testing.T) {
		head := `{"activity":"newInstance","orderId":"CSbig","orderLineId":"CSbig-000001","businessId":"inst-big","pad":"`
		tail := `"}`
		body := []byte(head + strings.Repeat("x", maxBody-len(head)-len(tail)) + tail)
		require.Len(t, body, maxBody)

		a := h.produce(t, body)

		requireResult(t, a, "000000", msgSuccess)
		require.Equal(t, "inst-big", a.InstanceID)
		cbs := h.callbacksOf(t, "inst-big")
		require.Len(t, cbs, 1)
		require.Len(t, cbs[0].Body, maxBody)
	})

	tests := []struct {
		name string
		size int64
		// declared sets Content-Length; otherwise the body is chunked.
		declared bool
		// maxRead is how much of the body the handler may read.
		maxRead int64
	}{
		{"declared 64 MiB", 64 << 20, true, 0},
		{"declared 1 MiB + 1", maxBody + 1, true, 0},
		{"chunked 64 MiB", 64 << 20, false, maxBody + 4096},
		{"chunked 1 MiB + 1", maxBody + 1, false, maxBody + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.effects(t)
			body := &countingReader{left: tc.size}
			q := koogallery.SignedQuery(testAccessKey, nil, time.Now())
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/produce?"+q.Encode(), body)
			req.Header.Set("Content-Type", "application/json;charset=utf8")
			if tc.declared {
				req.ContentLength = tc.size
			} else {
				req.ContentLength = -1
				req.TransferEncoding = []string{"chunked"}
			}
			rec := httptest.NewRecorder()

			h.handler.ServeHTTP(rec, req)

			a := requireSignedAnswer(t, rec.Code, rec.Header(), rec.Body.Bytes())
			require.Equal(t, http.StatusRequestEntityTooLarge, a.Status)
			require.Equal(t, "000002", a.ResultCode)
			require.Equal(t, "request body exceeds 1 MiB", a.ResultMsg)
			require.LessOrEqual(t, body.read.Load(), tc.maxRead, "the handler must stop reading at the limit")
			require.Equal(t, before, h.effects(t))
		})
	}
}

// ---------------------------------------------------------------------------
// newInstance.

func TestNewInstance(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "8f5a2f8e-first-business-id"
	orderID, lineID := "CS2211181819B4LVS", "CS2211181819B4LVS-000001"
	wantKey := "debug:newInstance:" + orderID + ":" + lineID // newInstanceBody is a debug call

	a := h.produce(t, newInstanceBody(t, orderID, lineID, id))

	requireResult(t, a, "000000", msgSuccess)
	require.Equal(t, `{"resultCode":"000000","resultMsg":"success","instanceId":"`+id+`"}`, string(a.Raw))
	cbs := h.callbacksOf(t, id)
	require.Len(t, cbs, 1)
	require.Equal(t, wantKey, cbs[0].DedupKey)
	require.Equal(t, "newInstance", cbs[0].Activity)
	require.True(t, cbs[0].Delivered())
	require.Equal(t, "signalled", cbs[0].Outcome)
	require.True(t, cbs[0].Debug)

	calls := h.signaller.attempts()
	require.Len(t, calls, 1)
	call := calls[0]
	require.NoError(t, call.Err)
	require.Equal(t, "instance/"+id, call.WorkflowID)
	require.Equal(t, workflows.CallbackSignal, call.SignalName)
	require.Equal(t, workflows.InstanceWorkflowName, call.Workflow)
	require.Equal(t, "instance/"+id, call.Options.ID)
	require.Equal(t, testTaskQueue, call.Options.TaskQueue)
	require.Equal(t, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, call.Options.WorkflowIDReusePolicy)
	require.Equal(t, []any{workflows.InstanceInput{InstanceID: id, OrderID: orderID, OrderLineID: lineID, Debug: true,
		Generation: workflows.InstanceGeneration}}, call.Args)
	signal, ok := call.Arg.(workflows.Callback)
	require.True(t, ok, "signal argument %T", call.Arg)
	require.Equal(t, wantKey, signal.Key)
	require.Equal(t, cbs[0].Seq, signal.Seq)
	require.Equal(t, "newInstance", signal.Activity)
	require.Equal(t, orderID, signal.OrderID)
	require.Equal(t, lineID, signal.OrderLineID)
	require.True(t, signal.Debug)

	t.Run("a redelivery with another businessId gets the same instance", func(t *testing.T) {
		a := h.produce(t, newInstanceBody(t, orderID, lineID, "another-business-id"))

		requireResult(t, a, "000000", msgSuccess)
		require.Equal(t, id, a.InstanceID)
		cbs := h.callbacksOf(t, id)
		require.Len(t, cbs, 1, "recorded once")
		require.Equal(t, 1, cbs[0].Redeliveries)
		require.Len(t, h.signaller.attempts(), 1, "an already delivered callback is not signalled again")
		_, err := h.db.Callbacks.InstanceKey(t.Context(), "another-business-id")
		require.ErrorIs(t, err, store.ErrUnknownInstance)
	})

	t.Run("another order line gets its own instance, signalled once", func(t *testing.T) {
		a := h.produce(t, newInstanceBody(t, orderID, "CS2211181819B4LVS-000002", "second-business-id"))

		requireResult(t, a, "000000", msgSuccess)
		require.Equal(t, "second-business-id", a.InstanceID)
		calls := h.signaller.attempts()
		require.Len(t, calls, 2)
		require.Equal(t, "instance/second-business-id", calls[1].WorkflowID)
	})

	t.Run("a businessId that names another line's instance is refused", func(t *testing.T) {
		before := h.effects(t)

		a := h.produce(t, newInstanceBody(t, "CSother", "CSother-000001", id))

		requireResult(t, a, "000002", "businessId already identifies another order line's instance")
		require.Empty(t, a.InstanceID)
		require.Equal(t, before, h.effects(t))
	})
}

// The answer waits for the durable record only: a slow Temporal delays the
// delivery, never the marketplace.
func TestAnswerDoesNotWaitForTemporal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-slow-temporal"
	orderID, lineID := orderOf(id)
	release := h.signaller.holdCalls()

	q := koogallery.SignedQuery(testAccessKey, newInstanceBody(t, orderID, lineID, id), time.Now())
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.srv.URL+"/produce?"+q.Encode(),
		bytes.NewReader(newInstanceBody(t, orderID, lineID, id)))
	require.NoError(t, err)
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())

	a := requireSignedAnswer(t, resp.StatusCode, resp.Header, raw)
	requireResult(t, a, "000000", msgSuccess)
	require.Equal(t, id, a.InstanceID)
	require.Empty(t, h.signaller.attempts(), "answered while the signal still waits for Temporal")
	cbs := h.callbacksOf(t, id)
	require.Len(t, cbs, 1, "recorded before the answer")
	require.False(t, cbs[0].Delivered())

	release()
	h.settle(t)
	require.Len(t, h.signaller.delivered(), 1)
	require.True(t, h.callbacksOf(t, id)[0].Delivered(), "delivered in the background")
}

func TestNewInstanceWhileTemporalIsDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-temporal-down"
	orderID, lineID := orderOf(id)
	h.signaller.setFailing(true)

	a := h.produce(t, newInstanceBody(t, orderID, lineID, id))

	requireResult(t, a, "000000", msgSuccess)
	require.Equal(t, id, a.InstanceID)
	require.Len(t, h.signaller.attempts(), 1, "delivery was attempted")
	require.Empty(t, h.signaller.delivered())
	cbs := h.callbacksOf(t, id)
	require.Len(t, cbs, 1)
	require.False(t, cbs[0].Delivered(), "the callback stays for the relay")
	require.Equal(t, 1, cbs[0].Attempts)
	require.Contains(t, cbs[0].LastError, "fake temporal is down")
	n, err := h.db.Callbacks.UndeliveredCount(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	t.Run("a redelivery while Temporal is still down", func(t *testing.T) {
		a := h.produce(t, newInstanceBody(t, orderID, lineID, "retry-business-id"))

		requireResult(t, a, "000000", msgSuccess)
		require.Equal(t, id, a.InstanceID)
		require.Empty(t, h.signaller.delivered())
		cbs := h.callbacksOf(t, id)
		require.Len(t, cbs, 1)
		require.False(t, cbs[0].Delivered())
		require.Equal(t, 1, cbs[0].Redeliveries)
	})

	t.Run("another purchase while Temporal is down", func(t *testing.T) {
		const other = "inst-temporal-down-2"
		orderID, lineID := orderOf(other)

		a := h.produce(t, newInstanceBody(t, orderID, lineID, other))

		requireResult(t, a, "000000", msgSuccess)
		require.Equal(t, other, a.InstanceID)
		cbs := h.callbacksOf(t, other)
		require.Len(t, cbs, 1)
		require.False(t, cbs[0].Delivered())
		n, err := h.db.Callbacks.UndeliveredCount(t.Context())
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "both wait for the relay")
	})
}

func TestProduceWhilePostgresIsDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	require.NoError(t, h.db.Close())

	for _, body := range [][]byte{
		newInstanceBody(t, "CSdown", "CSdown-000001", "inst-db-down"),
		queryBody(t, "inst-db-down"),
		refreshBody(t, "inst-db-down", "CSdown-renew"),
	} {
		a := h.produce(t, body)
		requireResult(t, a, "000005", msgUnavailable)
		require.Empty(t, a.InstanceID)
	}
	require.Empty(t, h.signaller.attempts())
	var callbacks, keys, nonces int
	require.NoError(t, h.raw.QueryRowContext(t.Context(), `SELECT
		(SELECT count(*) FROM callbacks), (SELECT count(*) FROM instance_keys), (SELECT count(*) FROM koogallery_nonces)`).
		Scan(&callbacks, &keys, &nonces))
	require.Zero(t, callbacks+keys+nonces)
}

func TestProduceWhenTheInboxFailsAfterVerification(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.allocate(t, "inst-broken")
	h.save(t, instance("inst-broken", "active"))
	_, err := h.raw.ExecContext(t.Context(), `ALTER TABLE callbacks RENAME TO callbacks_gone;
		ALTER TABLE instance_credentials RENAME TO instance_credentials_gone`)
	require.NoError(t, err)

	a := h.produce(t, newInstanceBody(t, "CSnew", "CSnew-000001", "inst-unrecorded"))
	requireResult(t, a, "000005", msgUnavailable)
	require.Empty(t, a.InstanceID)

	a = h.produce(t, refreshBody(t, "inst-broken", "CSrenew"))
	requireResult(t, a, "000005", msgUnavailable)

	a = h.produce(t, queryBody(t, "inst-broken"))
	requireResult(t, a, "000005", msgUnavailable)
	require.JSONEq(t, `{"resultCode":"000005","resultMsg":"`+msgUnavailable+`","info":[]}`, string(a.Raw))

	require.Empty(t, h.signaller.attempts())
	_, err = h.db.Callbacks.InstanceKey(t.Context(), "inst-unrecorded")
	require.ErrorIs(t, err, store.ErrUnknownInstance, "the allocation rolled back with the callback")
}

// ---------------------------------------------------------------------------
// queryInstance.

func TestQueryInstance(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const memo = "演示租户 (demo) 😀"

	h.allocate(t, "q-allocated")
	for id, state := range map[string]string{
		"q-provisioning": "provisioning", "q-failed": "failed", "q-active": "active",
		"q-active2": "active", "q-frozen": "frozen", "q-released": "released", "q-nocreds": "active",
	} {
		h.allocate(t, id)
		inst := instance(id, state)
		if id == "q-active" {
			inst.Memo = memo
		}
		h.save(t, inst)
	}
	h.saveCredentials(t, "q-active", "admin", "S3cret-Pa55word!")
	h.saveCredentials(t, "q-active2", "owner", "An0ther-Pa55")
	h.saveCredentials(t, "q-frozen", "frozen-admin", "Fr0zen-Pa55")
	h.saveCredentials(t, "q-released", "gone", "G0ne-Pa55")
	before := h.effects(t)

	tests := []struct {
		name     string
		ids      string
		wantCode string
		wantMsg  string
		wantInfo []string
	}{
		{"unknown", "q-nobody", "000003", msgUnknown, nil},
		{"allocated but not yet saved", "q-allocated", "000004", "instance is being provisioned", nil},
		{"saved provisioning", "q-provisioning", "000004", "instance is being provisioned", nil},
		{"failed", "q-failed", "000005", "instance provisioning failed; the merchant is handling it", nil},
		{"active", "q-active", "000000", msgSuccess, []string{"q-active"}},
		{"frozen", "q-frozen", "000000", msgSuccess, []string{"q-frozen"}},
		{"released", "q-released", "000000", msgSuccess, []string{"q-released"}},
		{"two active, in the order asked", "q-active2,q-active", "000000", msgSuccess, []string{"q-active2", "q-active"}},
		{"blanks and repeats in the list", " q-active , q-active2,q-active ", "000000", msgSuccess, []string{"q-active", "q-active2"}},
		{"one unknown among them", "q-active,q-nobody,q-active2", "000003", msgUnknown, nil},
		{"one provisioning among them", "q-active,q-provisioning", "000004", "instance is being provisioned", nil},
		{"unknown wins over provisioning and failed", "q-failed,q-provisioning,q-nobody", "000003", msgUnknown, nil},
		{"provisioning wins over failed", "q-failed,q-allocated", "000004", "instance is being provisioned", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := h.produce(t, queryBody(t, tc.ids))

			requireResult(t, a, tc.wantCode, tc.wantMsg)
			var got []string
			for _, info := range a.Info {
				got = append(got, info.InstanceID)
			}
			require.Equal(t, tc.wantInfo, got)
			if tc.wantInfo == nil {
				require.Contains(t, string(a.Raw), `"info":[]`, "info is mandatory, even when empty")
			}
		})
	}

	t.Run("active: appInfo with encrypted credentials", func(t *testing.T) {
		a := h.produce(t, queryBody(t, "q-active"))
		requireResult(t, a, "000000", msgSuccess)
		require.Len(t, a.Info, 1)
		app := a.Info[0].AppInfo
		require.NotNil(t, app)
		require.Equal(t, "https://app.example.com/t/q-active", app.FrontEndURL)
		require.Equal(t, "https://app.example.com/admin/q-active", app.AdminURL)
		require.Equal(t, memo, app.Memo)
		require.NotContains(t, string(a.Raw), "S3cret-Pa55word!")
		user, err := koogallery.DecryptField(testAccessKey, koogallery.AES256, app.UserName)
		require.NoError(t, err)
		require.Equal(t, "admin", user)
		password, err := koogallery.DecryptField(testAccessKey, koogallery.AES256, app.Password)
		require.NoError(t, err)
		require.Equal(t, "S3cret-Pa55word!", password)
	})

	t.Run("memo is sent as \\u escapes, never raw UTF-8", func(t *testing.T) {
		a := h.produce(t, queryBody(t, "q-active"))
		requireResult(t, a, "000000", msgSuccess)
		require.Contains(t, string(a.Raw), `\u6f14\u793a\u79df\u6237 (demo) \ud83d\ude00`)
		for i, b := range a.Raw {
			require.Less(t, b, byte(0x80), "byte %d of the answer is not ASCII", i)
		}
	})

	t.Run("released: an entry without appInfo", func(t *testing.T) {
		a := h.produce(t, queryBody(t, "q-released"))
		requireResult(t, a, "000000", msgSuccess)
		require.JSONEq(t, `{"resultCode":"000000","resultMsg":"success","info":[{"instanceId":"q-released"}]}`, string(a.Raw))
	})

	t.Run("active without credentials: appInfo without them", func(t *testing.T) {
		a := h.produce(t, queryBody(t, "q-nocreds"))
		requireResult(t, a, "000000", msgSuccess)
		require.JSONEq(t, `{"resultCode":"000000","resultMsg":"success","info":[{"instanceId":"q-nocreds",
			"appInfo":{"frontEndUrl":"https://app.example.com/t/q-nocreds","adminUrl":"https://app.example.com/admin/q-nocreds","memo":"welcome"}}]}`,
			string(a.Raw))
	})

	t.Run("two active: each with its own credentials", func(t *testing.T) {
		a := h.produce(t, queryBody(t, "q-active2,q-active"))
		requireResult(t, a, "000000", msgSuccess)
		require.Len(t, a.Info, 2)
		for i, want := range []struct{ id, user, password string }{
			{"q-active2", "owner", "An0ther-Pa55"}, {"q-active", "admin", "S3cret-Pa55word!"},
		} {
			require.Equal(t, want.id, a.Info[i].InstanceID)
			require.NotNil(t, a.Info[i].AppInfo)
			user, err := koogallery.DecryptField(testAccessKey, koogallery.AES256, a.Info[i].AppInfo.UserName)
			require.NoError(t, err)
			require.Equal(t, want.user, user)
			password, err := koogallery.DecryptField(testAccessKey, koogallery.AES256, a.Info[i].AppInfo.Password)
			require.NoError(t, err)
			require.Equal(t, want.password, password)
		}
	})

	require.Equal(t, before, h.effects(t), "queryInstance records and signals nothing")
}

func TestQueryInstanceEncryption(t *testing.T) {
	t.Parallel()
	const user, password = "admin@tenant", "P@ss-wörd-1234567890"
	tests := []struct {
		encryption api.AppInfoEncryption
		open       func(t *testing.T, value string) string
	}{
		{api.EncryptAES256, func(t *testing.T, v string) string {
			plain, err := koogallery.DecryptField(testAccessKey, koogallery.AES256, v)
			require.NoError(t, err)
			return plain
		}},
		{api.EncryptAES128, func(t *testing.T, v string) string {
			plain, err := koogallery.DecryptField(testAccessKey, koogallery.AES128, v)
			require.NoError(t, err)
			if other, err := koogallery.DecryptField(testAccessKey, koogallery.AES256, v); err == nil {
				require.NotEqual(t, plain, other, "AES-128 output must not open as AES-256")
			}
			return plain
		}},
		{api.EncryptNone, func(_ *testing.T, v string) string { return v }},
	}
	for _, tc := range tests {
		t.Run(string(tc.encryption), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, withEncryption(tc.encryption))
			h.allocate(t, "enc-1")
			h.save(t, instance("enc-1", "active"))
			h.saveCredentials(t, "enc-1", user, password)

			a := h.produce(t, queryBody(t, "enc-1"))

			requireResult(t, a, "000000", msgSuccess)
			require.Len(t, a.Info, 1)
			app := a.Info[0].AppInfo
			require.NotNil(t, app)
			if tc.encryption != api.EncryptNone {
				require.NotEqual(t, user, app.UserName)
				require.NotEqual(t, password, app.Password)
			}
			require.Equal(t, user, tc.open(t, app.UserName))
			require.Equal(t, password, tc.open(t, app.Password))
		})
	}
}

// ---------------------------------------------------------------------------
// Callbacks that change an instance.

func TestInstanceCallbacks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tests := []struct {
		activity string
		body     func(t *testing.T, id string) []byte
		wantKey  func(id string) string
		check    func(t *testing.T, id string, cb workflows.Callback)
	}{
		{
			"refreshInstance",
			func(t *testing.T, id string) []byte { return refreshBody(t, id, "CSrenew-"+id) },
			func(id string) string {
				return "refreshInstance:" + id + ":CSrenew-" + id + ":CSrenew-" + id + "-000001"
			},
			func(t *testing.T, id string, cb workflows.Callback) {
				require.Equal(t, "CSrenew-"+id, cb.OrderID)
				require.Equal(t, "RENEWAL", cb.Scene)
				require.Equal(t, time.Date(2030, 11, 24, 2, 36, 18, 256e6, time.UTC), cb.ExpireTime.UTC())
			},
		},
		{
			"updateInstanceStatus",
			func(t *testing.T, id string) []byte { return statusBody(t, id, "FREEZE") },
			func(id string) string { return "updateInstanceStatus:" + id + ":FREEZE:1" },
			func(t *testing.T, _ string, cb workflows.Callback) { require.Equal(t, "FREEZE", cb.Status) },
		},
		{
			"releaseInstance",
			func(t *testing.T, id string) []byte { return releaseBody(t, id) },
			func(id string) string { return "releaseInstance:" + id },
			func(t *testing.T, _ string, cb workflows.Callback) { require.Empty(t, cb.OrderID) },
		},
		{
			"upgradeInstance",
			func(t *testing.T, id string) []byte { return upgradeBody(t, id, "CSup-"+id) },
			func(id string) string { return "upgradeInstance:" + id + ":CSup-" + id + ":CSup-" + id + "-000001" },
			func(t *testing.T, id string, cb workflows.Callback) {
				require.Equal(t, "CSup-"+id, cb.OrderID)
				require.Equal(t, "CSup-"+id+"-000001", cb.OrderLineID)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.activity, func(t *testing.T) {
			id := "cb-" + tc.activity
			h.allocate(t, id)

			a := h.produce(t, tc.body(t, id))

			requireResult(t, a, "000000", msgSuccess)
			require.Equal(t, `{"resultCode":"000000","resultMsg":"success"}`, string(a.Raw))
			cbs := h.callbacksOf(t, id)
			require.Len(t, cbs, 2)
			require.Equal(t, tc.wantKey(id), cbs[1].DedupKey)
			require.Equal(t, tc.activity, cbs[1].Activity)
			require.True(t, cbs[1].Delivered())
			require.Equal(t, "signalled", cbs[1].Outcome)
			calls := h.signaller.attempts()
			require.Len(t, calls, 1)
			require.NoError(t, calls[0].Err)
			require.Equal(t, "instance/"+id, calls[0].WorkflowID)
			require.Equal(t, workflows.CallbackSignal, calls[0].SignalName)
			signal, ok := calls[0].Arg.(workflows.Callback)
			require.True(t, ok)
			require.Equal(t, tc.wantKey(id), signal.Key)
			require.Equal(t, tc.activity, signal.Activity)
			require.Equal(t, cbs[1].Seq, signal.Seq)
			tc.check(t, id, signal)

			// The marketplace resends: one row, counted, not signalled again.
			a = h.produce(t, tc.body(t, id))

			requireResult(t, a, "000000", msgSuccess)
			cbs = h.callbacksOf(t, id)
			require.Len(t, cbs, 2)
			require.Equal(t, tc.wantKey(id), cbs[1].DedupKey)
			require.Equal(t, 1, cbs[1].Redeliveries)
			require.Len(t, h.signaller.attempts(), 1)
			h.signaller.reset()
		})
	}
}

func TestUpdateInstanceStatusEpisodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-episodes"
	h.allocate(t, id)

	for _, status := range []string{"FREEZE", "FREEZE", "UNFREEZE", "UNFREEZE", "FREEZE"} {
		requireResult(t, h.produce(t, statusBody(t, id, status)), "000000", msgSuccess)
	}

	var keys []string
	var redeliveries []int
	for _, cb := range h.callbacksOf(t, id)[1:] {
		keys = append(keys, cb.DedupKey)
		redeliveries = append(redeliveries, cb.Redeliveries)
	}
	require.Equal(t, []string{
		"updateInstanceStatus:" + id + ":FREEZE:1",
		"updateInstanceStatus:" + id + ":UNFREEZE:2",
		"updateInstanceStatus:" + id + ":FREEZE:3",
	}, keys)
	require.Equal(t, []int{1, 1, 0}, redeliveries)
	require.Len(t, h.signaller.attempts(), 3)
}

func TestLaterCallbackWaitsForAnUndeliveredOlderOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-ordered"
	h.allocate(t, id)

	h.signaller.setFailing(true)
	requireResult(t, h.produce(t, refreshBody(t, id, "CSrenew")), "000000", msgSuccess)
	require.Len(t, h.signaller.attempts(), 1)
	h.signaller.setFailing(false)

	a := h.produce(t, statusBody(t, id, "FREEZE"))

	requireResult(t, a, "000000", msgSuccess)
	require.Len(t, h.signaller.attempts(), 1, "the later callback is left for the relay, not signalled directly")
	cbs := h.callbacksOf(t, id)
	require.Len(t, cbs, 3)
	require.Equal(t, "refreshInstance", cbs[1].Activity)
	require.False(t, cbs[1].Delivered())
	require.Equal(t, 1, cbs[1].Attempts)
	require.Equal(t, "updateInstanceStatus", cbs[2].Activity)
	require.False(t, cbs[2].Delivered())
	require.Zero(t, cbs[2].Attempts)
	n, err := h.db.Callbacks.UndeliveredCount(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
}

// TestLaterCallbackWaitsForAnOlderOneNotYetRelayed isolates the ordering
// rule from delivery failures: the older callback was recorded (say by
// another replica) but never attempted, and Temporal is healthy.
func TestLaterCallbackWaitsForAnOlderOneNotYetRelayed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-ordered-2"
	h.allocate(t, id)
	older := refreshBody(t, id, "CSrenew-older")
	_, err := h.db.Callbacks.RecordCallback(t.Context(), store.NewCallback{
		DedupKey: "refreshInstance:" + id + ":CSrenew-older:CSrenew-older-000001", Activity: "refreshInstance",
		InstanceID: id, OrderID: "CSrenew-older", OrderLineID: "CSrenew-older-000001", Body: older,
		DeliverAfter: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)

	a := h.produce(t, upgradeBody(t, id, "CSup"))

	requireResult(t, a, "000000", msgSuccess)
	require.Empty(t, h.signaller.attempts(), "the later callback is left for the relay")
	cbs := h.callbacksOf(t, id)
	require.Len(t, cbs, 3)
	require.Equal(t, "upgradeInstance", cbs[2].Activity)
	require.False(t, cbs[2].Delivered())
	require.Zero(t, cbs[2].Attempts)

	t.Run("another instance is not held up", func(t *testing.T) {
		h.allocate(t, "inst-unrelated")
		requireResult(t, h.produce(t, releaseBody(t, "inst-unrelated")), "000000", msgSuccess)
		calls := h.signaller.delivered()
		require.Len(t, calls, 1)
		require.Equal(t, "instance/inst-unrelated", calls[0].WorkflowID)
	})
}

func TestOrderNotify(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := []byte(`{"activity":"orderNotify","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`)

	for i := range 2 {
		a := h.produce(t, body)

		requireResult(t, a, "000000", msgSuccess)
		require.Equal(t, `{"resultCode":"000000","resultMsg":"success"}`, string(a.Raw))
		var (
			key, outcome, rawBody string
			instanceID            *string
			delivered             bool
			redeliveries          int
		)
		require.NoError(t, h.raw.QueryRowContext(t.Context(), `SELECT dedup_key, instance_id, delivered_at IS NOT NULL,
			outcome, redeliveries, body FROM callbacks WHERE activity = 'orderNotify'`).
			Scan(&key, &instanceID, &delivered, &outcome, &redeliveries, &rawBody))
		require.Equal(t, "debug:orderNotify:CS2211181819B4LVS:CS2211181819B4LVS-000001", key, "a debug call's key")
		require.Nil(t, instanceID)
		require.True(t, delivered, "a notice is complete once recorded")
		require.Equal(t, "recorded", outcome)
		require.Equal(t, i, redeliveries)
		require.Equal(t, string(body), rawBody)
	}
	require.Empty(t, h.signaller.attempts())
	n, err := h.db.Callbacks.UndeliveredCount(t.Context())
	require.NoError(t, err)
	require.Zero(t, n)
}

// ---------------------------------------------------------------------------
// changeInstanceCheck.

func TestChangeInstanceCheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.allocate(t, "chk-allocated")
	for id, state := range map[string]string{
		"chk-active": "active", "chk-frozen": "frozen", "chk-released": "released",
		"chk-failed": "failed", "chk-provisioning": "provisioning",
	} {
		h.allocate(t, id)
		h.save(t, instance(id, state))
	}

	notFound := &serviceerror.NotFound{}
	noLonger := "the instance is no longer running; its spec cannot be changed"
	tests := []struct {
		name      string
		id        string
		result    workflows.ChangeCheckResult
		updateErr error
		getErr    error
		wantCode  string
		wantMsg   string
		asked     bool
	}{
		{name: "unknown", id: "chk-nobody", wantCode: "000003", wantMsg: msgUnknown},
		{name: "allocated, not yet saved", id: "chk-allocated", wantCode: "000002",
			wantMsg: "the instance is provisioning; its spec cannot be changed now"},
		{name: "provisioning", id: "chk-provisioning", wantCode: "000002",
			wantMsg: "the instance is provisioning; its spec cannot be changed now"},
		{name: "released", id: "chk-released", wantCode: "000002",
			wantMsg: "the instance is released; its spec cannot be changed now"},
		{name: "failed", id: "chk-failed", wantCode: "000002",
			wantMsg: "the instance is failed; its spec cannot be changed now"},
		{name: "allowed", id: "chk-active", result: workflows.ChangeCheckResult{Allowed: true},
			wantCode: "000000", wantMsg: "change allowed", asked: true},
		{name: "allowed while frozen", id: "chk-frozen", result: workflows.ChangeCheckResult{Allowed: true},
			wantCode: "000000", wantMsg: "change allowed", asked: true},
		{name: "rejected with a reason", id: "chk-active",
			result:   workflows.ChangeCheckResult{Reason: "35 users are active; the target allows 20"},
			wantCode: "000002", wantMsg: "35 users are active; the target allows 20", asked: true},
		{name: "rejected without a reason", id: "chk-active", result: workflows.ChangeCheckResult{Reason: "  "},
			wantCode: "000002", wantMsg: "the change does not fit the tenant's current usage", asked: true},
		{name: "update cannot be sent", id: "chk-active", updateErr: serviceerror.NewUnavailable("fake: no frontend"),
			wantCode: "000005", wantMsg: msgUnavailable, asked: true},
		{name: "update fails", id: "chk-active", getErr: errors.New("fake: update handler failed"),
			wantCode: "000005", wantMsg: msgUnavailable, asked: true},
		{name: "workflow not found", id: "chk-active", updateErr: notFound,
			wantCode: "000002", wantMsg: noLonger, asked: true},
		{name: "workflow gone while waiting", id: "chk-active", getErr: notFound,
			wantCode: "000002", wantMsg: noLonger, asked: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.temporal.setUpdate(tc.result, tc.updateErr, tc.getErr)
			before := h.effects(t)

			a := h.produce(t, changeCheckBody(t, tc.id))

			requireResult(t, a, tc.wantCode, tc.wantMsg)
			require.JSONEq(t, fmt.Sprintf(`{"resultCode":%q,"resultMsg":%q}`, tc.wantCode, tc.wantMsg), string(a.Raw))
			after := h.effects(t)
			updates := h.temporal.updateCalls()
			if !tc.asked {
				require.Equal(t, before, after, "nothing asked, recorded or signalled")
				return
			}
			require.Equal(t, before.Updates+1, after.Updates)
			after.Updates = before.Updates
			require.Equal(t, before, after, "a change check records and signals nothing")
			twenty := int64(20)
			require.Equal(t, client.UpdateWorkflowOptions{
				WorkflowID:   "instance/" + tc.id,
				UpdateName:   workflows.ChangeCheckUpdate,
				Args:         []any{workflows.ChangeCheckRequest{SkuCode: "sku-small", ProductID: "prod-small", LinearValue: &twenty}},
				WaitForStage: client.WorkflowUpdateStageCompleted,
			}, updates[len(updates)-1])
		})
	}
}

// ---------------------------------------------------------------------------
// Health and metrics.

func TestHealth(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	status, body := h.get(t, "/healthz", "")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	steps := []struct {
		name       string
		prepare    func(t *testing.T)
		wantStatus int
		want       string
	}{
		{"both healthy", func(*testing.T) {}, http.StatusOK, `{"postgres":"ok","temporal":"ok"}`},
		{"temporal failing", func(*testing.T) { h.temporal.setHealth(errors.New("fake: temporal-frontend:7233 refused")) },
			http.StatusServiceUnavailable, `{"postgres":"ok","temporal":"unreachable"}`},
		{"temporal back", func(*testing.T) { h.temporal.setHealth(nil) }, http.StatusOK, `{"postgres":"ok","temporal":"ok"}`},
		{"postgres closed", func(t *testing.T) { require.NoError(t, h.db.Close()) },
			http.StatusServiceUnavailable, `{"postgres":"unreachable","temporal":"ok"}`},
		{"both down", func(*testing.T) { h.temporal.setHealth(errors.New("fake: down")) },
			http.StatusServiceUnavailable, `{"postgres":"unreachable","temporal":"unreachable"}`},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.prepare(t)

			status, body := h.get(t, "/readyz", "")

			require.Equal(t, step.wantStatus, status)
			require.JSONEq(t, step.want, string(body))
		})
	}

	status, _ = h.get(t, "/healthz", "")
	require.Equal(t, http.StatusOK, status, "liveness does not depend on the dependencies")
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBacklogMetric())
	body := newInstanceBody(t, "CSm", "CSm-000001", "inst-metrics")
	requireResult(t, h.produce(t, body), "000000", msgSuccess)
	requireResult(t, h.produce(t, body), "000000", msgSuccess)
	requireResult(t, h.produce(t, queryBody(t, "inst-unknown")), "000003", "")
	requireResult(t, h.produceQuery(t, koogallery.SignedQuery("wrong-key", body, time.Now()), body), "000001", "")
	hostile := `{"activity":"evil\"}activity","instanceId":"x"}`
	requireResult(t, h.produce(t, []byte(hostile)), "000002", "unknown activity")
	h.signaller.setFailing(true)
	requireResult(t, h.produce(t, refreshBody(t, "inst-metrics", "CSm-renew")), "000000", msgSuccess)

	status, raw := h.get(t, "/metrics", "")

	require.Equal(t, http.StatusOK, status)
	text := string(raw)
	for _, line := range []string{
		`fulfillment_callbacks_total{activity="newInstance",result_code="000000"} 2`,
		`fulfillment_callbacks_total{activity="queryInstance",result_code="000003"} 1`,
		`fulfillment_callbacks_total{activity="invalid",result_code="000001"} 1`,
		`fulfillment_callbacks_total{activity="invalid",result_code="000002"} 1`,
		`fulfillment_callbacks_total{activity="refreshInstance",result_code="000000"} 1`,
		`fulfillment_callback_duration_seconds_count{activity="newInstance"} 2`,
		`fulfillment_relay_backlog 1`,
		`fulfillment_usage_periods_pending 0`,
	} {
		require.Contains(t, strings.Split(text, "\n"), line, "metrics:\n%s", text)
	}
	require.NotContains(t, text, "evil")
	known := []string{"invalid"}
	for _, a := range koogallery.Activities {
		known = append(known, string(a))
	}
	for _, m := range regexp.MustCompile(`(?m)^fulfillment_\w+\{activity="([^"]*)"`).FindAllStringSubmatch(text, -1) {
		require.Contains(t, known, m[1], "activity label values come from a fixed set")
	}
}

// ---------------------------------------------------------------------------
// Admin API.

type adminInstance struct {
	InstanceID  string  `json:"instanceId"`
	OrderID     string  `json:"orderId"`
	OrderLineID string  `json:"orderLineId"`
	State       string  `json:"state"`
	Debug       bool    `json:"debug"`
	ExpireTime  *string `json:"expireTime"`
	AppInfo     *struct {
		FrontEndURL string `json:"frontEndUrl"`
		AdminURL    string `json:"adminUrl"`
		UserName    string `json:"userName"`
		Memo        string `json:"memo"`
	} `json:"appInfo"`
	Events []api.TimelineItem `json:"events"`
}

func TestAdminGetInstance(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	t.Run("unknown", func(t *testing.T) {
		status, body := h.admin(t, "/v1/instances/adm-nobody")
		require.Equal(t, http.StatusNotFound, status)
		require.JSONEq(t, `{"error":"no such instance"}`, string(body))
	})

	t.Run("allocated, not yet saved", func(t *testing.T) {
		orderID, lineID := h.allocate(t, "adm-new")

		status, body := h.admin(t, "/v1/instances/adm-new")

		require.Equal(t, http.StatusOK, status)
		var got adminInstance
		require.NoError(t, json.Unmarshal(body, &got))
		require.Equal(t, "adm-new", got.InstanceID)
		require.Equal(t, orderID, got.OrderID)
		require.Equal(t, lineID, got.OrderLineID)
		require.Equal(t, "provisioning", got.State)
		require.True(t, got.Debug)
		require.Nil(t, got.AppInfo)
		require.Nil(t, got.ExpireTime)
		require.Len(t, got.Events, 1)
		require.Equal(t, "received", got.Events[0].Kind)
		require.Equal(t, "debug:newInstance:"+orderID+":"+lineID, got.Events[0].Key)
		require.Equal(t, "newInstance received; delivered: signalled [debug]", got.Events[0].Message)
	})

	t.Run("active, with credentials and a timeline", func(t *testing.T) {
		const id, password = "adm-active", "Ultra-S3cret-Passw0rd"
		orderID, lineID := h.allocate(t, id)
		requireResult(t, h.produce(t, refreshBody(t, id, "CSrenew-adm")), "000000", msgSuccess)
		cbs := h.callbacksOf(t, id)
		require.Len(t, cbs, 2)
		first, second := cbs[0].ReceivedAt, cbs[1].ReceivedAt
		require.True(t, second.After(first))
		expire := time.Date(2030, 11, 24, 2, 36, 18, 0, time.UTC)
		inst := instance(id, "active")
		inst.ExpireTime = &expire
		h.save(t, inst,
			// Appended out of time order: the timeline sorts by time.
			store.Event{Key: "renewed-1", Kind: "renewed", Message: "expiry moved to 2030-11-24", OccurredAt: second.Add(time.Second)},
			store.Event{Key: "provisioned", Kind: "provisioned", Message: "tenant created",
				OccurredAt: first.Add(second.Sub(first) / 2)},
		)
		h.saveCredentials(t, id, "admin-"+id, password)
		sealed, err := h.db.Instances.LookupInstances(t.Context(), []string{id})
		require.NoError(t, err)
		require.NotNil(t, sealed[id].Credentials)

		status, body := h.admin(t, "/v1/instances/"+id)

		require.Equal(t, http.StatusOK, status)
		require.NotContains(t, string(body), password)
		require.NotContains(t, string(body), sealed[id].Credentials.Password)
		require.NotContains(t, strings.ToLower(string(body)), "password")
		var got adminInstance
		require.NoError(t, json.Unmarshal(body, &got))
		require.Equal(t, "active", got.State)
		require.Equal(t, orderID, got.OrderID)
		require.Equal(t, lineID, got.OrderLineID)
		require.NotNil(t, got.ExpireTime)
		gotExpire, err := time.Parse(time.RFC3339Nano, *got.ExpireTime)
		require.NoError(t, err)
		require.True(t, expire.Equal(gotExpire), "expireTime %s", *got.ExpireTime)
		require.NotNil(t, got.AppInfo)
		require.Equal(t, "admin-"+id, got.AppInfo.UserName)
		require.Equal(t, "https://app.example.com/t/"+id, got.AppInfo.FrontEndURL)

		var kinds, keys []string
		for _, e := range got.Events {
			kinds, keys = append(kinds, e.Kind), append(keys, e.Key)
		}
		require.Equal(t, []string{"received", "provisioned", "received", "renewed"}, kinds)
		require.Equal(t, []string{"debug:newInstance:" + orderID + ":" + lineID, "provisioned",
			"refreshInstance:" + id + ":CSrenew-adm:CSrenew-adm-000001", "renewed-1"}, keys)
		require.True(t, slices.IsSortedFunc(got.Events, func(a, b api.TimelineItem) int { return a.At.Compare(b.At) }))
	})
}

func TestAdminListInstances(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, row := range []struct{ id, state, order string }{
		{"l-1", "active", "ORD-A"}, {"l-2", "active", "ORD-B"}, {"l-3", "frozen", "ORD-A"},
		{"l-4", "active", "ORD-A"}, {"l-5", "released", "ORD-C"},
	} {
		inst := instance(row.id, row.state)
		inst.OrderID = row.order
		h.save(t, inst)
	}
	h.saveCredentials(t, "l-1", "lister", "L1st-Pa55w0rd")

	type page struct {
		Instances []adminInstance `json:"instances"`
		Next      string          `json:"next"`
	}
	list := func(t *testing.T, query string) ([]string, string) {
		t.Helper()
		status, body := h.admin(t, "/v1/instances"+query)
		require.Equal(t, http.StatusOK, status, "%s", body)
		require.NotContains(t, string(body), "L1st-Pa55w0rd")
		var p page
		require.NoError(t, json.Unmarshal(body, &p))
		ids := []string{}
		for _, inst := range p.Instances {
			ids = append(ids, inst.InstanceID)
		}
		return ids, p.Next
	}

	tests := []struct {
		query    string
		wantIDs  []string
		wantNext string
	}{
		{"", []string{"l-1", "l-2", "l-3", "l-4", "l-5"}, ""},
		{"?state=active", []string{"l-1", "l-2", "l-4"}, ""},
		{"?orderId=ORD-A", []string{"l-1", "l-3", "l-4"}, ""},
		{"?state=active&orderId=ORD-A", []string{"l-1", "l-4"}, ""},
		{"?state=frozen&orderId=ORD-B", []string{}, ""},
		{"?limit=2", []string{"l-1", "l-2"}, "l-2"},
		{"?limit=2&after=l-2", []string{"l-3", "l-4"}, "l-4"},
		{"?limit=2&after=l-4", []string{"l-5"}, ""},
		{"?state=active&limit=2", []string{"l-1", "l-2"}, "l-2"},
		{"?state=active&limit=2&after=l-2", []string{"l-4"}, ""},
		{"?limit=500", []string{"l-1", "l-2", "l-3", "l-4", "l-5"}, ""},
		{"?limit=1", []string{"l-1"}, "l-1"},
		// A page that happens to hold the last instance has no next page.
		{"?limit=5", []string{"l-1", "l-2", "l-3", "l-4", "l-5"}, ""},
		{"?limit=2&after=l-3", []string{"l-4", "l-5"}, ""},
	}
	for _, tc := range tests {
		t.Run("list"+tc.query, func(t *testing.T) {
			ids, next := list(t, tc.query)
			require.Equal(t, tc.wantIDs, ids)
			require.Equal(t, tc.wantNext, next)
		})
	}

	t.Run("following next visits every instance once", func(t *testing.T) {
		var all []string
		after := ""
		for range 10 {
			ids, next := list(t, "?limit=2&after="+url.QueryEscape(after))
			all = append(all, ids...)
			if next == "" {
				break
			}
			after = next
		}
		require.Equal(t, []string{"l-1", "l-2", "l-3", "l-4", "l-5"}, all)
	})

	for _, query := range []string{"?state=bogus", "?state=ACTIVE", "?limit=0", "?limit=501", "?limit=abc", "?limit=-1", "?limit=2.5"} {
		t.Run("refused"+query, func(t *testing.T) {
			status, body := h.admin(t, "/v1/instances"+query)
			require.Equal(t, http.StatusBadRequest, status)
			var e struct {
				Error string `json:"error"`
			}
			require.NoError(t, json.Unmarshal(body, &e))
			require.NotEmpty(t, e.Error)
			require.NotContains(t, string(body), "l-1")
		})
	}
}

// ---------------------------------------------------------------------------
// Logs.

// TestLogsKeepSecrets: the API's logs, at debug level, of signed callbacks
// accepted and refused (wrong key, wrong body, stale, replayed, invalid,
// unknown), a queryInstance handing out credentials, delivery failures,
// and admin and usage calls with right and wrong tokens, hold no key, no
// token, no password (clear or sealed) and no signature, on any line. The
// open-API SK and the provisioner key never reach the API; the whole
// server's logs are checked for them in cmd/fulfillment.
func TestLogsKeepSecrets(t *testing.T) {
	t.Parallel()
	var logs testenv.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarness(t, withLogger(logger), withEncryption(api.EncryptNone), withUsageToken(testUsageToken), withDemo())
	const id, password = "log-1", "L0gged-Never-Pa55"
	h.allocate(t, id)
	h.save(t, instance(id, "active"))
	h.saveCredentials(t, id, "log-admin", password)
	sealed, err := h.db.Instances.LookupInstances(t.Context(), []string{id})
	require.NoError(t, err)
	h.payPerUse(t, "log-ppu")

	// Every request signature sent, and every answer's Body-Sign.
	var signatures, bodySigns []string
	send := func(q url.Values, body []byte) produceAnswer {
		signatures = append(signatures, q["signature"]...)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.srv.URL+"/produce?"+q.Encode(), bytes.NewReader(body))
		require.NoError(t, err)
		resp, err := h.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		_, sig, _ := strings.Cut(resp.Header.Get(koogallery.BodySignHeader), `signature="`)
		bodySigns = append(bodySigns, strings.TrimSuffix(sig, `"`))
		return requireSignedAnswer(t, resp.StatusCode, resp.Header, raw)
	}
	signed := func(body []byte) produceAnswer {
		return send(koogallery.SignedQuery(testAccessKey, body, time.Now()), body)
	}
	query := queryBody(t, id)

	// A purchase, and the query that hands out its credentials (in clear:
	// encryption none) ...
	requireResult(t, signed(newInstanceBody(t, "CSlog-new", "CSlog-new-000001", "log-new")), "000000", msgSuccess)
	a := signed(query)
	requireResult(t, a, "000000", msgSuccess)
	require.Equal(t, password, a.Info[0].AppInfo.Password)
	// ... refused callbacks of every kind ...
	requireResult(t, send(koogallery.SignedQuery("wrong-key", query, time.Now()), query), "000001", "")
	requireResult(t, send(koogallery.SignedQuery(testAccessKey, queryBody(t, "other"), time.Now()), query), "000001", "")
	stale := time.Now().Add(-2 * time.Minute)
	ts := strconv.FormatInt(stale.UnixMilli(), 10)
	requireResult(t, send(url.Values{"signature": {koogallery.Sign(testAccessKey, "STALE-NONCE-1", ts, query)},
		"timestamp": {ts}, "nonce": {"STALE-NONCE-1"}}, query), "000001", "")
	replayed := koogallery.SignedQuery(testAccessKey, query, time.Now())
	requireResult(t, send(replayed, query), "000000", "")
	requireResult(t, send(replayed, query), "000001", "")
	requireResult(t, signed([]byte(`{"activity":"releaseInstance","instanceId":"log-1\u0000"}`)), "000002", "")
	requireResult(t, signed(releaseBody(t, "log-nobody")), "000003", "")
	// ... and failures that log errors.
	h.signaller.setFailing(true)
	requireResult(t, signed(refreshBody(t, id, "CSlog-renew")), "000000", msgSuccess)
	h.temporal.setUpdate(workflows.ChangeCheckResult{}, errors.New("fake: update failed"), nil)
	requireResult(t, signed(changeCheckBody(t, id)), "000005", "")

	// Admin calls and usage reports, with right and wrong tokens.
	status, _ := h.admin(t, "/v1/instances/"+id)
	require.Equal(t, http.StatusOK, status)
	for _, auth := range []string{"Bearer " + testAdminToken + "-wrong", "Bearer " + testUsageToken, testAdminToken} {
		status, _ = h.get(t, "/v1/instances", auth)
		require.Equal(t, http.StatusUnauthorized, status)
		status, _ = h.postSignal(t, signalRequest{Instance: id, Name: workflows.OpRetry, Body: `{"reason":"r"}`, Auth: ptrTo(auth)})
		require.Equal(t, http.StatusUnauthorized, status)
	}
	h.temporal.setSignalErr(errors.New("fake: temporal down"))
	status, _ = h.postSignal(t, signalRequest{Instance: id, Name: workflows.OpRetry, Body: `{"reason":"r"}`})
	require.Equal(t, http.StatusServiceUnavailable, status)
	for _, token := range []string{testUsageToken + "x", testAdminToken + "x", ""} {
		status, _ = h.postUsage(t, token, usageBody(t, record("log-ppu", "k-wrong", 1, time.Now())))
		require.Equal(t, http.StatusUnauthorized, status)
	}
	status, _ = h.postUsage(t, testUsageToken, usageBody(t, record("log-ppu", "k-1", 1, time.Now())))
	require.Equal(t, http.StatusOK, status)

	out := logs.String()
	require.Contains(t, out, "HTTP request", "requests are logged")
	require.Contains(t, out, "Production-interface call refused", "refusals are logged")
	require.Contains(t, out, "delivery left to the relay", "delivery failures are logged")
	require.Contains(t, out, "Operator action not delivered", "admin failures are logged")
	secrets := map[string]string{
		"access key":      testAccessKey,
		"admin token":     testAdminToken,
		"usage token":     testUsageToken,
		"password":        password,
		"sealed password": sealed[id].Credentials.Password,
	}
	for i, sig := range signatures {
		secrets[fmt.Sprintf("request signature %d", i)] = sig
		secrets[fmt.Sprintf("request signature %d (lowercase)", i)] = strings.ToLower(sig)
	}
	for i, sig := range bodySigns {
		require.NotEmpty(t, sig)
		secrets[fmt.Sprintf("Body-Sign %d", i)] = sig
	}
	for n, line := range strings.Split(out, "\n") {
		for name, secret := range secrets {
			require.NotContains(t, line, secret, "log line %d holds the %s", n+1, name)
		}
	}
}

// TestProducePanicIsAnsweredSigned: even a bug answers the marketplace with
// a signed 000005 (so it retries), never with an unsigned error page.
func TestProducePanicIsAnsweredSigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.allocate(t, "panic-1")
	// No inbox: recording the callback dereferences nil.
	broken := httptest.NewServer(api.New(api.Config{
		Store: h.db, Temporal: h.temporal, AccessKey: testAccessKey,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}).Handler())
	t.Cleanup(broken.Close)

	body := statusBody(t, "panic-1", "FREEZE")
	query := koogallery.SignedQuery(testAccessKey, body, time.Now())
	resp, err := http.Post(broken.URL+"/produce?"+query.Encode(), "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	answer := requireSignedAnswer(t, resp.StatusCode, resp.Header, raw)
	require.Equal(t, "000005", answer.ResultCode)
	require.NotContains(t, string(raw), "nil pointer")
}

// TestReadsAreLoggedAtDebug: health checks, metrics, the admin API's reads
// and the marketplace's queryInstance polls go well all day; they are
// logged at debug level, so that the requests that change something, and
// every failure, stand out at info.
func TestReadsAreLoggedAtDebug(t *testing.T) {
	t.Parallel()
	var logs testenv.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarness(t, withLogger(logger))
	const id = "log-read-1"
	h.allocate(t, id)
	h.save(t, instance(id, "active"))

	// lineOf is the last request log line of method and path.
	lineOf := func(method, path string) string {
		t.Helper()
		var last string
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `msg="HTTP request"`) && strings.Contains(line, "method="+method+" ") &&
				strings.Contains(line, "path="+path+" ") {
				last = line
			}
		}
		require.NotEmpty(t, last, "no request log line for %s %s in:\n%s", method, path, logs.String())
		return last
	}

	status, _ := h.get(t, "/healthz", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, lineOf("GET", "/healthz"), "level=DEBUG")
	status, _ = h.admin(t, "/v1/instances/"+id)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, lineOf("GET", "/v1/instances/"+id), "level=DEBUG")

	requireResult(t, h.produce(t, queryBody(t, id)), "000000", "")
	require.Contains(t, lineOf("POST", "/produce"), "level=DEBUG", "a queryInstance poll is a read")
	requireResult(t, h.produce(t, newInstanceBody(t, "CSlog-read-2", "CSlog-read-2-1", "log-read-2")), "000000", "")
	require.Contains(t, lineOf("POST", "/produce"), "level=INFO", "a callback that changes something is at info")

	status, _ = h.admin(t, "/v1/instances/nobody-here")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, lineOf("GET", "/v1/instances/nobody-here"), "level=INFO", "a failed read is at info")
}
