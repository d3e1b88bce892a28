package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

const testUsageToken = "usage-Jd82kLq0Zp4xW7"

// payPerUse allocates an active pay-per-use instance.
func (h *harness) payPerUse(t testing.TB, id string) {
	t.Helper()
	h.allocate(t, id)
	inst := instance(id, "active")
	inst.ChargingMode = "ON_DEMAND"
	inst.CustomerID, inst.SkuCode = "cust-1", "sku-sms"
	h.save(t, inst)
}

type usageAnswer struct {
	Accepted   int                  `json:"accepted"`
	Duplicates int                  `json:"duplicates"`
	Error      string               `json:"error"`
	Records    []api.UsageRejection `json:"records"`
}

func (h *harness) postUsage(t testing.TB, token, body string) (int, usageAnswer) {
	t.Helper()
	status, raw := h.bearerCall(t, http.MethodPost, "/v1/usage", token, body)
	var a usageAnswer
	require.NoError(t, json.Unmarshal(raw, &a), "answer %s", raw)
	return status, a
}

// bearerCall sends a request with a bearer token (none when empty) and
// returns the status and the body of the answer.
func (h *harness) bearerCall(t testing.TB, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

// usageRecords counts and sums the stored usage.
func (h *harness) usageRecords(t testing.TB) (int, string) {
	t.Helper()
	var n int
	var sum string
	require.NoError(t, h.raw.QueryRowContext(t.Context(),
		`SELECT count(*), COALESCE(sum(quantity), 0)::text FROM usage_records`).Scan(&n, &sum))
	return n, sum
}

func record(instance, key string, quantity any, at time.Time) map[string]any {
	return map[string]any{"instanceId": instance, "meter": "sms", "quantity": quantity,
		"time": at.UTC().Format(time.RFC3339Nano), "idempotencyKey": key}
}

func usageBody(t testing.TB, records ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"records": records})
	require.NoError(t, err)
	return string(b)
}

func TestUsageIntakeDeduplicatesAResentBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken))
	h.payPerUse(t, "u-ppu")
	now := time.Now()
	batch := make([]map[string]any, 0, 2000)
	for i := range 2000 {
		batch = append(batch, record("u-ppu", fmt.Sprintf("app-42/%d", i), "0.5", now.Add(-time.Duration(i)*time.Second)))
	}

	status, first := h.postUsage(t, testUsageToken, usageBody(t, batch...))
	require.Equal(t, http.StatusOK, status, first.Error)
	status, resent := h.postUsage(t, testUsageToken, usageBody(t, batch...))
	require.Equal(t, http.StatusOK, status, resent.Error)
	status, grown := h.postUsage(t, testUsageToken, usageBody(t, append(batch[:10:10], record("u-ppu", "app-42/new", 3, now))...))
	require.Equal(t, http.StatusOK, status, grown.Error)

	require.Equal(t, usageAnswer{Accepted: 2000}, first)
	require.Equal(t, usageAnswer{Duplicates: 2000}, resent, "a resent batch is not new usage")
	require.Equal(t, usageAnswer{Accepted: 1, Duplicates: 10}, grown)
	n, sum := h.usageRecords(t)
	require.Equal(t, 2001, n)
	require.Equal(t, "1003.0000", sum)
}

func TestUsageIntakeRecordRepeatedInOneBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken))
	h.payPerUse(t, "u-ppu")
	now := time.Now()
	r := record("u-ppu", "k", 2, now)

	status, a := h.postUsage(t, testUsageToken, usageBody(t, r, r))

	require.Equal(t, http.StatusOK, status, a.Error)
	require.Equal(t, usageAnswer{Accepted: 1, Duplicates: 1}, a)
}

func TestUsageIntakeRefusesInvalidRecords(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken))
	h.payPerUse(t, "u-ppu")
	h.allocate(t, "u-period")
	h.save(t, instance("u-period", "active")) // a periodic subscription
	h.allocate(t, "u-released")
	released := instance("u-released", "released")
	released.ChargingMode = "ON_DEMAND"
	h.save(t, released)
	now := time.Now()
	valid := record("u-ppu", "valid", 1, now)
	with := func(field string, v any) map[string]any {
		r := record("u-ppu", "k-"+field, 1, now)
		if v == nil {
			delete(r, field)
		} else {
			r[field] = v
		}
		return r
	}

	tests := []struct {
		name   string
		record map[string]any
		want   string
	}{
		{"unknown instance", with("instanceId", "u-nobody"), "instanceId is unknown"},
		{"no instance", with("instanceId", nil), "instanceId is unknown"},
		{"periodic instance", with("instanceId", "u-period"), "instanceId is not a pay-per-use instance"},
		{"released instance", with("instanceId", "u-released"), "instanceId is released"},
		{"no key", with("idempotencyKey", nil), "idempotencyKey is required"},
		{"key too long", with("idempotencyKey", strings.Repeat("k", 129)), "idempotencyKey must be valid text of at most 128 bytes"},
		{"key with NUL", with("idempotencyKey", "a\x00b"), "idempotencyKey must be valid text"},
		{"no meter", with("meter", nil), "meter is required"},
		{"meter too long", with("meter", strings.Repeat("m", 65)), "meter is required: text of at most 64 bytes"},
		{"zero", with("quantity", 0), "quantity must be a number greater than 0 with at most 4 decimals"},
		{"negative", with("quantity", -1), "quantity must be a number greater than 0"},
		{"five decimals", with("quantity", 0.00001), "at most 4 decimals"},
		{"not a number", with("quantity", "ten"), "quantity must be a number"},
		{"no quantity", with("quantity", nil), "quantity must be a number"},
		{"exponent below the 4 decimals", with("quantity", "1e-5"), "at most 4 decimals"},
		{"infinity", with("quantity", "Infinity"), "quantity must be a number"},
		{"no time", with("time", nil), "time must be RFC 3339"},
		{"time without zone", with("time", "2026-11-20T10:00:00"), "time must be RFC 3339"},
		{"future time", with("time", now.Add(time.Hour).Format(time.RFC3339)), "time is in the future"},
		{"too old", with("time", now.Add(-22*24*time.Hour).Format(time.RFC3339)), "time is older than 21 days"},
		{"key reused with other values", record("u-ppu", "valid", 2, now), "idempotencyKey is also used by record 0 with other values"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, a := h.postUsage(t, testUsageToken, usageBody(t, valid, tc.record))

			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, "1 of 2 records are invalid; nothing was stored", a.Error)
			require.Len(t, a.Records, 1)
			require.Equal(t, 1, a.Records[0].Index)
			require.Contains(t, a.Records[0].Error, tc.want)
			n, _ := h.usageRecords(t)
			require.Zero(t, n, "the valid record of a refused batch is not stored")
		})
	}
}

func TestUsageIntakeRefusesBadBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken))
	h.payPerUse(t, "u-ppu")
	many := make([]map[string]any, 10001)
	for i := range many {
		many[i] = record("u-ppu", fmt.Sprint(i), 1, time.Now())
	}

	tests := map[string]struct{ body, want string }{
		"not JSON":      {`records=1`, `the body must be {"records"`},
		"unknown field": {`{"records":[],"extra":1}`, `the body must be {"records"`},
		"record field":  {`{"records":[{"instanceId":"u-ppu","units":1}]}`, `the body must be {"records"`},
		"no records":    {`{"records":[]}`, "send from 1 to 10000 records"},
		"10001 records": {usageBody(t, many...), "send from 1 to 10000 records"},
		"empty":         {``, `the body must be {"records"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, a := h.postUsage(t, testUsageToken, tc.body)

			require.Equal(t, http.StatusBadRequest, status)
			require.Contains(t, a.Error, tc.want)
		})
	}
	n, _ := h.usageRecords(t)
	require.Zero(t, n)
}

func TestUsageIntakeAcceptsDecimalStrings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken))
	h.payPerUse(t, "u-ppu")
	now := time.Now()

	status, a := h.postUsage(t, testUsageToken, usageBody(t,
		record("u-ppu", "a", "0.0001", now), record("u-ppu", "b", 12345678.1234, now), record("u-ppu", "c", "7", now)))

	require.Equal(t, http.StatusOK, status, a.Error)
	_, sum := h.usageRecords(t)
	require.Equal(t, "12345685.1235", sum, "kept exact")
}

func TestGetUsage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.payPerUse(t, "u-ppu")
	start := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	_, _, err := h.db.Metering.InsertUsage(t.Context(), []store.Usage{
		{IdempotencyKey: "a", InstanceID: "u-ppu", Meter: "sms", Quantity: "2.5", OccurredAt: start.Add(time.Minute)},
		{IdempotencyKey: "b", InstanceID: "u-ppu", Meter: "sms", Quantity: "4", OccurredAt: start.Add(61 * time.Minute)},
		{IdempotencyKey: "c", InstanceID: "u-ppu", Meter: "sms", Quantity: "1", OccurredAt: start.Add(150 * time.Minute)},
	}, koogallery.MaxUsageValue)
	require.NoError(t, err)
	for h2 := range 2 {
		from := start.Add(time.Duration(h2) * time.Hour)
		_, err := h.db.Metering.CloseUsagePeriod(t.Context(), activities.WithMeteringRules(store.ClosePeriod{InstanceID: "u-ppu", Start: from, End: from.Add(time.Hour), Billable: true, At: from.Add(65 * time.Minute)}))
		require.NoError(t, err)
	}
	require.NoError(t, h.db.Metering.MarkPeriodsPushed(t.Context(), []string{activities.MeteringSN("u-ppu", start)}, start.Add(66*time.Minute)))
	require.NoError(t, h.db.Metering.MarkPeriodsPushFailed(t.Context(), []string{activities.MeteringSN("u-ppu", start.Add(time.Hour))}, "HTTP 500 MKT.0999"))

	status, raw := h.admin(t, "/v1/instances/u-ppu/usage")
	require.Equal(t, http.StatusOK, status, string(raw))
	var view api.UsageView
	require.NoError(t, json.Unmarshal(raw, &view))

	require.Equal(t, "u-ppu", view.InstanceID)
	require.Len(t, view.Periods, 2)
	require.Equal(t, store.PeriodPushed, view.Periods[0].State)
	require.Equal(t, activities.MeteringSN("u-ppu", start), view.Periods[0].MeteringSN)
	require.Equal(t, "2.5000", view.Periods[0].Quantity)
	require.Equal(t, store.PeriodPending, view.Periods[1].State)
	require.Equal(t, "HTTP 500 MKT.0999", view.Periods[1].LastError)
	require.Equal(t, "7.5000", view.Summary.Reported)
	require.Equal(t, "1.0000", view.Summary.Unassigned)
	require.Equal(t, "6.5000", view.Summary.Closed)
	require.Equal(t, "2.5000", view.Summary.Pushed)
	require.Equal(t, 1, view.Summary.Pending)
	require.Equal(t, "HTTP 500 MKT.0999", view.Summary.LastError)

	status, raw = h.admin(t, "/v1/instances/u-ppu/usage?from="+start.Add(time.Hour).Format(time.RFC3339)+"&limit=5")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.NoError(t, json.Unmarshal(raw, &view))
	require.Len(t, view.Periods, 1, "from filters")

	for path, want := range map[string]int{
		"/v1/instances/u-nobody/usage":        http.StatusNotFound,
		"/v1/instances/u-ppu/usage?from=soon": http.StatusBadRequest,
		"/v1/instances/u-ppu/usage?limit=0":   http.StatusBadRequest,
		"/v1/instances/u-ppu/usage?limit=1x":  http.StatusBadRequest,
	} {
		status, _ := h.admin(t, path)
		require.Equal(t, want, status, path)
	}
	status, _ = h.get(t, "/v1/instances/u-ppu/usage", "")
	require.Equal(t, http.StatusUnauthorized, status)
}

func TestQueryInstanceUsageInfo(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.payPerUse(t, "u-ppu")
	h.payPerUse(t, "u-idle")
	h.allocate(t, "u-pkg")
	pkg := instance("u-pkg", "active")
	pkg.ChargingMode, pkg.CustomerID, pkg.SkuCode = "ON_DEMAND_PKG", "cust-1", "sku-sms"
	h.save(t, pkg)
	h.saveCredentials(t, "u-ppu", "admin", "Pa55-word")
	_, err := h.db.Metering.RegisterPackage(t.Context(), store.UsagePackage{PackageInstanceID: "u-pkg", CustomerID: "cust-1", SkuCode: "sku-sms", Quota: "100"})
	require.NoError(t, err)
	start := time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)
	closedAt := start.Add(65 * time.Minute)
	_, _, err = h.db.Metering.InsertUsage(t.Context(), []store.Usage{
		{IdempotencyKey: "a", InstanceID: "u-ppu", Meter: "sms", Quantity: "12.25", OccurredAt: start.Add(time.Minute)},
	}, koogallery.MaxUsageValue)
	require.NoError(t, err)
	_, err = h.db.Metering.CloseUsagePeriod(t.Context(), activities.WithMeteringRules(store.ClosePeriod{InstanceID: "u-ppu", Start: start, End: start.Add(time.Hour), Billable: true, At: closedAt}))
	require.NoError(t, err)

	a := h.produce(t, queryBody(t, "u-ppu,u-idle,u-pkg"))

	requireResult(t, a, "000000", msgSuccess)
	require.Len(t, a.Info, 3)
	ppu, idle, pk := a.Info[0], a.Info[1], a.Info[2]
	require.NotNil(t, ppu.AppInfo)
	require.Len(t, ppu.UsageInfo, 1)
	require.Equal(t, 12.25, ppu.UsageInfo[0].UsageValue)
	require.Equal(t, "20261120020500000", ppu.UsageInfo[0].StatisticalTime)
	require.Empty(t, ppu.UsageInfo[0].RelatedInstanceID)
	require.Len(t, idle.UsageInfo, 1, "contract §1.3: required for pay-per-use, even before any usage")
	require.Zero(t, idle.UsageInfo[0].UsageValue)
	require.Regexp(t, `^[0-9]{17}$`, idle.UsageInfo[0].StatisticalTime)
	require.Len(t, pk.UsageInfo, 1, "one line per instance the package covers")
	require.Equal(t, "u-ppu", pk.UsageInfo[0].RelatedInstanceID)
	require.Equal(t, 12.25, pk.UsageInfo[0].UsageValue)
}

// A package whose content resets shows its current cycle: queryInstance's
// usageInfo counts what was consumed since the cycle began, and the usage
// view gives the cycle with what is used and left.
func TestPackageCycleUsage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.payPerUse(t, "u-ppu")
	h.allocate(t, "u-pkg")
	cycleStart := time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)
	cycle := activities.PackageCycleDetails{Reset: activities.PackageResetMonthly, Number: 3,
		Start: cycleStart, End: time.Date(2026, 12, 20, 2, 0, 0, 0, time.UTC)}
	details, err := json.Marshal(activities.InstanceDetails{PackageCycle: &cycle})
	require.NoError(t, err)
	pkg := instance("u-pkg", "active")
	pkg.ChargingMode, pkg.CustomerID, pkg.SkuCode, pkg.Details = "ON_DEMAND_PKG", "cust-1", "sku-sms", details
	h.save(t, pkg)
	_, err = h.db.Metering.RegisterPackage(t.Context(), store.UsagePackage{PackageInstanceID: "u-pkg", CustomerID: "cust-1", SkuCode: "sku-sms", Quota: "100"})
	require.NoError(t, err)
	// 30 drawn in the cycle before, then the reset, then 12.25 in this one.
	start := cycleStart.Add(-time.Hour)
	for i, q := range []string{"30", "12.25"} {
		from := start.Add(time.Duration(i) * time.Hour)
		_, _, err = h.db.Metering.InsertUsage(t.Context(), []store.Usage{
			{IdempotencyKey: fmt.Sprint("k", i), InstanceID: "u-ppu", Meter: "sms", Quantity: q, OccurredAt: from.Add(time.Minute)},
		}, koogallery.MaxUsageValue)
		require.NoError(t, err)
		if i == 1 {
			_, err = h.db.Metering.ResetPackage(t.Context(), "u-pkg", cycleStart)
			require.NoError(t, err)
		}
		_, err = h.db.Metering.CloseUsagePeriod(t.Context(), activities.WithMeteringRules(store.ClosePeriod{
			InstanceID: "u-ppu", Start: from, End: from.Add(time.Hour), Billable: true, At: from.Add(65 * time.Minute)}))
		require.NoError(t, err)
	}

	a := h.produce(t, queryBody(t, "u-pkg"))
	requireResult(t, a, "000000", msgSuccess)
	require.Len(t, a.Info[0].UsageInfo, 1)
	require.Equal(t, "u-ppu", a.Info[0].UsageInfo[0].RelatedInstanceID)
	require.Equal(t, 12.25, a.Info[0].UsageInfo[0].UsageValue, "only the current cycle")

	status, raw := h.admin(t, "/v1/instances/u-pkg/usage")
	require.Equal(t, http.StatusOK, status, string(raw))
	var view api.UsageView
	require.NoError(t, json.Unmarshal(raw, &view))
	require.Equal(t, &api.PackageUsage{Quota: "100.0000", Used: "12.2500", Remaining: "87.7500", Active: true, Cycle: &cycle}, view.Package)

	status, raw = h.admin(t, "/v1/instances/u-ppu/usage")
	require.Equal(t, http.StatusOK, status, string(raw))
	var ppuView api.UsageView
	require.NoError(t, json.Unmarshal(raw, &ppuView))
	require.Nil(t, ppuView.Package, "a pay-per-use instance is no package")
}

// TestUsageIntakeRefusesAReusedKey: a record whose idempotency key was
// already stored with another quantity, time, meter or instance is not a
// duplicate: the batch is refused with a 400 naming it, and nothing of it
// is stored.
func TestUsageIntakeRefusesAReusedKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken))
	h.payPerUse(t, "u-reuse")
	h.payPerUse(t, "u-other")
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	status, a := h.postUsage(t, testUsageToken, usageBody(t, record("u-reuse", "k-1", 1.5, at)))
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 1, a.Accepted)

	for name, r := range map[string]map[string]any{
		"other quantity": record("u-reuse", "k-1", 2, at),
		"other time":     record("u-reuse", "k-1", 1.5, at.Add(time.Second)),
		"other instance": record("u-other", "k-1", 1.5, at),
	} {
		t.Run(name, func(t *testing.T) {
			status, a := h.postUsage(t, testUsageToken, usageBody(t, record("u-reuse", "k-new", 1, at), r))
			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, "1 of 2 records are invalid; nothing was stored", a.Error)
			require.Equal(t, []api.UsageRejection{{Index: 1,
				Error: "idempotencyKey is already used by a record with other values (instance, meter, quantity or time)"}}, a.Records)
			n, sum := h.usageRecords(t)
			require.Equal(t, 1, n, "nothing stored, not even the good record")
			require.Equal(t, "1.5000", sum)
		})
	}
	// The same values again are a duplicate, as before; 1.50 is 1.5.
	status, a = h.postUsage(t, testUsageToken, usageBody(t, record("u-reuse", "k-1", "1.50", at)))
	require.Equal(t, http.StatusOK, status, a.Error)
	require.Equal(t, 1, a.Duplicates)
}

// TestUsageIntakeRefusesWhatNoRecordCanCarry: usage that would make an
// instance's usage not yet metered larger than one usage record can carry
// is refused at intake (it could never be pushed), with a 400 that says
// so; other instances are not affected.
func TestUsageIntakeRefusesWhatNoRecordCanCarry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withUsageToken(testUsageToken))
	h.payPerUse(t, "u-huge")
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	status, a := h.postUsage(t, testUsageToken, usageBody(t, record("u-huge", "h-1", "900000000000000", at)))
	require.Equal(t, http.StatusOK, status, a.Error)

	status, a = h.postUsage(t, testUsageToken, usageBody(t, record("u-huge", "h-2", "900000000000000", at)))
	require.Equal(t, http.StatusBadRequest, status)
	require.Len(t, a.Records, 1)
	require.Equal(t, 0, a.Records[0].Index)
	require.Contains(t, a.Records[0].Error, "the usage of this instance not yet metered would be 1800000000000000.0000, more than one usage record can carry ("+koogallery.MaxUsageValue+")")
	n, _ := h.usageRecords(t)
	require.Equal(t, 1, n)

	// A record alone beyond it is refused as too large.
	status, a = h.postUsage(t, testUsageToken, usageBody(t, record("u-huge", "h-3", "1000000000000000", at)))
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, a.Records[0].Error, "at most "+koogallery.MaxUsageValue)
}
