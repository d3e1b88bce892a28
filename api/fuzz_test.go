package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// The fuzz targets drive the real handlers through httptest against a real
// database: the handlers need Postgres, and "changes nothing" can only be
// checked where changes can happen. Fuzzing runs the inputs in worker
// processes, each of which builds its harness once (one database, dropped
// when the worker ends) and reuses it for every input, so the properties
// hold whatever earlier inputs stored.

// Instances every fuzz harness starts with.
const (
	fzActive   = "fz-active"   // active, with credentials
	fzReleased = "fz-released" // released: no action applies
	fzPPU      = "fz-ppu"      // active pay-per-use: takes usage
	fzCode     = "FZ-CODE-1"   // an activated license code
)

func newFuzzHarness(f *testing.F) *harness {
	f.Helper()
	h := newHarness(f, withUsageToken(testUsageToken), withLicenseKey(testLicenseKey))
	now := time.Now().UTC()
	_, _, err := h.db.LicenseCodes.RecordActivation(f.Context(), store.LicenseCode{License: fzCode, Status: store.LicenseActive,
		MarketplaceStatus: koogallery.LicenseAlive, ActivatedAt: now, CheckedAt: now}, inbox.ActivationCallback(fzCode, []byte(`{}`)))
	require.NoError(f, err)
	h.allocate(f, fzActive)
	h.save(f, instance(fzActive, "active"))
	h.saveCredentials(f, fzActive, "fz-admin", "Fz-Pa55word")
	h.allocate(f, fzReleased)
	h.save(f, instance(fzReleased, string(workflows.StateReleased)))
	h.payPerUse(f, fzPPU)
	return h
}

// serve hands req to the router directly, without a network round trip.
func (h *harness) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	return rec
}

// fuzzState is everything a call could change.
type fuzzState struct {
	sideEffects
	OperatorSignals int
	AuditRows       int
	UsageRecords    int
	UsageSum        string
}

// fuzzState reads the counts in one query: fuzzing runs it twice per input.
func (h *harness) fuzzState(t testing.TB) fuzzState {
	t.Helper()
	var s fuzzState
	require.NoError(t, h.raw.QueryRowContext(t.Context(), `SELECT
		(SELECT count(*) FROM callbacks), (SELECT COALESCE(sum(redeliveries), 0) FROM callbacks),
		(SELECT count(*) FROM callbacks WHERE delivered_at IS NULL), (SELECT count(*) FROM instance_keys),
		(SELECT count(*) FROM operator_actions),
		(SELECT count(*) FROM usage_records), (SELECT COALESCE(sum(quantity), 0)::text FROM usage_records)`).Scan(
		&s.Callbacks, &s.Redeliveries, &s.Undelivered, &s.InstanceKeys, &s.AuditRows, &s.UsageRecords, &s.UsageSum))
	s.SignalAttempts = len(h.signaller.attempts())
	s.Updates = len(h.temporal.updateCalls())
	s.OperatorSignals = len(h.temporal.signalCalls())
	return s
}

// validID mirrors the API's rule for IDs in paths and queries.
func validID(s string) bool {
	return s != "" && len(s) <= 64 && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

const idErrorFormat = "%s must be text of 1 to 64 bytes, valid UTF-8 without NUL characters"

// routable reports whether s, escaped, stays one path segment that the
// router does not redirect: anything else tests the router, not the API.
func routable(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.Contains(s, "/")
}

// errorOf decodes a 4xx answer's {"error": "..."}.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "answer %d %s", rec.Code, rec.Body.Bytes())
	require.NotEmpty(t, e.Error, "answer %d %s", rec.Code, rec.Body.Bytes())
	return e.Error
}

// FuzzProduce: any correctly signed body is answered HTTP 200 with a
// signed resultCode; never 000005 while the database and Temporal are up
// (the marketplace would retry a bad body for hours); a body the parser
// refuses, or one the database cannot hold, is 000002 with the parser's
// message and changes nothing; an unknown instance is 000003 and changes
// nothing; an accepted callback is recorded exactly once.
func FuzzProduce(f *testing.F) {
	h := newFuzzHarness(f)
	seed := func(fields map[string]any) { f.Add(jsonBody(f, fields)) }
	for _, id := range []string{fzActive, fzReleased, fzPPU, "fz-nobody"} {
		seed(map[string]any{"activity": "queryInstance", "instanceId": id})
		seed(map[string]any{"activity": "refreshInstance", "scene": "RENEWAL", "orderId": "CSr", "orderLineId": "CSr-1",
			"instanceId": id, "expireTime": "20301124023618256"})
		seed(map[string]any{"activity": "updateInstanceStatus", "instanceId": id, "status": "FREEZE"})
		seed(map[string]any{"activity": "releaseInstance", "instanceId": id})
		seed(map[string]any{"activity": "upgradeInstance", "instanceId": id, "orderId": "CSu", "orderLineId": "CSu-1"})
		seed(map[string]any{"activity": "changeInstanceCheck", "instanceId": id,
			"productInfo": []map[string]any{{"skuCode": "s", "linearValue": "20"}}})
		seed(map[string]any{"activity": "getLicenseAsync", "instanceId": id, "effectiveTime": "2026-12-01 00:00:00 z",
			"expireTime": "2026-12-31 00:00:00 z", "eventId": "ev-1", "deviceFingerprint": "fp-1"})
	}
	seed(map[string]any{"activity": "newInstance", "orderId": "CSfz", "orderLineId": "CSfz-1", "businessId": "fz-new", "testFlag": "1"})
	seed(map[string]any{"activity": "newInstance", "orderId": "CSfz", "orderLineId": "CSfz-2", "businessId": fzActive})
	seed(map[string]any{"activity": "orderNotify", "orderId": "CSfz", "orderLineId": "CSfz-1"})
	for _, code := range []string{fzCode, "FZ-NEVER"} {
		seed(map[string]any{"activity": "refreshLicenseCode", "scene": "RENEWAL", "orderId": "CSr", "orderLineId": "CSr-1",
			"license": code, "expireTime": "20301231000000"})
		seed(map[string]any{"activity": "updateLicenseCodeStatus", "license": code, "status": "FREEZE"})
		seed(map[string]any{"activity": "releaseLicenseCode", "license": code, "testFlag": "1"})
	}
	seed(map[string]any{"activity": "queryInstance", "instanceId": fzActive + ",fz-nobody," + fzPPU})
	for _, body := range []string{
		``, `{}`, `[]`, `{"activity":"deleteEverything"}`,
		`{"activity":"releaseInstance","instanceId":"fz-active\u0000"}`,
		"{\"activity\":\"releaseInstance\",\"instanceId\":\"fz-active\",\"note\":\"\xff\xfe\"}",
		`{"activity":"newInstance","orderId":"CS\u0000","orderLineId":"L","businessId":"b"}`,
		`{"activity":"changeInstanceCheck","instanceId":"fz-active","productInfo":{"skuCode":"\u0000"}}`,
		`{"activity":"queryInstance","instanceId":" , ,fz-active,fz-active "}`,
	} {
		f.Add([]byte(body))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		before := h.fuzzState(t)
		// The license-code callbacks are signed, and answered, with their
		// own key (contract §13.5).
		key := testAccessKey
		if koogallery.IsLicenseCodeActivity(koogallery.PeekActivity(body)) {
			key = testLicenseKey
		}
		q := koogallery.SignedQuery(key, body, time.Now())
		rec := h.serve(httptest.NewRequest(http.MethodPost, "/produce?"+q.Encode(), bytes.NewReader(body)))
		h.settle(t)

		a := requireAnswerSignedWith(t, key, rec.Code, rec.Header(), rec.Body.Bytes())
		if len(body) > maxBody {
			require.Equal(t, http.StatusRequestEntityTooLarge, a.Status)
			require.Equal(t, before, h.fuzzState(t))
			return
		}
		require.Equal(t, http.StatusOK, a.Status, "answer %s", a.Raw)
		require.NotEqual(t, "000001", a.ResultCode, "the call was signed correctly: %s", a.Raw)
		require.NotEqual(t, "000005", a.ResultCode, "nothing is down, and retrying cannot help a bad body: %s", a.Raw)

		req, err := koogallery.ParseRequest(body)
		switch {
		case !utf8.Valid(body):
			require.Equal(t, "000002", a.ResultCode, "answer %s", a.Raw)
			require.Equal(t, "request body is not valid UTF-8", a.ResultMsg)
			require.Equal(t, before, h.fuzzState(t), "an invalid call changes nothing")
			return
		case err != nil:
			require.Equal(t, "000002", a.ResultCode, "answer %s", a.Raw)
			require.Equal(t, err.Error(), a.ResultMsg, "the parser's own message")
			require.Equal(t, before, h.fuzzState(t), "an invalid call changes nothing")
			return
		case strings.Contains(fmt.Sprintf("%+v", req), "\x00"):
			// JSON's \u0000: PostgreSQL text cannot hold it.
			require.Equal(t, "000002", a.ResultCode, "answer %s", a.Raw)
			require.Regexp(t, `^field [a-zA-Z.]+ must not contain NUL characters$`, a.ResultMsg)
			require.Equal(t, before, h.fuzzState(t), "an invalid call changes nothing")
			return
		}

		after := h.fuzzState(t)
		switch req.Activity() {
		case koogallery.ActivityQueryInstance:
			require.Contains(t, []string{"000000", "000003", "000004"}, a.ResultCode, "answer %s", a.Raw)
			require.Equal(t, before, after, "queryInstance only reads")
		case koogallery.ActivityChangeInstanceCheck:
			require.Contains(t, []string{"000002", "000003"}, a.ResultCode, "the fake application refuses every change: %s", a.Raw)
			before.Updates, after.Updates = 0, 0
			require.Equal(t, before, after, "changeInstanceCheck only asks")
		case koogallery.ActivityGetLicenseAsync:
			recorded := (after.Callbacks - before.Callbacks) + (after.Redeliveries - before.Redeliveries)
			switch a.ResultCode {
			case "000000", "000004":
				require.EqualValues(t, 1, recorded, "recorded once, as new or as a redelivery")
			case "000900", "000901", "000902", "000903":
				require.EqualValues(t, 1, recorded, "a refusal is recorded as a notice, once")
				require.Equal(t, before.SignalAttempts, after.SignalAttempts, "a refusal applies nothing")
			case "000003":
				require.Equal(t, before, after, "an unknown instance changes nothing")
			default:
				require.Failf(t, "unexpected answer", "%s", a.Raw)
			}
		default:
			switch a.ResultCode {
			case "000000":
				recorded := (after.Callbacks - before.Callbacks) + (after.Redeliveries - before.Redeliveries)
				require.EqualValues(t, 1, recorded, "recorded once, as new or as a redelivery")
			case "000003", "000002":
				// 000003: an unknown instance, or a license code never
				// activated (a debugger's call on one is accepted).
				require.True(t, a.ResultCode == "000003" || req.Activity() == koogallery.ActivityNewInstance,
					"only newInstance refuses a businessId in use: %s", a.Raw)
				require.Equal(t, before, after, "a refused call changes nothing")
			default:
				require.Failf(t, "unexpected answer", "%s", a.Raw)
			}
		}
	})
}

// FuzzAdminReads: the instance ID of GET /v1/instances/{id} and
// /v1/instances/{id}/usage, and the query strings of the list and the
// usage view. Reads never answer 5xx while the database is up, refuse a
// malformed ID with 400 before any lookup, only list what the filters
// ask for, and change nothing.
func FuzzAdminReads(f *testing.F) {
	h := newFuzzHarness(f)
	for _, seed := range []struct{ id, query string }{
		{fzActive, ""}, {fzPPU, "from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&limit=10"}, {"fz-nobody", "limit=1"},
		{fzActive, "state=active&orderId=CSfz-active&limit=500"}, {fzReleased, "state=released&after=fz-a"},
		{"a\x00b", "after=%00"}, {"\xff", "orderId=%FF"}, {strings.Repeat("i", 65), "limit=0"},
		{"fz-active ", "state=ACTIVE&limit=5e1"}, {"%", "limit=+5&limit=7&from=0000-01-01T00:00:00Z"},
		{"?x", "to=9999-12-31T23:59:59+23:59&limit=10000"}, {"fz", "%zz&;;=&state"},
	} {
		f.Add(seed.id, seed.query)
	}

	f.Fuzz(func(t *testing.T, id, rawQuery string) {
		before := h.fuzzState(t)
		get := func(path string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.URL.RawQuery = rawQuery // as sent, however malformed
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			return h.serve(req)
		}

		list := get("/v1/instances")
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, list.Code, "answer %s", list.Body.Bytes())
		query, _ := url.ParseQuery(rawQuery) // what the handler reads: malformed pairs dropped
		if list.Code == http.StatusOK {
			var page struct {
				Instances []api.InstanceView `json:"instances"`
				Next      string             `json:"next"`
			}
			require.NoError(t, json.Unmarshal(list.Body.Bytes(), &page))
			for _, inst := range page.Instances {
				if state := query.Get("state"); state != "" {
					require.Equal(t, state, inst.State)
				}
				if order := query.Get("orderId"); order != "" {
					require.Equal(t, order, inst.OrderID)
				}
			}
			if page.Next != "" {
				require.Equal(t, page.Instances[len(page.Instances)-1].InstanceID, page.Next)
			}
		} else {
			errorOf(t, list)
		}

		if routable(id) {
			for _, path := range []string{"/v1/instances/" + url.PathEscape(id), "/v1/instances/" + url.PathEscape(id) + "/usage"} {
				rec := get(path)
				require.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound}, rec.Code,
					"%s: %s", path, rec.Body.Bytes())
				if !validID(id) {
					require.Equal(t, http.StatusBadRequest, rec.Code, path)
					require.Equal(t, fmt.Sprintf(idErrorFormat, "instanceId"), errorOf(t, rec))
				}
				if rec.Code != http.StatusOK {
					errorOf(t, rec)
				}
			}
		}
		require.Equal(t, before, h.fuzzState(t), "reads change nothing")
	})
}

// FuzzSignal: POST /v1/instances/{id}/signals/{name} with any instance ID,
// signal name, X-Operator header and body. An unknown signal is 404 and a
// malformed instance ID 400; whatever is refused (4xx) is neither audited
// nor signalled; a 202 audited and signalled exactly the action asked
// for; and nothing is answered 5xx while the database and Temporal are up.
func FuzzSignal(f *testing.F) {
	h := newFuzzHarness(f)
	for _, seed := range []struct {
		id, name, operator, body string
	}{
		{fzActive, workflows.OpRetry, "alice", `{"reason":"application fixed"}`},
		{fzActive, workflows.OpExtendGrace, "", `{"reason":"r","duration":"72h"}`},
		{fzActive, workflows.OpExtendGrace, "", `{"reason":"r","duration":"-1h"}`},
		{fzActive, workflows.OpConfirmDelivery, "", `{"reason":"r","evidence":"doc-1","result":"done","startTime":"2026-01-01T00:00:00Z"}`},
		{fzActive, workflows.OpAccept, "", `{"reason":"r","acceptedAt":"2999-01-01T00:00:00Z"}`},
		{fzActive, workflows.OpSetPolicy, "", `{"reason":"r","releasePolicy":"release"}`},
		{fzActive, workflows.OpForceFreeze, "", `{"reason":"r","duration":"1h"}`},
		{fzActive, workflows.OpRetry, "bob\x00", `{"reason":"r"}`},
		{fzActive, workflows.OpRetry, "", `{"reason":"\u0000"}`},
		{fzActive, workflows.OpRetry, "", `{"reason":"r"}]`},
		{fzActive, workflows.OpRetry, "", `{"reason":"r","extra":1}`},
		{fzActive, workflows.OpRetry, "", ``},
		{fzReleased, workflows.OpForceRelease, "", `{"reason":"r"}`},
		{"fz-nobody", workflows.OpSkip, "", `{"reason":"r"}`},
		{"fz\x00", workflows.OpRetry, "", `{"reason":"r"}`},
		{fzActive, "RETRY", "", `{"reason":"r"}`},
		{fzActive, "state", "", `{"reason":"r"}`},
	} {
		f.Add(seed.id, seed.name, seed.operator, []byte(seed.body))
	}

	f.Fuzz(func(t *testing.T, id, name, operator string, body []byte) {
		if !routable(id) || !routable(name) {
			return
		}
		before := h.fuzzState(t)
		req := httptest.NewRequest(http.MethodPost,
			"/v1/instances/"+url.PathEscape(id)+"/signals/"+url.PathEscape(name), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		if operator != "" {
			req.Header["X-Operator"] = []string{operator} // as sent, unvalidated by net/http
		}
		rec := h.serve(req)

		require.Contains(t, []int{http.StatusAccepted, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict},
			rec.Code, "answer %s", rec.Body.Bytes())
		switch {
		case !slices.Contains(workflows.OperatorActions, name):
			require.Equal(t, http.StatusNotFound, rec.Code)
			require.Contains(t, errorOf(t, rec), "unknown signal")
		case !validID(id):
			require.Equal(t, http.StatusBadRequest, rec.Code)
			require.Equal(t, fmt.Sprintf(idErrorFormat, "instanceId"), errorOf(t, rec))
		}
		after := h.fuzzState(t)
		if rec.Code != http.StatusAccepted {
			errorOf(t, rec)
			require.Equal(t, before, after, "a refused action is neither audited nor signalled")
			return
		}

		var accepted api.SignalAccepted
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &accepted))
		require.Equal(t, before.AuditRows+1, after.AuditRows, "audited once")
		require.Equal(t, before.OperatorSignals+1, after.OperatorSignals, "signalled once")
		sent := h.temporal.signalCalls()[after.OperatorSignals-1]
		require.Equal(t, workflows.InstanceWorkflowID(id), sent.WorkflowID)
		require.Equal(t, workflows.OperatorSignal, sent.Name)
		require.Equal(t, name, sent.Request.Name)
		require.Equal(t, accepted.RequestID, sent.Request.ID)
		var b api.SignalBody
		require.NoError(t, json.Unmarshal(body, &b))
		require.Equal(t, strings.TrimSpace(b.Reason), sent.Request.Reason)
		require.NotEmpty(t, sent.Request.Reason)
		audit := h.auditOf(t, id, accepted.RequestID)
		require.Equal(t, name, audit.Action)
		require.Equal(t, sent.Request.Actor, audit.Actor)
	})
}

// FuzzUsageIntake: any body sent to POST /v1/usage with the usage token is
// either refused whole (400: nothing stored) or accepted whole (200: every
// record counted as accepted or duplicate, exactly the accepted ones
// stored), never 5xx while the database is up.
func FuzzUsageIntake(f *testing.F) {
	h := newFuzzHarness(f)
	now := time.Now().UTC()
	rec := func(instance, key string, quantity any, at time.Time) map[string]any {
		return map[string]any{"instanceId": instance, "meter": "api-calls", "quantity": quantity,
			"time": at.Format(time.RFC3339Nano), "idempotencyKey": key}
	}
	for _, records := range [][]map[string]any{
		{rec(fzPPU, "k-1", 1.25, now)},
		{rec(fzPPU, "k-2", "0.0001", now), rec(fzPPU, "k-2", "0.0001", now)},
		{rec(fzPPU, "k-3", 1, now), rec(fzPPU, "k-3", 2, now)},
		{rec(fzActive, "k-4", 1, now)},
		{rec(fzReleased, "k-5", 1, now)},
		{rec("fz-pp\u0000", "k-6", 1, now)},
		{rec(fzPPU, "k-7\u0000", 1, now)},
		{rec(fzPPU, "k-8", "1e-5", now), rec(fzPPU, "k-9", 0, now)},
		{rec(fzPPU, "k-10", 922337203685477.5807, now.Add(-20*24*time.Hour))},
		{rec(fzPPU, "k-11", 1, now.Add(time.Hour))},
	} {
		f.Add([]byte(usageBody(f, records...)))
	}
	for _, body := range []string{``, `{}`, `{"records":null}`, `{"records":[]}`, `{"records":[{}]}`, `[]`, `{"records":[1]}`} {
		f.Add([]byte(body))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		before := h.fuzzState(t)
		req := httptest.NewRequest(http.MethodPost, "/v1/usage", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testUsageToken)
		rec := h.serve(req)

		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, rec.Code, "answer %s", rec.Body.Bytes())
		after := h.fuzzState(t)
		if rec.Code == http.StatusBadRequest {
			errorOf(t, rec)
			require.Equal(t, before, after, "a refused batch stores nothing")
			return
		}
		var a usageAnswer
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
		var in api.UsageIntake
		require.NoError(t, json.Unmarshal(body, &in))
		require.Equal(t, len(in.Records), a.Accepted+a.Duplicates)
		require.Equal(t, before.UsageRecords+a.Accepted, after.UsageRecords, "exactly the accepted records are stored")
		for _, r := range in.Records {
			require.Equal(t, fzPPU, r.InstanceID, "only the pay-per-use instance takes usage")
		}
		before.UsageRecords, before.UsageSum, after.UsageRecords, after.UsageSum = 0, "", 0, ""
		require.Equal(t, before, after, "usage changes nothing else")
	})
}

// FuzzKit: any correctly signed body on any kit operation is answered
// HTTP 200 with a resultCode signed with the kit key; never 000001 (it was
// signed) nor 000005 (nothing is down, and no clientSecret is configured
// to fail); a body the kit's parser refuses, or one the database cannot
// hold, is 000002 and records nothing; an accepted sync is recorded once,
// as new or as a redelivery.
func FuzzKit(f *testing.F) {
	h := newHarness(f, withKit(testKitKey, nil))
	h.allocate(f, fzActive)
	common := `"instanceId":"` + fzActive + `","tenantId":"t-1","testFlag":0,"timeStamp":"20261204101010123"`
	for _, seed := range []struct{ op, body string }{
		{"tenantSync", `{` + common + `,"orderId":"o","tenantCode":"c","name":"n","domainName":"https://d","flag":1}`},
		{"tenantSync", `{"instanceId":"","tenantId":"probe","flag":0,"testFlag":1}`},
		{"authSync", `{` + common + `,"appId":"a","currentSyncTime":"20261204101010123","flag":3,"userList":[{"userName":"u"}]}`},
		{"authSync", `{` + common + `,"appId":"a","currentSyncTime":"20261204101010123","flag":1,"userList":"[{\"userName\":\"u\",\"name\":\"U\",\"orgCode\":\"D\",\"role\":\"admin\",\"enable\":true,\"extension\":{\"employeeType\":\"4\"}}]"}`},
		{"allOrgSync", `{` + common + `,"orgInfoList":"[{orgCode:\"D1\", orgName:\"产品部\", parentCode:\"\" }]"}`},
		{"singleOrgSync", `{` + common + `,"orgCode":"D2","orgName":"East","parentCode":"D1","flag":2}`},
		{"applicationSync", `{` + common + `,"appId":"a","flag":0}`},
		{"nosuchSync", `{}`},
		{"tenantSync", `{"tenantId":"t\u0000"}`},
	} {
		f.Add(seed.op, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		if !routable(op) || strings.ContainsAny(op, "?#%") {
			return // tests the router, not the kit
		}
		before := h.fuzzState(t)
		header, err := koogallery.SignedKitHeaders(koogallery.FormRaw, testKitKey, body, time.Now())
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodPost, "/produce/produceAPI/v2/"+url.PathEscape(op), bytes.NewReader(body))
		maps.Copy(req.Header, header)
		a, ok := h.serveKitFuzz(t, req, testKitKey, before, len(body))
		if !ok {
			return
		}
		requireKitRecordedOrRefused(t, a, before, h.fuzzState(t))
	})
}

// serveKitFuzz serves a fuzzed kit call and checks what every answer must
// be: signed with answerKey, 413 for a body over the limit (changing
// nothing), else HTTP 200. ok is false when the call needs no more checks
// (the router did not take the path, or the body was too large).
func (h *harness) serveKitFuzz(t *testing.T, req *http.Request, answerKey string, before fuzzState, bodyLen int) (produceAnswer, bool) {
	t.Helper()
	rec := h.serve(req)
	h.settle(t)
	if rec.Code == http.StatusNotFound || rec.Code == http.StatusTemporaryRedirect || rec.Code == http.StatusMovedPermanently {
		return produceAnswer{}, false // the escaped op is not one path segment for the router
	}
	a := requireAnswerSignedWith(t, answerKey, rec.Code, rec.Header(), rec.Body.Bytes())
	if bodyLen > maxBody {
		require.Equal(t, http.StatusRequestEntityTooLarge, a.Status)
		require.Equal(t, before, h.fuzzState(t))
		return produceAnswer{}, false
	}
	require.Equal(t, http.StatusOK, a.Status, "answer %s", a.Raw)
	return a, true
}

// requireKitRecordedOrRefused: a correctly signed kit call is recorded
// once (000000) or refused recording nothing (000002); never 000001, and
// never 000005 while nothing is down.
func requireKitRecordedOrRefused(t *testing.T, a produceAnswer, before, after fuzzState) {
	t.Helper()
	switch a.ResultCode {
	case "000000":
		recorded := (after.Callbacks - before.Callbacks) + (after.Redeliveries - before.Redeliveries)
		require.EqualValues(t, 1, recorded, "recorded once, as new or as a redelivery")
	case "000002":
		require.Equal(t, before, after, "a refused sync records nothing")
	default:
		require.Failf(t, "unexpected answer", "%s", a.Raw)
	}
}

// FuzzKitV1: any body on a V1 kit path (contract §12.10). A body the
// marketplace could sign (an object of single values with a timeStamp) is
// sent with its authToken and, like FuzzKit's, answered 000000 and
// recorded once or refused 000002 recording nothing; any other is sent
// without a token and refused 000001, recording nothing.
func FuzzKitV1(f *testing.F) {
	h := newHarness(f, withKit(testKitKey, nil), withV1Key(testV1Key))
	h.allocate(f, fzActive)
	common := `"instanceId":"` + fzActive + `","tenantId":"t-1","testFlag":0,"timeStamp":"20261204101010123"`
	for _, seed := range []struct{ op, body string }{
		{"tenantSync", `{` + common + `,"orderId":"o","tenantCode":"c","name":"n","domainName":"https://d","flag":1}`},
		{"authSync", `{` + common + `,"appId":"a","currentSyncTime":"20261204101010123","flag":1,"userList":"[{\"userName\":\"u\",\"name\":\"U\",\"orgCode\":\"D\",\"role\":\"admin\",\"enable\":\"true\"}]"}`},
		{"allOrgSync", `{` + common + `,"orgInfo":"[{\"orgCode\":\"D1\",\"name\":\"产品部\",\"parentCode\":\"\"}]"}`},
		{"singleOrgSync", `{` + common + `,"orgCode":"D2","name":"East","parentCode":"D1","flag":2,"blank":"  "}`},
		{"authSync", `{` + common + `,"userList":[]}`},
		{"tenantSync", `{"tenantId":"t"}`},
	} {
		f.Add(seed.op, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		if !routable(op) || strings.ContainsAny(op, "?#%") || op == "v2" {
			return // tests the router, not the kit
		}
		before := h.fuzzState(t)
		req := httptest.NewRequest(http.MethodPost, "/produce/produceAPI/"+url.PathEscape(op), bytes.NewReader(body))
		token, signErr := koogallery.SignV1Kit(testV1Key, body)
		if signErr == nil {
			req.Header.Set(koogallery.HeaderV1KitAuthToken, token)
		}
		a, ok := h.serveKitFuzz(t, req, testV1Key, before, len(body))
		if !ok {
			return
		}
		after := h.fuzzState(t)
		if signErr != nil {
			require.Equal(t, "000001", a.ResultCode, "an unsignable body: %s", a.Raw)
			require.Equal(t, before, after, "a refused sync records nothing")
			return
		}
		requireKitRecordedOrRefused(t, a, before, after)
	})
}
