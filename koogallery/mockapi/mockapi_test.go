package mockapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

const (
	testAK = "MOCKTESTAK0000000001"
	testSK = "mockTestSecretKey000000000000000000000001"
)

// fixedNow mirrors the documented example: an order placed on 2022-07-26
// Beijing time whose yearly line expires at "20230726155959".
var fixedNow = time.Date(2022, 7, 26, 6, 47, 0, 0, time.UTC)

// clock is a settable server clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// setup starts a mock with the given clock (nil: time.Now) and a client
// for it. The client signs with the real clock, so the mock's clock must stay
// within MaxSkew of it for calls to pass the signature check.
func setup(t *testing.T, now func() time.Time) (*mockapi.Server, *httptest.Server, *koogallery.OpenAPIClient) {
	t.Helper()
	m := mockapi.New(mockapi.Config{AK: testAK, SK: testSK, Now: now})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	c, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: testAK, SK: testSK})
	require.NoError(t, err)
	return m, srv, c
}

func TestMockOrders(t *testing.T) {
	// The client signs with the real clock, so the mock's clock must be
	// close to it; expiries are checked relative to the mock's clock.
	now := time.Now().UTC().Truncate(time.Second)
	m, _, c := setup(t, func() time.Time { return now })
	beijing := time.FixedZone("CST", 8*3600)
	endOfDay := func(t time.Time) string {
		y, mo, d := t.In(beijing).Date()
		return koogallery.FormatTime(time.Date(y, mo, d, 23, 59, 59, 0, beijing))
	}

	tests := []struct {
		id           string
		orderType    koogallery.OrderType
		mode         koogallery.ChargingMode
		periodType   string
		periodNumber int
		expire       string
		sku          string
	}{
		{mockapi.OrderPeriodYearNew, koogallery.OrderTypeNew, koogallery.ChargingPeriod, "year", 1, endOfDay(now.AddDate(1, 0, 0)), "MOCK-SKU-BASIC"},
		{mockapi.OrderOneTimeNew, koogallery.OrderTypeNew, koogallery.ChargingOneTime, "", 0, "", "MOCK-SKU-ONCE"},
		{mockapi.OrderOnDemand, koogallery.OrderTypeNew, koogallery.ChargingOnDemand, "", 0, "", "MOCK-SKU-PPU"},
		{mockapi.OrderOnDemandPkg, koogallery.OrderTypeNew, koogallery.ChargingOnDemandPkg, "month", 1, endOfDay(now.AddDate(0, 1, 0)), "MOCK-SKU-PKG"},
		{mockapi.OrderPeriodDayTrial, koogallery.OrderTypeTrial, koogallery.ChargingPeriod, "day", 7, endOfDay(now.AddDate(0, 0, 7)), "MOCK-SKU-BASIC"},
		{mockapi.OrderMonthTrialToFormal, koogallery.OrderTypeTrialToFormal, koogallery.ChargingPeriod, "month", 1, endOfDay(now.AddDate(0, 1, 0)), "MOCK-SKU-BASIC"},
		{mockapi.OrderMonthUnsubscribe, koogallery.OrderTypeUnsubscribe, koogallery.ChargingPeriod, "month", 1, endOfDay(now.AddDate(0, 1, 0)), "MOCK-SKU-BASIC"},
		{mockapi.OrderMonthRenew, koogallery.OrderTypeRenew, koogallery.ChargingPeriod, "month", 1, endOfDay(now.AddDate(0, 2, 0)), "MOCK-SKU-BASIC"},
		{mockapi.OrderMonthChange, koogallery.OrderTypeChange, koogallery.ChargingPeriod, "month", 1, endOfDay(now.AddDate(0, 1, 0)), "MOCK-SKU-PRO"},
	}
	require.Len(t, tests, len(mockapi.MockOrderIDs()))
	for i, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			require.Equal(t, mockapi.MockOrderIDs()[i], tt.id)
			res, err := c.QueryOrder(t.Context(), tt.id, tt.id+"-000001")
			require.NoError(t, err)
			o := res.OrderInfo
			require.Equal(t, tt.id, o.OrderID)
			require.Equal(t, tt.orderType, o.OrderType)
			require.Equal(t, koogallery.FormatTime(now), o.CreateTime)
			require.Equal(t, &koogallery.BuyerInfo{CustomerID: mockapi.MockCustomerID, CustomerName: mockapi.MockCustomerName}, o.BuyerInfo)
			line, ok := o.Line(tt.id + "-000001")
			require.True(t, ok)
			require.Equal(t, tt.mode, line.ChargingMode)
			require.Equal(t, tt.periodType, line.PeriodType)
			require.Equal(t, tt.periodNumber, line.PeriodNumber)
			require.Equal(t, tt.expire, line.ExpireTime)
			_, hasExpiry, err := line.ExpireAt()
			require.NoError(t, err)
			require.Equal(t, tt.expire != "", hasExpiry)
			require.Equal(t, tt.sku, line.Product().SkuCode)
			require.NotEmpty(t, line.Product().ProductID)
			require.Equal(t, 1, m.Calls(tt.id))
		})
	}
}

func TestMockYearlyExpiryMatchesDocumentedExample(t *testing.T) {
	// The documented success example: placed 2022-07-26, yearly, expires
	// "20230726155959". The client signs with the real clock, so this
	// request is signed directly with the mock's (2022) clock.
	m := mockapi.New(mockapi.Config{AK: testAK, SK: testSK, Now: func() time.Time { return fixedNow }})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	resp := send(t, signedGet(t, srv.URL, koogallery.QueryOrderPath, fixedNow, map[string]string{"orderId": mockapi.OrderPeriodYearNew}))
	require.Equal(t, http.StatusOK, resp.status)
	var res koogallery.QueryOrderResult
	require.NoError(t, json.Unmarshal(resp.body, &res))
	require.Equal(t, "20230726155959", res.OrderInfo.OrderLines[0].ExpireTime)
	require.Equal(t, "20220726064700", res.OrderInfo.CreateTime)
}

func TestMockAddOrder(t *testing.T) {
	m, _, c := setup(t, nil)
	lv := koogallery.LinearValue(5)
	order := koogallery.OrderInfo{
		OrderID:    "CS2207261447AUY4H",
		OrderType:  koogallery.OrderTypeNew,
		CreateTime: "20220726144700",
		OrderLines: []koogallery.OrderLine{
			{OrderLineID: "CS2207261447AUY4H-000001", ChargingMode: koogallery.ChargingPeriod, PeriodType: "year", PeriodNumber: 1, ExpireTime: "20230726155959",
				ProductInfo: []koogallery.ProductInfo{{SkuCode: "s1", ProductID: "p1", LinearValue: &lv}}},
			{OrderLineID: "CS2207261447AUY4H-000002", ChargingMode: koogallery.ChargingOnDemand},
		},
	}
	m.AddOrder(order)
	order.OrderLines[0].ExpireTime = "changed after AddOrder" // must not leak into the mock

	res, err := c.QueryOrder(t.Context(), order.OrderID, "")
	require.NoError(t, err)
	require.Len(t, res.OrderInfo.OrderLines, 2)
	require.Equal(t, "20230726155959", res.OrderInfo.OrderLines[0].ExpireTime)
	require.Equal(t, koogallery.LinearValue(5), *res.OrderInfo.OrderLines[0].Product().LinearValue)

	// orderLineId narrows the answer to that line.
	res, err = c.QueryOrder(t.Context(), order.OrderID, "CS2207261447AUY4H-000002")
	require.NoError(t, err)
	require.Len(t, res.OrderInfo.OrderLines, 1)
	require.Equal(t, koogallery.ChargingOnDemand, res.OrderInfo.OrderLines[0].ChargingMode)

	_, err = c.QueryOrder(t.Context(), order.OrderID, "CS2207261447AUY4H-000009")
	var oe *koogallery.OpenAPIError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, koogallery.OpenAPIParamCheckFailed, oe.Code)
	require.Equal(t, 3, m.Calls(order.OrderID))

	// A registration replaces a built-in mock order.
	m.AddOrder(koogallery.OrderInfo{OrderID: mockapi.OrderOnDemand, OrderType: koogallery.OrderTypeNew,
		OrderLines: []koogallery.OrderLine{{OrderLineID: "custom", ChargingMode: koogallery.ChargingOnDemand}}})
	res, err = c.QueryOrder(t.Context(), mockapi.OrderOnDemand, "")
	require.NoError(t, err)
	require.Equal(t, "custom", res.OrderInfo.OrderLines[0].OrderLineID)
}

type answer struct {
	status int
	body   []byte
}

func send(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, b}
}

// signedGet signs a Query Order request with the SDK at the given time, so
// tests can send what the client never would (no orderId, odd dates).
func signedGet(t *testing.T, base, path string, at time.Time, query map[string]string) *http.Request {
	t.Helper()
	b := request.NewHttpRequestBuilder().WithEndpoint(base).WithPath(path).WithMethod(http.MethodGet).
		AddHeaderParam("Content-Type", "application/json;charset=UTF-8").
		AddHeaderParam("Host", strings.TrimPrefix(base, "http://")).
		AddHeaderParam("X-Sdk-Date", at.UTC().Format(koogallery.LayoutOpenAPI))
	for k, v := range query {
		b.AddQueryParam(k, reflect.ValueOf(v))
	}
	r := b.Build()
	h, err := signer.Sign(r, testAK, testSK)
	require.NoError(t, err)
	for k, v := range h {
		r.AddHeaderParam(k, v)
	}
	req, err := r.ConvertRequest()
	require.NoError(t, err)
	return req.WithContext(t.Context())
}

func TestMockRejections(t *testing.T) {
	clk := &clock{now: time.Now()}
	m, srv, c := setup(t, clk.Now)

	t.Run("unknown order", func(t *testing.T) {
		resp := send(t, signedGet(t, srv.URL, koogallery.QueryOrderPath, clk.Now(), map[string]string{"orderId": "NOSUCHORDER"}))
		require.Equal(t, http.StatusBadRequest, resp.status)
		require.JSONEq(t, `{"resultCode":"MKT.0100","resultMsg":"order not found"}`, string(resp.body))
		require.Equal(t, 1, m.Calls("NOSUCHORDER"))
	})

	t.Run("missing orderId", func(t *testing.T) {
		resp := send(t, signedGet(t, srv.URL, koogallery.QueryOrderPath, clk.Now(), map[string]string{"orderLineId": "x"}))
		require.Equal(t, http.StatusBadRequest, resp.status)
		require.JSONEq(t, `{"resultCode":"MKT.0199","resultMsg":"orderId is required"}`, string(resp.body))
	})

	t.Run("unsigned", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+koogallery.QueryOrderPath+"?orderId="+mockapi.OrderPeriodYearNew, nil)
		require.NoError(t, err)
		resp := send(t, req)
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.JSONEq(t, `{"resultCode":"MKT.0154","resultMsg":"illegal token"}`, string(resp.body))
		require.Equal(t, 0, m.Calls(mockapi.OrderPeriodYearNew))
	})

	t.Run("stale signature", func(t *testing.T) {
		clk.Set(time.Now().Add(mockapi.MaxSkew + time.Minute))
		t.Cleanup(func() { clk.Set(time.Now()) })
		_, err := c.QueryOrder(t.Context(), mockapi.OrderPeriodYearNew, "")
		var oe *koogallery.OpenAPIError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, http.StatusUnauthorized, oe.HTTPStatus)
		require.Equal(t, koogallery.OpenAPIIllegalToken, oe.Code)
		require.Equal(t, 0, m.Calls(mockapi.OrderPeriodYearNew))
	})

	t.Run("unknown path", func(t *testing.T) {
		resp := send(t, signedGet(t, srv.URL, "/nope", clk.Now(), nil))
		require.Equal(t, http.StatusNotFound, resp.status)
		require.Contains(t, string(resp.body), "APIGW.0101")
	})
}

func TestMockConcurrentCalls(t *testing.T) {
	m, _, c := setup(t, nil)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := c.QueryOrder(t.Context(), mockapi.OrderMonthRenew, "")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, n, m.Calls(mockapi.OrderMonthRenew))
}
