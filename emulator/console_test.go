package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

const (
	testAK = "emulator-test-ak"
	testSK = "emulator-test-sk"
)

// usageConsole serves the console and the open API of an emulator whose
// clock runs a day per 10 s, with one purchase that has an instance; it
// returns the console's client and the merchant's open-API client.
func usageConsole(t *testing.T, db *Store, purchaseID, instanceID string) (*Client, *koogallery.OpenAPIClient, *OpenAPI) {
	t.Helper()
	require.NoError(t, db.SavePurchase(context.Background(), Purchase{
		PurchaseID: purchaseID, State: StateInService, ChargingMode: ModeOnDemand, ProductID: "demo-product",
		InstanceID: instanceID, Revision: 1,
	}, nil))
	open := NewOpenAPI(db, testAK, testSK, key, nil)
	console := NewConsole(ConsoleConfig{Store: db, Scale: 8640, OpenAPI: open, AccessKey: key})
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	merchant, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: testSK})
	require.NoError(t, err)
	return &Client{BaseURL: srv.URL}, merchant, open
}

// usageRecord is one record of a real-time period.
func usageRecord(instanceID, sn string, begin, end time.Time, value string) koogallery.UsageRecord {
	v, err := koogallery.ParseUsageValue(value)
	if err != nil {
		panic(err)
	}
	return koogallery.UsageRecord{
		InstanceID: instanceID, MeteringSN: sn, UsageValue: v, RecordTime: koogallery.FormatUsageTime(time.Now()),
		BeginTime: koogallery.FormatUsageTime(begin), EndTime: koogallery.FormatUsageTime(end),
	}
}

func openAPIError(t *testing.T, err error) *koogallery.OpenAPIError {
	t.Helper()
	var oe *koogallery.OpenAPIError
	require.ErrorAs(t, err, &oe)
	return oe
}

// TestUsageConsoleListsWhatTheMarketplaceReceived: the seller console's
// usage records (话单管理) of an instance, by period, with exact totals and
// the pushes refused. The periods are real time while the emulated clock
// runs 8640 times faster: the open API judges them by the real clock, as
// the merchant's metering runs.
func TestUsageConsoleListsWhatTheMarketplaceReceived(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	emu, merchant, _ := usageConsole(t, db, "P-USAGE", "inst-usage")
	hour := time.Now().UTC().Truncate(time.Hour)

	first := []koogallery.UsageRecord{
		usageRecord("inst-usage", "sn-1", hour.Add(-2*time.Hour), hour.Add(-time.Hour), "0.1"),
		usageRecord("inst-usage", "sn-2", hour.Add(-time.Hour), hour, "0.2"),
	}
	require.NoError(t, merchant.PushUsage(ctx, key, first), "real-time periods are accepted whatever EMULATOR_TIME_SCALE")
	require.NoError(t, merchant.PushUsage(ctx, key, first), "a resent batch is answered MKT.0000")
	require.NoError(t, merchant.PushUsage(ctx, key, []koogallery.UsageRecord{
		usageRecord("inst-usage", "sn-other", hour.Add(-time.Hour), hour, "7"),
	}), "another metering_sn for a period already received is ignored, not refused")

	armed, err := emu.FailUsage(ctx, UsageFailures{Count: 1})
	require.NoError(t, err)
	require.Equal(t, UsageFailures{Count: 1, Status: 500, Code: "MKT.0999"}, armed, "the defaults")
	last := usageRecord("inst-usage", "sn-3", hour, hour.Add(time.Minute), "1.2345")
	oe := openAPIError(t, merchant.PushUsage(ctx, key, []koogallery.UsageRecord{last}))
	require.Equal(t, 500, oe.HTTPStatus)
	require.Equal(t, "MKT.0999", oe.Code)
	require.True(t, koogallery.IsRetryable(oe), "the default failure is one a merchant retries")
	require.NoError(t, merchant.PushUsage(ctx, key, []koogallery.UsageRecord{last}), "one push failed, the next passes")

	// A merchant signing with the wrong SK is refused too, and counted.
	wrong, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: emu.BaseURL, AK: testAK, SK: "not-" + testSK})
	require.NoError(t, err)
	require.Equal(t, "MKT.0154", openAPIError(t, wrong.PushUsage(ctx, key, []koogallery.UsageRecord{last})).Code)

	byInstance, err := emu.Usage(ctx, "inst-usage")
	require.NoError(t, err)
	require.Equal(t, "inst-usage", byInstance.InstanceID)
	require.Equal(t, "P-USAGE", byInstance.PurchaseID)
	require.Len(t, byInstance.Records, 3, "one record per period")
	for i, want := range []struct {
		sn, value  string
		begin, end time.Time
	}{
		{"sn-1", "0.1", hour.Add(-2 * time.Hour), hour.Add(-time.Hour)},
		{"sn-2", "0.2", hour.Add(-time.Hour), hour},
		{"sn-3", "1.2345", hour, hour.Add(time.Minute)},
	} {
		r := byInstance.Records[i]
		require.Equal(t, want.sn, r.MeteringSN)
		require.Equal(t, want.value, r.UsageValue, "the value as pushed, not 0.1000")
		require.True(t, want.begin.Equal(r.BeginTime) && want.end.Equal(r.EndTime), "record %d: %+v", i, r)
		require.WithinDuration(t, time.Now(), r.ReceivedAt, time.Minute)
	}
	require.Equal(t, 3, byInstance.Totals.Records)
	require.Equal(t, "1.5345", byInstance.Totals.UsageValue, "summed exactly, never through a float")
	require.Equal(t, 2, byInstance.Totals.RefusedPushes)
	require.NotNil(t, byInstance.Totals.LastRefusal)
	require.Equal(t, 401, byInstance.Totals.LastRefusal.HTTPStatus)
	require.Equal(t, "MKT.0154", byInstance.Totals.LastRefusal.Code)

	byPurchase, err := emu.PurchaseUsage(ctx, "P-USAGE")
	require.NoError(t, err)
	require.Equal(t, byInstance, byPurchase, "the same page, by purchase")
}

func TestUsageConsoleLookups(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	emu, _, _ := usageConsole(t, db, "P-LOOKUP", "inst-lookup")
	require.NoError(t, db.SavePurchase(ctx, Purchase{
		PurchaseID: "P-ORDERING", State: StateOrdering, ChargingMode: ModeOnDemand, ProductID: "demo-product",
	}, nil))

	empty, err := emu.Usage(ctx, "inst-lookup")
	require.NoError(t, err)
	require.Equal(t, UsageView{InstanceID: "inst-lookup", PurchaseID: "P-LOOKUP", Records: []UsageRecord{},
		Totals: UsageTotals{UsageValue: "0"}}, empty)
	ordering, err := emu.PurchaseUsage(ctx, "P-ORDERING")
	require.NoError(t, err, "a purchase whose newInstance is not answered yet has no usage")
	require.Empty(t, ordering.Records)
	require.Equal(t, "0", ordering.Totals.UsageValue)

	for name, tc := range map[string]struct {
		query  string
		status int
		error  string
	}{
		"unknown instance":      {"instanceId=nobody", http.StatusNotFound, "no purchase has instance nobody"},
		"unknown purchase":      {"purchaseId=CSNOBODY", http.StatusNotFound, "no such purchase"},
		"neither":               {"", http.StatusBadRequest, "give either instanceId or purchaseId"},
		"both":                  {"instanceId=inst-lookup&purchaseId=P-LOOKUP", http.StatusBadRequest, "give either instanceId or purchaseId"},
		"empty instance filter": {"instanceId=", http.StatusBadRequest, "give either instanceId or purchaseId"},
	} {
		t.Run(name, func(t *testing.T) {
			var out UsageView
			err := emu.do(ctx, http.MethodGet, "/emulator/usage?"+tc.query, nil, &out)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, tc.status, apiErr.Status)
			require.Equal(t, tc.error, apiErr.Message)
		})
	}
}

// TestUsageFailuresAreValidatedThenArmed: the console refuses what it
// cannot arm with a clear reason, fills the defaults (the status the
// marketplace pairs with the code), and the armed pushes fail as asked.
func TestUsageFailuresAreValidatedThenArmed(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	emu, merchant, open := usageConsole(t, db, "P-FAIL", "inst-fail")

	for name, tc := range map[string]struct{ body, error string }{
		"no count":             {`{}`, "count must be from 1 to 1000"},
		"zero":                 {`{"count":0}`, "count must be from 1 to 1000"},
		"too many":             {`{"count":1001}`, "count must be from 1 to 1000"},
		"negative":             {`{"count":-2}`, "count must be from 1 to 1000"},
		"success status":       {`{"count":1,"status":200}`, "status must be an HTTP error status, from 400 to 599"},
		"not an HTTP status":   {`{"count":1,"status":600}`, "status must be an HTTP error status, from 400 to 599"},
		"success code":         {`{"count":1,"code":"MKT.0000"}`, "code MKT.0000 is the success code; give a failure code: MKT.0999, MKT.0100, "},
		"unknown code":         {`{"count":1,"code":"MKT.1234"}`, "code must be one of the open API's failure codes (contract §6.3): MKT.0999, "},
		"Query Order's code":   {`{"count":1,"code":"MKT.0250"}`, "code must be one of the open API's failure codes"},
		"unknown field":        {`{"count":1,"times":2}`, "the body must be a JSON object with the documented fields"},
		"count as text":        {`{"count":"1"}`, "the body must be a JSON object with the documented fields"},
		"not JSON":             {`fail please`, "the body must be a JSON object with the documented fields"},
		"empty body":           {``, "the body must be a JSON object with the documented fields"},
		"status as an HTTP ok": {`{"count":1,"status":204,"code":"MKT.0101"}`, "status must be an HTTP error status"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Post(emu.BaseURL+"/emulator/usage/failures", "application/json", bytes.NewBufferString(tc.body))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			var out struct{ Error string }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
			require.Contains(t, out.Error, tc.error)
		})
	}
	require.Zero(t, open.mock.UsageCalls(), "nothing was pushed")

	for _, tc := range []struct{ in, want UsageFailures }{
		{UsageFailures{Count: 2}, UsageFailures{Count: 2, Status: 500, Code: "MKT.0999"}},
		{UsageFailures{Count: 1, Code: "MKT.0102"}, UsageFailures{Count: 1, Status: 400, Code: "MKT.0102"}},
		{UsageFailures{Count: 1, Code: "MKT.0151"}, UsageFailures{Count: 1, Status: 401, Code: "MKT.0151"}},
		{UsageFailures{Count: 1000, Status: 503}, UsageFailures{Count: 1000, Status: 503, Code: "MKT.0999"}},
	} {
		got, err := emu.FailUsage(ctx, tc.in)
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}

	// Arming again replaces what was left: two pushes fail with 503, the
	// third passes.
	_, err := emu.FailUsage(ctx, UsageFailures{Count: 2, Status: 503, Code: "MKT.9002"})
	require.NoError(t, err)
	hour := time.Now().UTC().Truncate(time.Hour)
	batch := []koogallery.UsageRecord{usageRecord("inst-fail", "sn-f", hour.Add(-time.Hour), hour, "3")}
	for range 2 {
		oe := openAPIError(t, merchant.PushUsage(ctx, key, batch))
		require.Equal(t, 503, oe.HTTPStatus)
		require.Equal(t, "MKT.9002", oe.Code)
		require.Equal(t, "injected failure", oe.Message)
	}
	require.NoError(t, merchant.PushUsage(ctx, key, batch))
	v, err := emu.Usage(ctx, "inst-fail")
	require.NoError(t, err)
	require.Equal(t, 1, v.Totals.Records)
	require.Equal(t, "3", v.Totals.UsageValue)
	require.Equal(t, 2, v.Totals.RefusedPushes)
	require.Equal(t, &UsageRefusal{At: v.Totals.LastRefusal.At, HTTPStatus: 503, Code: "MKT.9002", Message: "injected failure"}, v.Totals.LastRefusal)
	require.Equal(t, 3, open.mock.UsageCalls())

	// A console without the open API has nothing to arm.
	bare := httptest.NewServer(NewConsole(ConsoleConfig{Store: db}).Handler())
	t.Cleanup(bare.Close)
	_, err = (&Client{BaseURL: bare.URL}).FailUsage(ctx, UsageFailures{Count: 1})
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
}

func TestSumDecimalsIsExact(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, "0"},
		{[]string{"0.1000", "0.2000"}, "0.3"},
		{[]string{"0.1", "0.2", "0.0001"}, "0.3001"},
		{[]string{"12", "0.5"}, "12.5"},
		{[]string{"99999999999999999999.9999", "0.0001"}, "100000000000000000000"},
		{[]string{"0.0001"}, "0.0001"},
	} {
		got, err := sumDecimals(tc.in)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v", tc.in)
	}
	for _, bad := range []string{"-1", "1e3", "x", "+2"} {
		_, err := sumDecimals([]string{bad})
		require.Error(t, err, bad)
	}
}

// startRecorder is a Temporal client that records the purchase workflows
// started, without running them.
type startRecorder struct {
	client.Client
	started []PurchaseInput
}

func (r *startRecorder) ExecuteWorkflow(_ context.Context, _ client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	r.started = append(r.started, args[0].(PurchaseInput))
	return nil, nil
}

// TestConsoleReadsTheClockItsWorkflowRunsOn: the console's emulated now is
// the purchase workflow's. It once read the clock from the row's created_at
// (the database's now, some milliseconds after the workflow's origin), so
// that at a day per 10 s the console's month ended 7 emulated minutes
// before the workflow's.
func TestConsoleReadsTheClockItsWorkflowRunsOn(t *testing.T) {
	db := newStore(t)
	temporal := &startRecorder{}
	console := NewConsole(ConsoleConfig{Store: db, Temporal: temporal, Scale: 8640})
	// The console reads its clock 50 ms before the row is written: 7.2
	// emulated minutes at this scale.
	console.now = func() time.Time { return time.Now().Add(-50 * time.Millisecond) }
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL}

	b, err := c.Buy(t.Context(), BuyRequest{BillingMode: ModePeriod, PeriodType: "month", PeriodNumber: 1, Quantity: 1,
		ProductID: "demo-product", SkuCode: "demo-sku"})
	require.NoError(t, err)
	require.Len(t, temporal.started, 1)
	clock := temporal.started[0].Clock

	expiry := clock.Origin.AddDate(0, 1, 0)
	console.now = func() time.Time { return clock.RealAt(expiry) }
	v, err := c.Purchase(t.Context(), b.PurchaseID)
	require.NoError(t, err)
	require.NotNil(t, v.EmulatedNow)
	require.WithinDuration(t, expiry, *v.EmulatedNow, time.Second,
		"at the real instant of the workflow's expiry, the console's emulated now is the expiry")
}

// TestShowHidesTheCredentialsOfAReleasedPurchase: the buyer's console
// shows the login and password while the instance lives, never after.
func TestShowHidesTheCredentialsOfAReleasedPurchase(t *testing.T) {
	db := newStore(t)
	ctx := t.Context()
	console := NewConsole(ConsoleConfig{Store: db, Scale: 8640, Encryption: "none"})
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL}
	require.NoError(t, db.SaveAppInfo(ctx, AppInfo{PurchaseID: "CSLIVES", FrontEndURL: "https://t.example/",
		UserName: "admin", Password: "s3cret"}))

	for i, state := range []string{StateInService, StateReleased} {
		require.NoError(t, db.SavePurchase(ctx, Purchase{PurchaseID: "CSLIVES", State: state, ChargingMode: ModePeriod,
			ProductID: "demo-product", InstanceID: "inst-1", Revision: int64(i + 1)}, nil))
		v, err := c.Purchase(ctx, "CSLIVES")
		require.NoError(t, err)
		var text bytes.Buffer
		printPurchase(&text, v)
		if state == StateInService {
			require.Equal(t, "s3cret", v.AppInfo.Password)
			require.Contains(t, text.String(), "login      admin / s3cret")
			continue
		}
		require.Empty(t, v.AppInfo.UserName+v.AppInfo.Password)
		require.True(t, v.AppInfo.Released)
		require.NotContains(t, text.String(), "s3cret")
		require.NotContains(t, text.String(), "admin /")
		require.Contains(t, text.String(), "login      none: the instance is released")
	}
}

// TestUsagePushesShowWhatEachCallCarried: a merchant that batches its
// pushes sends the records of many instances in one call; the console
// lists the call once, with its counts, and each instance's usage view
// names it. The same batch resent is a second push that stored nothing
// new, and the records keep the push that delivered them first.
func TestUsagePushesShowWhatEachCallCarried(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	emu, merchant, _ := usageConsole(t, db, "P-BATCH-A", "inst-a")
	for _, p := range []struct{ purchase, instance string }{{"P-BATCH-B", "inst-b"}, {"P-BATCH-C", "inst-c"}} {
		require.NoError(t, db.SavePurchase(ctx, Purchase{
			PurchaseID: p.purchase, State: StateInService, ChargingMode: ModeOnDemand, ProductID: "demo-product",
			InstanceID: p.instance, Revision: 1,
		}, nil))
	}
	hour := time.Now().UTC().Truncate(time.Hour)
	batch := []koogallery.UsageRecord{
		usageRecord("inst-c", "sn-c1", hour.Add(-time.Hour), hour, "3"),
		usageRecord("inst-a", "sn-a2", hour.Add(-time.Hour), hour, "1.5"),
		usageRecord("inst-b", "sn-b1", hour.Add(-time.Hour), hour, "2"),
		usageRecord("inst-a", "sn-a1", hour.Add(-2*time.Hour), hour.Add(-time.Hour), "0.25"),
	}

	empty, err := emu.UsagePushes(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, empty, "no push yet")
	require.NotNil(t, empty, "an empty list, not null")

	require.NoError(t, merchant.PushUsage(ctx, key, batch))
	pushes, err := emu.UsagePushes(ctx, 0)
	require.NoError(t, err)
	require.Len(t, pushes, 1, "one call, one push, whatever instances it names")
	first := pushes[0]
	require.True(t, strings.HasPrefix(first.PushID, "push-"), first.PushID)
	require.Equal(t, 4, first.Records)
	require.Equal(t, 4, first.NewRecords)
	require.Equal(t, 3, first.Instances)
	require.Equal(t, "raw", first.SignedForm)
	require.Contains(t, []string{"number", "string"}, first.ValueForm, "the records all came in one form")
	require.WithinDuration(t, time.Now(), first.ReceivedAt, time.Minute)
	require.Equal(t, time.UTC, first.ReceivedAt.Location())

	for _, instance := range []string{"inst-a", "inst-b", "inst-c"} {
		v, err := emu.Usage(ctx, instance)
		require.NoError(t, err)
		require.NotEmpty(t, v.Records, instance)
		for _, r := range v.Records {
			require.Equal(t, first.PushID, r.PushID, "%s %s", instance, r.MeteringSN)
			require.Equal(t, 3, r.PushInstances, "the view shows the call carried 3 instances")
			require.Equal(t, 4, r.PushRecords)
		}
	}

	one, err := emu.UsagePush(ctx, first.PushID)
	require.NoError(t, err)
	require.Equal(t, first, one.Push)
	require.Equal(t, []UsagePushRecord{
		{MeteringSN: "sn-a1", InstanceID: "inst-a", BeginTime: hour.Add(-2 * time.Hour), EndTime: hour.Add(-time.Hour), UsageValue: "0.25"},
		{MeteringSN: "sn-a2", InstanceID: "inst-a", BeginTime: hour.Add(-time.Hour), EndTime: hour, UsageValue: "1.5"},
		{MeteringSN: "sn-b1", InstanceID: "inst-b", BeginTime: hour.Add(-time.Hour), EndTime: hour, UsageValue: "2"},
		{MeteringSN: "sn-c1", InstanceID: "inst-c", BeginTime: hour.Add(-time.Hour), EndTime: hour, UsageValue: "3"},
	}, one.Records, "by instance, then period")

	// The merchant resends the batch (it did not see the answer): answered
	// MKT.0000, listed as a push that stored nothing new.
	require.NoError(t, merchant.PushUsage(ctx, key, batch))
	pushes, err = emu.UsagePushes(ctx, 0)
	require.NoError(t, err)
	require.Len(t, pushes, 2)
	resent := pushes[0]
	require.NotEqual(t, first.PushID, resent.PushID)
	require.Equal(t, first, pushes[1], "newest first")
	require.Equal(t, 4, resent.Records)
	require.Zero(t, resent.NewRecords, "every record was a duplicate")
	require.Equal(t, 3, resent.Instances)
	require.Less(t, first.PushID, resent.PushID, "push IDs sort as the pushes arrived")
	v, err := emu.Usage(ctx, "inst-b")
	require.NoError(t, err)
	require.Len(t, v.Records, 1)
	require.Equal(t, first.PushID, v.Records[0].PushID, "a record keeps the push that delivered it first")
	again, err := emu.UsagePush(ctx, resent.PushID)
	require.NoError(t, err)
	require.Equal(t, resent, again.Push)
	require.Empty(t, again.Records, "its records are listed under the first push")
	require.NotNil(t, again.Records)

	latest, err := emu.UsagePushes(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, []ReceivedPush{resent}, latest, "limit 1: the newest")

	// A refused call is no push.
	_, err = emu.FailUsage(ctx, UsageFailures{Count: 1})
	require.NoError(t, err)
	openAPIError(t, merchant.PushUsage(ctx, key, batch))
	pushes, err = emu.UsagePushes(ctx, 0)
	require.NoError(t, err)
	require.Len(t, pushes, 2, "the marketplace keeps no record of a push it refused")
}

// TestUsagePushesLookups: a bad limit is refused with a message saying
// what is allowed, an unknown push is 404.
func TestUsagePushesLookups(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	emu, _, _ := usageConsole(t, db, "P-PUSHES", "inst-pushes")
	for _, limit := range []string{"0", "1001", "-1", "ten", "1.5"} {
		t.Run("limit="+limit, func(t *testing.T) {
			var out UsagePushes
			err := emu.do(ctx, http.MethodGet, "/emulator/usage/pushes?limit="+limit, nil, &out)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, http.StatusBadRequest, apiErr.Status)
			require.Equal(t, "limit must be a whole number from 1 to 1000", apiErr.Message)
		})
	}
	for _, limit := range []string{"1", "1000"} {
		var out UsagePushes
		require.NoError(t, emu.do(ctx, http.MethodGet, "/emulator/usage/pushes?limit="+limit, nil, &out), limit)
		require.NotNil(t, out.Pushes)
	}

	_, err := emu.UsagePush(ctx, "push-20260101T000000.000000Z-nosuch")
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
	require.Equal(t, "no such usage push", apiErr.Message)
}

// TestUsagePushValueFormAndCommands: a call whose usage_values came as
// both numbers and strings is "mixed"; the pushes command lists the calls
// and shows one with its records, and the usage command names each
// record's call with what it carried.
func TestUsagePushValueFormAndCommands(t *testing.T) {
	t.Chdir(t.TempDir())
	db := newStore(t)
	ctx := context.Background()
	emu, merchant, _ := usageConsole(t, db, "P-MIXED", "inst-mixed")
	hour := time.Now().UTC().Truncate(time.Hour)
	asString := usageRecord("inst-mixed", "sn-s", hour.Add(-2*time.Hour), hour.Add(-time.Hour), "2")
	asString.UsageValue = koogallery.UsageValueString.In(asString.UsageValue)
	require.NoError(t, merchant.PushUsage(ctx, key, []koogallery.UsageRecord{
		usageRecord("inst-mixed", "sn-n", hour.Add(-time.Hour), hour, "1"), asString,
	}))
	pushes, err := emu.UsagePushes(ctx, 0)
	require.NoError(t, err)
	require.Len(t, pushes, 1)
	p := pushes[0]
	require.Equal(t, "mixed", p.ValueForm)
	require.Equal(t, []int{2, 2, 1}, []int{p.Records, p.NewRecords, p.Instances})

	vars := map[string]string{"EMULATOR_URL": emu.BaseURL}
	out, err := cliRun(t, vars, "pushes")
	require.NoError(t, err)
	require.Regexp(t, `PUSH\s+RECEIVED\s+RECORDS\s+NEW\s+INSTANCES\s+SIGNED\n`+p.PushID+`\s+\S+ \S+\s+2\s+2\s+1\s+raw, mixed\n$`, out)
	out, err = cliRun(t, vars, "pushes", p.PushID)
	require.NoError(t, err)
	require.Contains(t, out, "Usage push "+p.PushID+", received ")
	require.Contains(t, out, ": 2 record(s) of 1 instance(s), 2 new.\n")
	require.Regexp(t, `INSTANCE\s+METERING_SN\s+BEGIN\s+END\s+VALUE\ninst-mixed\s+sn-s\s.*\s2\ninst-mixed\s+sn-n\s.*\s1\n$`, out)
	_, err = cliRun(t, vars, "pushes", "push-nosuch")
	require.EqualError(t, err, "pushes: no usage push push-nosuch (see 'bin/fulfillment emulator pushes')")
	_, err = cliRun(t, vars, "pushes", "-limit", "0")
	require.EqualError(t, err, "pushes: -limit must be a whole number from 1 to 1000")
	out, err = cliRun(t, vars, "pushes", "-limit", "1", "-json")
	require.NoError(t, err)
	var listed UsagePushes
	require.NoError(t, json.Unmarshal([]byte(out), &listed))
	require.Equal(t, UsagePushes{Pushes: []ReceivedPush{p}}, listed, "-json prints the console's answer")
	out, err = cliRun(t, vars, "usage", "inst-mixed")
	require.NoError(t, err)
	require.Contains(t, out, p.PushID+" (2 record(s), 1 instance(s))")
}
