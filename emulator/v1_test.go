package emulator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

const v1Key = "emulator-v1-key"

// v1Merchant verifies V1 calls with the V1 key, remembers their
// parameters and answers success, signed with the V1 key.
func v1Merchant(t *testing.T, answer string) (*httptest.Server, func() []url.Values) {
	var mu sync.Mutex
	var calls []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, http.MethodGet, r.Method)
		params, err := (&koogallery.V1Verifier{AccessKey: v1Key}).Verify(r.URL.RawQuery)
		if err != nil {
			t.Errorf("the emulator's V1 call is not signed per contract §2.5: %v", err)
		}
		mu.Lock()
		calls = append(calls, params)
		mu.Unlock()
		w.Header().Set(koogallery.BodySignHeader, koogallery.BodySign(v1Key, []byte(answer)))
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []url.Values { mu.Lock(); defer mu.Unlock(); return calls }
}

func TestV1CallsAreTheV1Activities(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	ten := int64(10)
	require.NoError(t, db.SaveOrder(ctx, Order{OrderID: "P1", OrderLineID: "P1-000001", PurchaseID: "P1", OrderType: "NEW",
		ChargingMode: ModePeriod, PeriodType: "month", PeriodNumber: 1, SkuCode: "s", ProductID: "p", LinearValue: &ten,
		CustomerID: "emu-P1", CustomerName: "buyer"}))
	require.NoError(t, db.SavePurchase(ctx, Purchase{PurchaseID: "P1", State: StateInService, ChargingMode: ModePeriod}, nil))
	srv, calls := v1Merchant(t, `{"resultCode":"000000","resultMsg":"success"}`)
	a := &Activities{Store: db, ProductionURL: srv.URL + "/produce", V1AccessKey: v1Key}
	call := func(activity, body string) CallResult {
		res, err := a.Call(ctx, CallInput{PurchaseID: "P1", Activity: activity, Body: body, V1: true})
		require.NoError(t, err)
		return res
	}

	call("refreshInstance", `{"activity":"refreshInstance","scene":"UNSUBSCRIBE_RENEWAL_PERIOD","orderId":"P102","instanceId":"v1-i","expireTime":"20300101000000"}`)
	call("updateInstanceStatus", `{"activity":"updateInstanceStatus","instanceId":"v1-i","status":"FREEZE"}`)
	res := call("updateInstanceStatus", `{"activity":"updateInstanceStatus","instanceId":"v1-i","status":"UNFREEZE"}`)
	require.Equal(t, "000000", res.ResultCode)
	require.Contains(t, res.ResultMsg, "V1 has no such call")
	call("releaseInstance", `{"activity":"releaseInstance","instanceId":"v1-i","testFlag":"1"}`)

	got := calls()
	require.Len(t, got, 3, "no UNFREEZE is sent")
	require.Equal(t, "refreshInstance", got[0].Get("activity"))
	require.Equal(t, "-1", got[0].Get("orderAmount"), "a refunded renewal period")
	require.Equal(t, "expireInstance", got[1].Get("activity"))
	require.Equal(t, "P1", got[1].Get("orderId"), "the purchase order")
	require.Equal(t, "releaseInstance", got[2].Get("activity"))
	require.Equal(t, "1", got[2].Get("testFlag"))
}

func TestV1NewInstanceNeedsTheAccessInformation(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	require.NoError(t, db.SaveOrder(ctx, Order{OrderID: "P2", OrderLineID: "P2-000001", PurchaseID: "P2", OrderType: "NEW",
		ChargingMode: ModeOneTime, SkuCode: "s", ProductID: "p", CustomerID: "emu-P2"}))
	body := `{"activity":"newInstance","orderId":"P2","orderLineId":"P2-000001","businessId":"P2"}`

	srv, _ := v1Merchant(t, `{"resultCode":"000000","resultMsg":"success","instanceId":"v1-x"}`)
	a := &Activities{Store: db, ProductionURL: srv.URL, V1AccessKey: v1Key}
	_, err := a.Call(ctx, CallInput{PurchaseID: "P2", Activity: "newInstance", Body: body, V1: true})
	require.ErrorContains(t, err, "no instanceId or appInfo.frontEndUrl")

	srv, calls := v1Merchant(t, `{"resultCode":"000000","resultMsg":"success","instanceId":"v1-x","encryptType":"1","appInfo":{"frontEndUrl":"https://t","userName":"u"}}`)
	a.ProductionURL = srv.URL
	for range 2 {
		res, err := a.Call(ctx, CallInput{PurchaseID: "P2", Activity: "newInstance", Body: body, V1: true})
		require.NoError(t, err)
		require.Equal(t, "v1-x", res.InstanceID)
	}
	app, err := db.AppInfo(ctx, "P2")
	require.NoError(t, err)
	require.Equal(t, "https://t", app.FrontEndURL)
	got := calls()
	require.Equal(t, "3", got[0].Get("chargingMode"))
	require.NotEqual(t, got[0].Get("businessId"), got[1].Get("businessId"), "a new businessId on every request")

	b := BuyRequest{Interface: "v1", Supervised: true}
	require.ErrorContains(t, b.Validate(), "a V1 listing has no supervision")
}
