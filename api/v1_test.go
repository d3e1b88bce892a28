package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

const testV1Key = "v1-4Tq9Lm2Wx7Rk5Pz8"

// v1Answer is a V1 answer that passed requireAnswerSignedWith (the V1 key),
// with the newInstance fields.
type v1Answer struct {
	produceAnswer
	EncryptType string              `json:"encryptType"`
	AppInfo     *koogallery.AppInfo `json:"appInfo"`
}

// produceV1 signs a V1 call as the marketplace does (timeStamp and
// authToken with key) and sends it as a GET of /produce.
func (h *harness) produceV1(t testing.TB, key string, params url.Values) v1Answer {
	t.Helper()
	signed, err := koogallery.SignedV1Query(key, params, time.Now())
	require.NoError(t, err)
	return h.getV1(t, testV1Key, koogallery.EncodeV1Query(signed))
}

// getV1 sends a raw V1 query and checks that the answer is signed with
// answerKey.
func (h *harness) getV1(t testing.TB, answerKey, rawQuery string) v1Answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+"/produce?"+rawQuery, nil)
	require.NoError(t, err)
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := v1Answer{produceAnswer: requireAnswerSignedWith(t, answerKey, resp.StatusCode, resp.Header, raw)}
	require.NoError(t, json.Unmarshal(raw, &out))
	h.settle(t)
	return out
}

// v1Purchase is a V1 newInstance of order orderID, a real (not debug) one.
func v1Purchase(orderID, businessID string) *koogallery.V1NewInstanceRequest {
	return &koogallery.V1NewInstanceRequest{V1Order: koogallery.V1Order{
		CustomerID: "cust-1", CustomerName: "华为 测试", BusinessID: businessID, OrderID: orderID,
		SkuCode: "sku-basic", ProductID: "prod-basic", ChargingMode: 1, ExpireTime: "20301231000000",
		Amount: 10, PeriodType: "year", PeriodNumber: 1, OrderAmount: "99.5",
	}}
}

// provisioned writes the read model and credentials of a V1 instance as
// its workflow would once the tenant exists.
func (h *harness) provisioned(t testing.TB, instanceID string) {
	t.Helper()
	h.save(t, instance(instanceID, string(workflows.StateActive)))
	h.saveCredentials(t, instanceID, "admin", "s3cret!")
}

// v1Signals returns the callbacks delivered to an instance's workflow.
func (h *harness) v1Signals(t testing.TB, instanceID string) []workflows.Callback {
	t.Helper()
	var out []workflows.Callback
	for _, c := range h.signaller.delivered() {
		if c.WorkflowID == workflows.InstanceWorkflowID(instanceID) {
			out = append(out, c.Arg.(workflows.Callback))
		}
	}
	return out
}

func TestV1NewInstanceAnswersAppInfo(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	req := v1Purchase("CSV1-APP", "b-1")
	id := inbox.V1InstanceID(&req.V1Order)
	h.provisioned(t, id)

	a := h.produceV1(t, testV1Key, koogallery.V1Query(req))
	requireResult(t, a.produceAnswer, "000000", "success")
	require.Equal(t, id, a.InstanceID)
	require.Equal(t, string(koogallery.EncryptAES256), a.EncryptType)
	require.NotNil(t, a.AppInfo)
	require.Equal(t, "https://app.example.com/t/"+id, a.AppInfo.FrontEndURL)
	user, err := koogallery.DecryptField(testV1Key, koogallery.AES256, a.AppInfo.UserName)
	require.NoError(t, err)
	require.Equal(t, "admin", user)
	password, err := koogallery.DecryptField(testV1Key, koogallery.AES256, a.AppInfo.Password)
	require.NoError(t, err)
	require.Equal(t, "s3cret!", password)

	// Recorded as a newInstance of the order line named after the
	// instance, with the order in the payload (no Query Order for V1).
	cbs := h.callbacksOf(t, id)
	require.Len(t, cbs, 1)
	require.Equal(t, "newInstance", cbs[0].Activity)
	require.Equal(t, "v1:newInstance:"+id, cbs[0].DedupKey)
	require.Equal(t, "CSV1-APP", cbs[0].OrderID)
	require.Equal(t, id, cbs[0].OrderLineID)
	require.Contains(t, cbs[0].Body, "activity=newInstance")
	require.Contains(t, cbs[0].Body, "timeStamp=")
	require.NotContains(t, cbs[0].Body, "authToken", "the inbox keeps no credential")
	raw, err := h.db.Callbacks.LatestPayload(t.Context(), id, "CSV1-APP")
	require.NoError(t, err)
	var p activities.V1OrderPayload
	require.NoError(t, json.Unmarshal(raw, &p))
	require.Equal(t, "sku-basic", p.V1Order.SkuCode)
	require.Equal(t, string(koogallery.ChargingPeriod), p.V1Order.ChargingMode)
	require.NotNil(t, p.V1Order.ExpireTime)
	require.Equal(t, "华为 测试", p.V1Order.CustomerName)

	signals := h.v1Signals(t, id)
	require.Len(t, signals, 1)
	require.True(t, signals[0].V1)
	require.Equal(t, "newInstance", signals[0].Activity)
}

// A purchase not provisioned within the answer budget is answered 000005
// with its instance; the marketplace's retry (a new businessId) gets the
// same instance and, once it is ready, its access information.
func TestV1NewInstanceRetryReturnsTheSameInstance(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	req := v1Purchase("CSV1-RETRY", "b-first")
	id := inbox.V1InstanceID(&req.V1Order)

	start := time.Now()
	a := h.produceV1(t, testV1Key, koogallery.V1Query(req))
	require.Less(t, time.Since(start), 5*time.Second, "answered within KooGallery's timeout")
	requireResult(t, a.produceAnswer, "000005", "the instance is still being provisioned; please retry")
	require.Equal(t, id, a.InstanceID)
	require.Nil(t, a.AppInfo)

	h.provisioned(t, id)
	req.BusinessID = "b-second"
	a = h.produceV1(t, testV1Key, koogallery.V1Query(req))
	requireResult(t, a.produceAnswer, "000000", "success")
	require.Equal(t, id, a.InstanceID)
	require.NotNil(t, a.AppInfo)

	cbs := h.callbacksOf(t, id)
	require.Len(t, cbs, 1, "a retry is the same callback")
	require.Equal(t, 1, cbs[0].Redeliveries)
}

// Provisioning that finishes while the answer waits is answered at once.
func TestV1NewInstanceWaitsForProvisioning(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	req := v1Purchase("CSV1-WAIT", "b-1")
	id := inbox.V1InstanceID(&req.V1Order)
	go func() {
		time.Sleep(300 * time.Millisecond)
		h.provisioned(t, id)
	}()
	a := h.produceV1(t, testV1Key, koogallery.V1Query(req))
	requireResult(t, a.produceAnswer, "000000", "success")
	require.NotNil(t, a.AppInfo)
}

// A pay-per-use order has one instance per billing item; period and
// one-time orders one per orderId.
func TestV1InstanceIDs(t *testing.T) {
	period := v1Purchase("CSV1-ID", "b-1").V1Order
	other := period
	other.ProductID, other.BusinessID = "prod-other", "b-2"
	require.Equal(t, inbox.V1InstanceID(&period), inbox.V1InstanceID(&other))
	require.True(t, strings.HasPrefix(inbox.V1InstanceID(&period), activities.V1OrderLinePrefix))
	require.True(t, koogallery.ValidInstanceID(inbox.V1InstanceID(&period)))

	perUse, perUseOther := period, other
	perUse.ChargingMode, perUseOther.ChargingMode = 2, 2
	require.NotEqual(t, inbox.V1InstanceID(&perUse), inbox.V1InstanceID(&perUseOther))
	require.NotEqual(t, inbox.V1InstanceID(&perUse), inbox.V1InstanceID(&period))
}

// v1Instance buys a provisioned V1 instance and forgets its signal.
func (h *harness) v1Instance(t testing.TB, orderID string) string {
	t.Helper()
	req := v1Purchase(orderID, "b-"+orderID)
	id := inbox.V1InstanceID(&req.V1Order)
	h.provisioned(t, id)
	requireResult(t, h.produceV1(t, testV1Key, koogallery.V1Query(req)).produceAnswer, "000000", "success")
	h.signaller.reset()
	return id
}

func TestV1Activities(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	id := h.v1Instance(t, "CSV1-ACT")
	cases := []struct {
		name string
		req  koogallery.V1Request
		want store.Callback // the recorded row's activity, key and fields
	}{
		{"renewal", &koogallery.V1RefreshInstanceRequest{V1Renewal: koogallery.V1Renewal{
			OrderID: "CSV1-REN", InstanceID: id, ExpireTime: "20311231000000"}, OrderAmount: "99"},
			store.Callback{Activity: "refreshInstance", DedupKey: "v1:refreshInstance:" + id + ":CSV1-REN:RENEWAL",
				Scene: "RENEWAL", ExpireTime: "20311231000000"}},
		{"refunded renewal", &koogallery.V1RefreshInstanceRequest{V1Renewal: koogallery.V1Renewal{
			OrderID: "CSV1-REF", InstanceID: id, ExpireTime: "20301231000000"}, OrderAmount: "-99"},
			store.Callback{Activity: "refreshInstance", DedupKey: "v1:refreshInstance:" + id + ":CSV1-REF:UNSUBSCRIBE_RENEWAL_PERIOD",
				Scene: "UNSUBSCRIBE_RENEWAL_PERIOD", ExpireTime: "20301231000000"}},
		{"trial to formal", &koogallery.V1RefreshInstanceRequest{V1Renewal: koogallery.V1Renewal{
			OrderID: "CSV1-T2F", InstanceID: id, ExpireTime: "20321231000000", ProductID: "prod-year"}, TrialToFormal: true},
			store.Callback{Activity: "refreshInstance", DedupKey: "v1:refreshInstance:" + id + ":CSV1-T2F:TRIAL_TO_FORMAL",
				Scene: "TRIAL_TO_FORMAL", ExpireTime: "20321231000000", ProductID: "prod-year"}},
		{"expiry", &koogallery.V1ExpireInstanceRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id, OrderID: "CSV1-ACT"}},
			store.Callback{Activity: "updateInstanceStatus", DedupKey: "v1:expireInstance:" + id + ":1", Status: "FREEZE"}},
		{"arrears restored", &koogallery.V1InstanceStatusRequest{InstanceID: id, Status: koogallery.V1StatusNormal},
			store.Callback{Activity: "updateInstanceStatus", DedupKey: "v1:instanceStatus:" + id + ":UNFREEZE:2", Status: "UNFREEZE"}},
		{"arrears", &koogallery.V1InstanceStatusRequest{InstanceID: id, Status: koogallery.V1StatusFreeze},
			store.Callback{Activity: "updateInstanceStatus", DedupKey: "v1:instanceStatus:" + id + ":FREEZE:3", Status: "FREEZE"}},
		{"upgrade", &koogallery.V1UpgradeRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id, OrderID: "CSV1-UPG"},
			SkuCode: "sku-pro", ProductID: "prod-pro", Amount: 50},
			store.Callback{Activity: "upgradeInstance", DedupKey: "v1:upgradeInstance:" + id + ":CSV1-UPG"}},
		{"release", &koogallery.V1ReleaseInstanceRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id}},
			store.Callback{Activity: "releaseInstance", DedupKey: "v1:releaseInstance:" + id}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.callbacksOf(t, id))
			requireResult(t, h.produceV1(t, testV1Key, koogallery.V1Query(tc.req)).produceAnswer, "000000", "success")
			// The marketplace's retry (a new timeStamp) is the same callback.
			requireResult(t, h.produceV1(t, testV1Key, koogallery.V1Query(tc.req)).produceAnswer, "000000", "success")
			cbs := h.callbacksOf(t, id)
			require.Len(t, cbs, before+1)
			got := cbs[len(cbs)-1]
			require.Equal(t, tc.want.Activity, got.Activity)
			require.Equal(t, tc.want.DedupKey, got.DedupKey)
			require.Equal(t, tc.want.Scene, got.Scene)
			require.Equal(t, tc.want.Status, got.Status)
			require.Equal(t, tc.want.ExpireTime, got.ExpireTime)
			require.Equal(t, tc.want.ProductID, got.ProductID)
			require.Equal(t, 1, got.Redeliveries)
			signals := h.v1Signals(t, id)
			require.NotEmpty(t, signals)
			require.True(t, signals[len(signals)-1].V1, "the workflow knows a V1 callback")
		})
	}
}

// V1 has no UNFREEZE: after a renewal, the next expireInstance is a new
// freeze, not a retry of the old one.
func TestV1ExpiryAfterRenewalIsANewFreeze(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	id := h.v1Instance(t, "CSV1-EPI")
	expire := &koogallery.V1ExpireInstanceRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id, OrderID: "CSV1-EPI"}}
	renew := &koogallery.V1RefreshInstanceRequest{V1Renewal: koogallery.V1Renewal{
		OrderID: "CSV1-EPI-R", InstanceID: id, ExpireTime: "20311231000000"}}
	for _, req := range []koogallery.V1Request{expire, expire, renew, expire} {
		requireResult(t, h.produceV1(t, testV1Key, koogallery.V1Query(req)).produceAnswer, "000000", "success")
	}
	var keys []string
	for _, cb := range h.callbacksOf(t, id)[1:] {
		keys = append(keys, cb.DedupKey)
	}
	require.Equal(t, []string{
		"v1:expireInstance:" + id + ":1",
		"v1:refreshInstance:" + id + ":CSV1-EPI-R:RENEWAL",
		"v1:expireInstance:" + id + ":3",
	}, keys)
}

func TestV1QueryInstance(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	id := h.v1Instance(t, "CSV1-QRY")
	a := h.produceV1(t, testV1Key, koogallery.V1Query(&koogallery.V1QueryInstanceRequest{InstanceID: id}))
	requireResult(t, a.produceAnswer, "000000", "success")
	require.Len(t, a.Info, 1)
	require.NotNil(t, a.Info[0].AppInfo)
	user, err := koogallery.DecryptField(testV1Key, koogallery.AES256, a.Info[0].AppInfo.UserName)
	require.NoError(t, err, "encrypted with the V1 key")
	require.Equal(t, "admin", user)

	a = h.produceV1(t, testV1Key, koogallery.V1Query(&koogallery.V1QueryInstanceRequest{InstanceID: "v1-unknown"}))
	requireResult(t, a.produceAnswer, "000003", "")
}

// A call whose authToken does not match records nothing and is answered
// 000001, signed with the V1 key.
func TestV1WrongAuthTokenRecordsNothing(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	id := h.v1Instance(t, "CSV1-AUTH")
	before := h.effects(t)

	renew := koogallery.V1Query(&koogallery.V1RefreshInstanceRequest{V1Renewal: koogallery.V1Renewal{
		OrderID: "CSV1-AUTH-R", InstanceID: id, ExpireTime: "20311231000000"}})
	purchase := koogallery.V1Query(v1Purchase("CSV1-AUTH-2", "b-2"))
	tampered, err := koogallery.SignedV1Query(testV1Key, renew, time.Now())
	require.NoError(t, err)
	tampered.Set("expireTime", "20991231000000")
	queries := map[string]string{
		"another key":          mustSignV1(t, "not-the-v1-key", renew),
		"the basic key":        mustSignV1(t, testAccessKey, purchase),
		"a tampered parameter": koogallery.EncodeV1Query(tampered),
		"no authToken":         strings.Split(mustSignV1(t, testV1Key, renew), "&authToken=")[0],
		"no parameters":        "",
	}
	for name, q := range queries {
		t.Run(name, func(t *testing.T) {
			a := h.getV1(t, testV1Key, q)
			requireResult(t, a.produceAnswer, "000001", "authentication failed")
			require.Equal(t, before, h.effects(t))
		})
	}
}

// A server without the V1 key refuses every V1 call.
func TestV1WithoutKeyRefusesEveryCall(t *testing.T) {
	h := newHarness(t)
	before := h.effects(t)
	a := h.getV1(t, testAccessKey, mustSignV1(t, testV1Key, koogallery.V1Query(v1Purchase("CSV1-NOKEY", "b-1"))))
	requireResult(t, a.produceAnswer, "000001", "authentication failed")
	require.Equal(t, before, h.effects(t))
}

// A timeStamp far from the clock is accepted (V1 documents no window, and
// a retry may resend the first URL), and the retry changes nothing.
func TestV1OldTimeStampAccepted(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	id := h.v1Instance(t, "CSV1-OLD")
	params := koogallery.V1Query(&koogallery.V1ExpireInstanceRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: id, OrderID: "CSV1-OLD"}})
	signed, err := koogallery.SignedV1Query(testV1Key, params, time.Now().Add(-3*time.Hour))
	require.NoError(t, err)
	for range 2 {
		requireResult(t, h.getV1(t, testV1Key, koogallery.EncodeV1Query(signed)).produceAnswer, "000000", "success")
	}
	require.Len(t, h.callbacksOf(t, id), 2, "the purchase and one expiry")
}

func TestV1Refusals(t *testing.T) {
	h := newHarness(t, withV1Key(testV1Key))
	before := h.effects(t)
	unknown := &koogallery.V1RefreshInstanceRequest{V1Renewal: koogallery.V1Renewal{
		OrderID: "CSV1-X", InstanceID: "v1-nobody", ExpireTime: "20311231000000"}}
	requireResult(t, h.produceV1(t, testV1Key, koogallery.V1Query(unknown)).produceAnswer, "000003", "instance does not exist")
	missing := url.Values{"activity": {"expireInstance"}, "orderId": {"CSV1-X"}}
	requireResult(t, h.produceV1(t, testV1Key, missing).produceAnswer, "000002", "missing field instanceId")
	license := koogallery.V1Query(&koogallery.V1ReleaseLicenseRequest{V1InstanceOrder: koogallery.V1InstanceOrder{InstanceID: "lic-1", OrderID: "CSV1-L"}})
	requireResult(t, h.produceV1(t, testV1Key, license).produceAnswer, "000003", "instance does not exist")
	nul := koogallery.V1Query(v1Purchase("CSV1-\x00", "b-1"))
	requireResult(t, h.produceV1(t, testV1Key, nul).produceAnswer, "000002", "parameters must not contain NUL characters")
	require.Equal(t, before, h.effects(t))
}

func mustSignV1(t testing.TB, key string, params url.Values) string {
	t.Helper()
	signed, err := koogallery.SignedV1Query(key, params, time.Now())
	require.NoError(t, err)
	return koogallery.EncodeV1Query(signed)
}
