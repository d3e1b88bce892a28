package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// InterfaceV1 is BuyRequest.Interface for a listing still on the withdrawn
// V1.0 interface (contract §1.12): every call a GET with authToken.
const InterfaceV1 = "v1"

// errNotInV1 is the call a V1 listing never receives: V1 has no UNFREEZE
// (a renewal restores the instance), no changeInstanceCheck, orderNotify
// or SaaS 2.0 License calls.
var errNotInV1 = errors.New("not sent: V1 has no such call")

// v1Request is a call of a V1 listing: the purchase's SaaS 2.0 call
// written as its V1 activity and parameters (contract §1.12), signed with
// the V1 key as the marketplace signs it (contract §2.5), which the
// answer's Body-Sign is checked with too.
func (a *Activities) v1Request(ctx context.Context, in CallInput) (*http.Request, string, error) {
	if a.V1AccessKey == "" {
		return nil, "", errors.New("no V1 key: set KOOGALLERY_V1_ACCESS_KEY")
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(in.Body), &body); err != nil {
		return nil, "", fmt.Errorf("read the call: %w", err)
	}
	field := func(name string) string {
		if v, ok := body[name]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	params, err := a.v1Params(ctx, in, field)
	if err != nil {
		return nil, "", err
	}
	if field("testFlag") == "1" {
		params.Set("testFlag", "1")
	}
	signed, err := koogallery.SignedV1Query(a.V1AccessKey, params, time.Now())
	if err != nil {
		return nil, "", fmt.Errorf("sign the call: %w", err)
	}
	sep := "?"
	if strings.Contains(a.ProductionURL, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.ProductionURL+sep+koogallery.EncodeV1Query(signed), nil)
	if err != nil {
		return nil, "", fmt.Errorf("build request: %w", err)
	}
	return req, a.V1AccessKey, nil
}

// v1Params maps a SaaS 2.0 call onto its V1 activity. The purchase order
// of a V1 instance is the purchase's own ID (its first order).
func (a *Activities) v1Params(ctx context.Context, in CallInput, field func(string) string) (url.Values, error) {
	id := field("instanceId")
	switch koogallery.Activity(in.Activity) {
	case koogallery.ActivityNewInstance:
		return a.v1Purchase(ctx, field("orderId"), field("businessId"))
	case koogallery.ActivityQueryInstance:
		return url.Values{"activity": {"queryInstance"}, "instanceId": {id}}, nil
	case koogallery.ActivityRefreshInstance:
		q := url.Values{"activity": {"refreshInstance"}, "instanceId": {id}, "orderId": {field("orderId")},
			"expireTime": {field("expireTime")}}
		switch koogallery.Scene(field("scene")) {
		case koogallery.SceneTrialToFormal:
			q.Set("trialToFormal", "1")
		case koogallery.SceneUnsubscribeRenewalPeriod:
			q.Set("orderAmount", "-1") // a refunded renewal period (退续费)
		}
		if p := field("productId"); p != "" {
			q.Set("productId", p)
		}
		return q, nil
	case koogallery.ActivityUpdateInstanceStatus:
		return a.v1Status(ctx, in.PurchaseID, id, field("status"))
	case koogallery.ActivityReleaseInstance:
		return url.Values{"activity": {"releaseInstance"}, "instanceId": {id}, "orderId": {in.PurchaseID}}, nil
	case koogallery.ActivityUpgradeInstance:
		o, err := a.Store.Order(ctx, field("orderId"))
		if err != nil {
			return nil, err
		}
		q := url.Values{"activity": {"upgrade"}, "instanceId": {id}, "orderId": {o.OrderID},
			"skuCode": {o.SkuCode}, "productId": {o.ProductID}}
		if o.LinearValue != nil {
			q.Set("amount", strconv.FormatInt(*o.LinearValue, 10))
		}
		return q, nil
	}
	return nil, errNotInV1
}

// v1Purchase is a V1 newInstance: the order in the request, and a
// businessId new on every attempt, as the marketplace sends it.
func (a *Activities) v1Purchase(ctx context.Context, orderID, businessID string) (url.Values, error) {
	o, err := a.Store.Order(ctx, orderID)
	if err != nil {
		return nil, err
	}
	q := url.Values{"activity": {"newInstance"}, "customerId": {o.CustomerID}, "customerName": {o.CustomerName},
		"businessId": {fmt.Sprintf("%s-%d", businessID, time.Now().UnixNano())}, "orderId": {o.OrderID},
		"skuCode": {o.SkuCode}, "productId": {o.ProductID}}
	switch o.ChargingMode {
	case ModePeriod:
		q.Set("chargingMode", "1")
		q.Set("periodType", o.PeriodType)
		q.Set("periodNumber", strconv.Itoa(o.PeriodNumber))
	case ModeOneTime:
		q.Set("chargingMode", "3")
	default:
		// The V1 pages give pay-per-use no number; the server reads any
		// other as pay-per-use.
		q.Set("chargingMode", "2")
	}
	if o.ExpireTime != nil {
		q.Set("expireTime", o.ExpireTime.UTC().Format("20060102150405"))
	}
	if o.LinearValue != nil {
		q.Set("amount", strconv.FormatInt(*o.LinearValue, 10))
	}
	if o.OrderType == "TRIAL" {
		q.Set("trialFlag", "1")
	}
	return q, nil
}

// v1Status is a status change of a V1 listing: a pay-per-use instance is
// frozen and restored with instanceStatus (arrears); any other is frozen
// at expiry with expireInstance and restored by its renewal alone.
func (a *Activities) v1Status(ctx context.Context, purchaseID, instanceID, status string) (url.Values, error) {
	p, err := a.Store.Purchase(ctx, purchaseID)
	if err != nil {
		return nil, err
	}
	switch {
	case p.ChargingMode == ModeOnDemand && status == "FREEZE":
		return url.Values{"activity": {"instanceStatus"}, "instanceId": {instanceID}, "instanceStatus": {"FREEZE"}}, nil
	case p.ChargingMode == ModeOnDemand:
		return url.Values{"activity": {"instanceStatus"}, "instanceId": {instanceID}, "instanceStatus": {"NORMAL"}}, nil
	case status == "FREEZE":
		return url.Values{"activity": {"expireInstance"}, "instanceId": {instanceID}, "orderId": {purchaseID}}, nil
	}
	return nil, errNotInV1
}

// v1Purchased judges a V1 newInstance answer: only 000000 with the
// instance and its access information succeeds (V1 has no polling for
// them, contract §1.12); the access information is stored as received.
func (a *Activities) v1Purchased(ctx context.Context, purchaseID string, ans answer, res CallResult, failed error) (CallResult, error) {
	if ans.ResultCode != string(koogallery.ResultSuccess) {
		return CallResult{}, failed
	}
	if ans.InstanceID == "" || ans.AppInfo == nil || ans.AppInfo.FrontEndURL == "" {
		return CallResult{}, errors.New("the V1 newInstance answer has no instanceId or appInfo.frontEndUrl")
	}
	app := ans.AppInfo
	if err := a.Store.SaveAppInfo(ctx, AppInfo{
		PurchaseID: purchaseID, FrontEndURL: app.FrontEndURL, AdminURL: app.AdminURL,
		UserName: app.UserName, Password: app.Password, Memo: app.Memo,
	}); err != nil {
		return CallResult{}, err
	}
	return res, nil
}

// validateInterface checks the listing's interface: V1 listings have no
// service supervision, online licences, license codes or packages.
func (b *BuyRequest) validateInterface() error {
	switch b.Interface {
	case "", "v2":
		b.Interface = ""
		return nil
	case InterfaceV1:
	default:
		return fmt.Errorf("interface must be v2 or v1")
	}
	if b.Supervised || b.OnlineLicense || b.LicenseCode || b.BillingMode == ModeOnDemandPkg {
		return fmt.Errorf("a V1 listing has no supervision, online licences, license codes or packages")
	}
	return nil
}
