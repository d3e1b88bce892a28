package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

const v1AccessKey = "e2e-v1-key-51d0"

// v1Reply is the answer to a V1 call, its Body-Sign checked with the V1 key.
type v1Reply struct {
	ResultCode  string              `json:"resultCode"`
	ResultMsg   string              `json:"resultMsg"`
	InstanceID  string              `json:"instanceId"`
	EncryptType string              `json:"encryptType"`
	AppInfo     *koogallery.AppInfo `json:"appInfo"`
	License     string              `json:"license"`
	took        time.Duration
}

// produceV1 sends a V1 call as the marketplace does: a GET of /produce
// with timeStamp and authToken.
func (s *stack) produceV1(req koogallery.V1Request) v1Reply {
	s.t.Helper()
	signed, err := koogallery.SignedV1Query(v1AccessKey, koogallery.V1Query(req), time.Now())
	require.NoError(s.t, err)
	get, err := http.NewRequest(http.MethodGet, s.baseURL+"/produce?"+koogallery.EncodeV1Query(signed), nil)
	require.NoError(s.t, err)
	raw, took := s.signedAnswer(get, v1AccessKey)
	r := v1Reply{took: took}
	require.NoError(s.t, json.Unmarshal(raw, &r), string(raw))
	return r
}

// buyV1 sends a V1 purchase (newInstance or getLicense) as the marketplace
// does until it is answered 000000: each answer within 5 s, 000005 (naming
// the instance) until the tenant, or the licence, is ready. retry prepares
// each attempt (a new businessId, as V1 sends on every request).
func (s *stack) buyV1(req koogallery.V1Request, retry func(attempt int)) v1Reply {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		retry(attempt)
		r := s.produceV1(req)
		require.Less(s.t, r.took, 5*time.Second, "answered within KooGallery's timeout")
		if r.ResultCode == "000000" {
			return r
		}
		require.Equal(s.t, "000005", r.ResultCode, "%+v", r)
		require.NotEmpty(s.t, r.InstanceID, "a failure answer names the instance")
		require.Less(s.t, attempt, 10, "the purchase was never ready")
	}
}

// A V1 life through the real server and workflow: the purchase answered
// with its access information (retried, as the marketplace retries, until
// the tenant is ready), an arrears freeze and its restoration, expiry
// (freeze), a renewal that restores it (V1 has no UNFREEZE), and release.
func TestV1Life(t *testing.T) {
	t.Parallel()
	s := startStack(t, "KOOGALLERY_V1_ACCESS_KEY="+v1AccessKey)

	buy := &koogallery.V1NewInstanceRequest{V1Order: koogallery.V1Order{
		CustomerID: "cust-v1", CustomerName: "V1 买家", OrderID: "CSV1E2E0001", SkuCode: "sku-v1",
		ProductID: "prod-v1", ChargingMode: 1, ExpireTime: "20301231000000", PeriodType: "year", PeriodNumber: 1,
	}}
	bought := s.buyV1(buy, func(attempt int) { buy.BusinessID = "b-" + strconv.Itoa(attempt) })
	id := bought.InstanceID
	require.Equal(t, string(koogallery.EncryptAES256), bought.EncryptType)
	require.NotNil(t, bought.AppInfo)
	require.NotEmpty(t, bought.AppInfo.FrontEndURL)
	user, err := koogallery.DecryptField(v1AccessKey, koogallery.AES256, bought.AppInfo.UserName)
	require.NoError(t, err)
	require.NotEmpty(t, user)
	active := s.waitState(id, "active")
	require.Equal(t, time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC), active.ExpireTime.UTC(), "the order came from the request")

	again := s.produceV1(buy)
	require.Equal(t, "000000", again.ResultCode, "a retry of the purchase")
	require.Equal(t, id, again.InstanceID, "the same instance")

	ok := func(req koogallery.V1Request) {
		t.Helper()
		r := s.produceV1(req)
		require.Equal(t, "000000", r.ResultCode, "%s: %+v", req.V1Activity(), r)
	}
	ok(&koogallery.V1InstanceStatusRequest{InstanceID: id, Status: koogallery.V1StatusFreeze})
	s.waitState(id, "frozen")
	ok(&koogallery.V1InstanceStatusRequest{InstanceID: id, Status: koogallery.V1StatusNormal})
	s.waitState(id, "active")

	ok(&koogallery.V1ExpireInstanceRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id, OrderID: "CSV1E2E0001"}})
	s.waitState(id, "frozen")
	ok(&koogallery.V1RefreshInstanceRequest{V1Renewal: koogallery.V1Renewal{
		OrderID: "CSV1E2E0002", InstanceID: id, ExpireTime: "20311231000000"}, OrderAmount: "99"})
	renewed := s.waitState(id, "active")
	require.Equal(t, time.Date(2031, 12, 31, 0, 0, 0, 0, time.UTC), renewed.ExpireTime.UTC())

	ok(&koogallery.V1ReleaseInstanceRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id, OrderID: "CSV1E2E0001"}})
	s.waitState(id, "released")
}

// TestV1LicenseLife (contract §1.11): a 联营License purchase (getLicense)
// is answered, once the instance is provisioned and the licence issued by
// the merchant's generator, with the licence and the instance; the same
// order gets the same licence and instance again; refreshLicense renews,
// expireLicense freezes, releaseLicense releases.
func TestV1LicenseLife(t *testing.T) {
	t.Parallel()
	s := startStack(t, "KOOGALLERY_V1_ACCESS_KEY="+v1AccessKey)
	buy := &koogallery.V1GetLicenseRequest{V1Order: koogallery.V1Order{
		CustomerID: "cust-lic", OrderID: "CSV1LIC0001", ProductID: "prod-lic", ChargingMode: 1,
		ExpireTime: "20301231000000", PeriodType: "year", PeriodNumber: 1,
	}}
	bought := s.buyV1(buy, func(attempt int) { buy.BusinessID = "lic-b-" + strconv.Itoa(attempt) })
	require.True(t, strings.HasPrefix(bought.License, "DEMO-LIC-"), "the demo generator's licence: %q", bought.License)
	id := bought.InstanceID
	s.waitState(id, "active")

	buy.BusinessID = "lic-b-again"
	again := s.produceV1(buy)
	require.Equal(t, "000000", again.ResultCode)
	require.Equal(t, id, again.InstanceID)
	require.Equal(t, bought.License, again.License, "one order, one licence")

	ok := func(req koogallery.V1Request) {
		t.Helper()
		r := s.produceV1(req)
		require.Equal(t, "000000", r.ResultCode, "%s: %+v", req.V1Activity(), r)
	}
	ok(&koogallery.V1RefreshLicenseRequest{V1Renewal: koogallery.V1Renewal{OrderID: "CSV1LIC0002", InstanceID: id, ExpireTime: "20311231000000"}})
	renewed := s.waitFor(id, "renewed", func(i instance) bool {
		return i.ExpireTime != nil && i.ExpireTime.UTC().Equal(time.Date(2031, 12, 31, 0, 0, 0, 0, time.UTC))
	})
	require.Equal(t, "active", renewed.State)
	ok(&koogallery.V1ExpireLicenseRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id, OrderID: "CSV1LIC0001"}})
	s.waitState(id, "frozen")
	ok(&koogallery.V1ReleaseLicenseRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id, OrderID: "CSV1LIC0001"}})
	s.waitState(id, "released")
}

// A V1 listing played by the emulator (buy -interface v1): the purchase
// fails once and is retried as the marketplace retries it (a new
// businessId, the same instance), its answer carries the access
// information; expiry freezes the instance, a renewal restores it (no
// UNFREEZE is sent), and the unsubscription releases it.
func TestEmulatedV1Life(t *testing.T) {
	t.Parallel()
	e := startEmulatorStack(t, "1d=5s", "KOOGALLERY_V1_ACCESS_KEY="+v1AccessKey)
	e.proxy.failNext("newInstance", 1)
	id := e.buy(emulator.BuyRequest{PeriodType: "day", Interface: emulator.InterfaceV1})

	inService := e.purchaseState(id, emulator.StateInService)
	instanceID := inService.InstanceID
	require.NotEqual(t, id, instanceID, "a V1 instanceId derives from the order, not the businessId")
	require.NotNil(t, inService.AppInfo)
	require.Empty(t, inService.AppInfo.DecryptError)
	require.Equal(t, "admin", inService.AppInfo.UserName, "the buyer sees the credentials the answer carried")
	require.True(t, hasEvent(inService, "provisioned"))
	for _, ev := range inService.Timeline {
		require.NotContains(t, ev.Message, "Polling", "V1 has no polling")
	}
	require.Len(t, inService.Failed, 1)
	require.Equal(t, emulator.MessageResolved, inService.Failed[0].Status, "the failed newInstance was retried")
	e.waitState(instanceID, "active")

	e.purchaseState(id, emulator.StateFrozen)
	e.waitState(instanceID, "frozen")
	e.act(id, emulator.Action{Kind: emulator.ActRenew})
	e.purchaseState(id, emulator.StateInService)
	e.waitState(instanceID, "active")

	e.act(id, emulator.Action{Kind: emulator.ActUnsubscribe})
	released := e.purchaseState(id, emulator.StateUnsubscribed)
	e.waitState(instanceID, "released")
	for _, m := range released.Failed {
		require.Equal(t, emulator.MessageResolved, m.Status, "every failed call was retried and answered: %+v", m)
	}
}

// A V1 pay-per-use listing in arrears: instanceStatus FREEZE freezes the
// instance, NORMAL restores it once paid.
func TestEmulatedV1PayPerUseArrears(t *testing.T) {
	t.Parallel()
	e := startEmulatorStack(t, "1d=5s", "KOOGALLERY_V1_ACCESS_KEY="+v1AccessKey)
	id := e.buy(emulator.BuyRequest{BillingMode: emulator.ModeOnDemand, Interface: emulator.InterfaceV1})
	instanceID := e.purchaseState(id, emulator.StateInService).InstanceID
	e.waitState(instanceID, "active")

	e.act(id, emulator.Action{Kind: emulator.ActArrears})
	e.waitState(instanceID, "frozen")
	e.act(id, emulator.Action{Kind: emulator.ActPay})
	e.waitState(instanceID, "active")
	for _, m := range e.purchaseState(id, emulator.StateInService).Failed {
		require.Equal(t, emulator.MessageResolved, m.Status, "every call was answered: %+v", m)
	}
}

// TestEmulatedV1Kit (contract §12.10): a V1 listing's kit, played by the
// emulator on the sub-paths without /v2 with an authToken header made with
// the V1 key and the V1 shapes (userList and orgInfo as strings, a
// department's name): the enterprise, its app, its departments and its
// users reach the merchant's directory as a V2 listing's do.
func TestEmulatedV1Kit(t *testing.T) {
	t.Parallel()
	e := startEmulatorStack(t, "1d=5s", "KOOGALLERY_V1_ACCESS_KEY="+v1AccessKey)
	id := e.buy(emulator.BuyRequest{PeriodType: "month", Interface: emulator.InterfaceV1})
	instanceID := e.purchaseState(id, emulator.StateInService).InstanceID
	e.waitState(instanceID, "active")

	e.act(id, emulator.Action{Kind: emulator.ActBind, Enterprise: "Acme V1 有限公司"})
	bound := e.purchase(id, "bound", func(v emulator.PurchaseView) bool { return hasEvent(v, "kit-bound") })
	require.Empty(t, bound.Failed, "every V1 kit call was answered 000000 with the V1 key's Body-Sign")
	d := e.waitDirectory(instanceID, "the enterprise, its app and departments", func(d directory) bool {
		return len(d.Tenants) == 1 && len(d.Tenants[0].Apps) == 1 && len(d.Tenants[0].Orgs) == 2
	})
	require.Equal(t, "Acme V1 有限公司", d.Tenants[0].Name)
	require.Equal(t, bound.Kit.SecretSHA256, d.Tenants[0].Apps[0].ClientSecretSHA256)
	_, name, _ := d.org("D1")
	require.NotEmpty(t, name, "a V1 department's name is read from name")

	e.act(id, emulator.Action{Kind: emulator.ActAuthorize, Users: []string{"alice"}, Role: "admin"})
	e.waitDirectory(instanceID, "alice authorised", func(d directory) bool { return d.userState("alice") == "authorized" })
	shown, err := e.emu.Purchase(t.Context(), id)
	require.NoError(t, err)
	require.Empty(t, shown.Failed)
}
