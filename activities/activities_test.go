package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

const accessKey = "activities-test-key"

func newOrders(t *testing.T) (*koogallery.OpenAPIClient, *mockapi.Server) {
	t.Helper()
	mock := mockapi.New(mockapi.Config{AK: "ak", SK: "sk"})
	srv := httptest.NewServer(mock)
	t.Cleanup(srv.Close)
	c, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: "ak", SK: "sk"})
	require.NoError(t, err)
	return c, mock
}

// nonRetryable reports whether Temporal would stop retrying err.
func nonRetryable(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

func TestFetchOrderMapsTheOrderLine(t *testing.T) {
	orders, mock := newOrders(t)
	ten := koogallery.LinearValue(10)
	expire := "20271121155959"
	mock.AddOrder(koogallery.OrderInfo{
		OrderID: "CS-1", OrderType: koogallery.OrderTypeNew, CreateTime: "20261120120000",
		OrderLines: []koogallery.OrderLine{
			{OrderLineID: "CS-1-000001", ChargingMode: koogallery.ChargingPeriod, ExpireTime: expire, PeriodType: "year", PeriodNumber: 1,
				ProductInfo: []koogallery.ProductInfo{{SkuCode: "sku", ProductID: "prod", LinearValue: &ten}}},
			{OrderLineID: "CS-1-000002", ChargingMode: koogallery.ChargingOnDemand},
		},
		BuyerInfo: &koogallery.BuyerInfo{CustomerID: "cust", CustomerName: "Buyer 买家"},
	})
	a := &activities.Activities{Orders: orders}

	o, err := a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "CS-1", OrderLineID: "CS-1-000001"})
	require.NoError(t, err)
	want := time.Date(2027, 11, 21, 15, 59, 59, 0, time.UTC)
	ten64 := int64(10)
	require.Equal(t, workflows.Order{
		OrderID: "CS-1", OrderLineID: "CS-1-000001", OrderType: "NEW", ChargingMode: "PERIOD",
		SkuCode: "sku", ProductID: "prod", LinearValue: &ten64, PeriodType: "year", PeriodNumber: 1,
		ExpireTime: &want, CustomerID: "cust", CustomerName: "Buyer 买家",
	}, o)

	payPerUse, err := a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "CS-1", OrderLineID: "CS-1-000002"})
	require.NoError(t, err)
	require.Nil(t, payPerUse.ExpireTime, "pay-per-use lines have no expiry")
	require.Equal(t, "ON_DEMAND", payPerUse.ChargingMode)
}

// A pay-per-use order with two billing items (one line each): one instance
// per orderId + productId; another instance for a billing item already
// served is refused for good (contract §1.2).
func TestFetchOrderClaimsPayPerUseBillingItems(t *testing.T) {
	orders, mock := newOrders(t)
	mock.AddOrder(koogallery.OrderInfo{
		OrderID: "PPU-1", OrderType: koogallery.OrderTypeNew,
		OrderLines: []koogallery.OrderLine{
			{OrderLineID: "PPU-1-000001", ChargingMode: koogallery.ChargingOnDemand, ProductInfo: []koogallery.ProductInfo{{SkuCode: "sku", ProductID: "sms"}}},
			{OrderLineID: "PPU-1-000002", ChargingMode: koogallery.ChargingOnDemand, ProductInfo: []koogallery.ProductInfo{{SkuCode: "sku", ProductID: "mms"}}},
			{OrderLineID: "PPU-1-000003", ChargingMode: koogallery.ChargingOnDemand, ProductInfo: []koogallery.ProductInfo{{SkuCode: "sku", ProductID: "sms"}}},
		},
	})
	a := &activities.Activities{Orders: orders, Store: testenv.NewStore(t)}
	fetch := func(line, instance string) (workflows.Order, error) {
		return a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "PPU-1", OrderLineID: line, ClaimFor: instance})
	}

	sms, err := fetch("PPU-1-000001", "inst-sms")
	require.NoError(t, err)
	mms, err := fetch("PPU-1-000002", "inst-mms")
	require.NoError(t, err)
	again, err := fetch("PPU-1-000001", "inst-sms")
	require.NoError(t, err, "the same instance fetching again")
	_, dup := fetch("PPU-1-000003", "inst-sms-2")
	_, unclaimed := a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "PPU-1", OrderLineID: "PPU-1-000003"})

	require.Equal(t, "sms", sms.ProductID)
	require.Equal(t, "mms", mms.ProductID)
	require.Equal(t, sms, again)
	require.ErrorContains(t, dup, "billing item sms of order PPU-1 is already served by instance inst-sms")
	require.True(t, nonRetryable(dup))
	require.NoError(t, unclaimed, "fetching a renewal or upgrade order claims nothing")
}

func TestFetchOrderFailures(t *testing.T) {
	orders, mock := newOrders(t)
	mock.AddOrder(koogallery.OrderInfo{OrderID: "BAD-EXPIRY", OrderLines: []koogallery.OrderLine{{OrderLineID: "L", ExpireTime: "tomorrow"}}})
	a := &activities.Activities{Orders: orders}

	_, err := a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "NO-SUCH-ORDER", OrderLineID: "x"})
	require.Error(t, err)
	require.True(t, nonRetryable(err), "an unknown order will not appear by retrying: %v", err)

	_, err = a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: mockapi.OrderPeriodYearNew, OrderLineID: "no-such-line"})
	require.True(t, nonRetryable(err), "%v", err)

	_, err = a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "BAD-EXPIRY", OrderLineID: "L"})
	require.True(t, nonRetryable(err), "%v", err)

	// An unreachable open API is retried.
	down, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: "http://127.0.0.1:1", AK: "ak", SK: "sk"})
	require.NoError(t, err)
	_, err = (&activities.Activities{Orders: down}).FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "X", OrderLineID: "X-1"})
	require.Error(t, err)
	require.False(t, nonRetryable(err), "a network failure is retried: %v", err)
}

// stubProvisioner answers Provision with fixed credentials and fails the
// other operations as told.
type stubProvisioner struct {
	provisioner.Provisioner
	tenant provisioner.Tenant
	err    error
	got    provisioner.ProvisionRequest
}

func (s *stubProvisioner) Provision(_ context.Context, req provisioner.ProvisionRequest) (provisioner.Tenant, error) {
	s.got = req
	return s.tenant, s.err
}

func (s *stubProvisioner) Freeze(context.Context, provisioner.TenantRequest) error { return s.err }

func TestProvisionSealsCredentialsOutOfTheWorkflow(t *testing.T) {
	db := testenv.NewStore(t)
	prov := &stubProvisioner{tenant: provisioner.Tenant{
		FrontEndURL: "https://app/t/1", AdminURL: "https://app/t/1/admin", UserName: "管理员", Password: "S3cret-initial", Memo: "hi",
	}}
	a := &activities.Activities{Provisioner: prov, Store: db, Sealer: activities.Sealer{AccessKey: accessKey}}
	_, err := db.Callbacks.RecordNewInstance(t.Context(), "inst-1", store.NewCallback{
		DedupKey: "newInstance:O:L", Activity: "newInstance", OrderID: "O", OrderLineID: "L", Body: []byte(`{}`),
	})
	require.NoError(t, err)
	five := int64(5)
	order := workflows.Order{OrderID: "O", OrderLineID: "L", ChargingMode: "PERIOD", SkuCode: "sku", ProductID: "p", LinearValue: &five, CustomerID: "c"}

	app, err := a.Provision(t.Context(), activities.ProvisionInput{InstanceID: "inst-1", Order: order, Debug: true})
	require.NoError(t, err)
	require.Equal(t, workflows.AppInfo{FrontEndURL: "https://app/t/1", AdminURL: "https://app/t/1/admin", Memo: "hi", HasCredentials: true}, app,
		"nothing secret goes back to the workflow")
	require.True(t, prov.got.Debug)
	require.Equal(t, provisioner.Spec{SkuCode: "sku", ProductID: "p", LinearValue: &five}, prov.got.Spec)
	require.Equal(t, "c", prov.got.Customer.ID)

	views, err := db.Instances.LookupInstances(t.Context(), []string{"inst-1"})
	require.NoError(t, err)
	sealed := views["inst-1"].Credentials
	require.NotNil(t, sealed)
	require.NotContains(t, sealed.Password, "S3cret-initial")
	user, password, err := activities.Sealer{AccessKey: accessKey}.Open(*sealed)
	require.NoError(t, err)
	require.Equal(t, "管理员", user)
	require.Equal(t, "S3cret-initial", password)
}

func TestProvisionerErrorsAreClassified(t *testing.T) {
	db := testenv.NewStore(t)
	prov := &stubProvisioner{err: provisioner.Permanent("provision", "plan does not exist")}
	a := &activities.Activities{Provisioner: prov, Store: db, Sealer: activities.Sealer{AccessKey: accessKey}}

	_, err := a.Provision(t.Context(), activities.ProvisionInput{InstanceID: "i"})
	require.True(t, nonRetryable(err))
	require.ErrorContains(t, err, "plan does not exist")
	require.True(t, nonRetryable(a.Freeze(t.Context(), activities.TenantInput{InstanceID: "i"})))

	prov.err = errors.New("application answered 503")
	_, err = a.Provision(t.Context(), activities.ProvisionInput{InstanceID: "i"})
	require.Error(t, err)
	require.False(t, nonRetryable(err), "a transient failure is retried")
}

func TestSaveInstanceWritesTheReadModel(t *testing.T) {
	db := testenv.NewStore(t)
	a := &activities.Activities{Store: db}
	expire := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	seven := int64(7)
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	snap := activities.ReadModel{
		InstanceID: "inst-s", OrderID: "O", OrderLineID: "L", State: "frozen", Reason: "marketplace FREEZE",
		Order:      &activities.Order{ChargingMode: "PERIOD", OrderType: "NEW", SkuCode: "sku", ProductID: "p", LinearValue: &seven, PeriodType: "month", PeriodNumber: 1, CustomerID: "c", CustomerName: "n"},
		AppInfo:    &activities.AppInfo{FrontEndURL: "https://app/t", AdminURL: "https://app/a", Memo: "m"},
		ExpireTime: &expire, Revision: 4,
	}
	require.NoError(t, a.SaveInstance(t.Context(), activities.SaveInput{Snapshot: snap, Events: []activities.Event{
		{Key: "callback/x", Kind: "frozen", Message: "Tenant frozen.", At: at},
	}}))
	inst, err := db.Instances.Instance(t.Context(), "inst-s")
	require.NoError(t, err)
	require.Equal(t, "frozen", inst.State)
	require.Equal(t, "marketplace FREEZE", inst.Reason)
	require.Equal(t, "sku", inst.SkuCode)
	require.Equal(t, int64(7), *inst.LinearValue)
	require.Equal(t, "month", inst.PeriodType)
	require.Equal(t, "https://app/t", inst.FrontEndURL)
	require.True(t, inst.ExpireTime.Equal(expire))
	require.Equal(t, int64(4), inst.Revision)
	events, err := db.Instances.Events(t.Context(), "inst-s")
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.True(t, events[0].OccurredAt.Equal(at))

	// A retried older save changes nothing.
	snap.State, snap.Revision = "active", 3
	require.NoError(t, a.SaveInstance(t.Context(), activities.SaveInput{Snapshot: snap}))
	inst, err = db.Instances.Instance(t.Context(), "inst-s")
	require.NoError(t, err)
	require.Equal(t, "frozen", inst.State)
}

// A V1 purchase or upgrade carries its order in the request (contract
// §1.12): FetchOrder reads it from the inbox row instead of calling Query
// Order, which knows no V1 order.
func TestFetchOrderReadsTheV1OrderFromTheInbox(t *testing.T) {
	orders, _ := newOrders(t)
	db := testenv.NewStore(t)
	a := &activities.Activities{Orders: orders, Store: db}
	instanceID := activities.V1OrderLinePrefix + "0123456789abcdef"
	expire := time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC)
	want := workflows.Order{OrderID: "CSV1-1", OrderLineID: instanceID, OrderType: "NEW", ChargingMode: "PERIOD",
		SkuCode: "sku", ProductID: "prod", ExpireTime: &expire, CustomerID: "cust"}
	payload, err := json.Marshal(activities.V1OrderPayload{V1Order: want})
	require.NoError(t, err)
	_, err = db.Callbacks.RecordNewInstance(t.Context(), instanceID, store.NewCallback{
		DedupKey: "v1:newInstance:" + instanceID, Activity: "newInstance", OrderID: "CSV1-1", OrderLineID: instanceID,
		Body: []byte("activity=newInstance"), Payload: payload})
	require.NoError(t, err)

	got, err := a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "CSV1-1", OrderLineID: instanceID, ClaimFor: instanceID})
	require.NoError(t, err)
	require.Equal(t, want, got)

	// An order line that only looks like a V1 one goes to Query Order.
	_, err = a.FetchOrder(t.Context(), activities.FetchOrderInput{OrderID: "CSV1-2", OrderLineID: activities.V1OrderLinePrefix + "x"})
	require.ErrorContains(t, err, "Query Order CSV1-2")
}
