package koogallery

import (
	"net/url"
	"strings"
	"time"
)

// V1Activity names a V1 call: its activity query parameter (§1.12). The
// V1 activities are kept apart from the V2 Activity list and ParseRequest:
// they arrive as GET query strings, not JSON bodies, and several share a
// name with a V2 activity but not its fields.
type V1Activity string

// The V1 activities (§1.12) and the withdrawn 联营License ones that share
// the V1 address and authToken (§1.11).
const (
	V1ActivityNewInstance     V1Activity = "newInstance"
	V1ActivityRefreshInstance V1Activity = "refreshInstance"
	V1ActivityExpireInstance  V1Activity = "expireInstance"
	V1ActivityReleaseInstance V1Activity = "releaseInstance"
	V1ActivityUpgrade         V1Activity = "upgrade"
	V1ActivityInstanceStatus  V1Activity = "instanceStatus"
	V1ActivityQueryInstance   V1Activity = "queryInstance"
	V1ActivityGetLicense      V1Activity = "getLicense"
	V1ActivityRefreshLicense  V1Activity = "refreshLicense"
	V1ActivityExpireLicense   V1Activity = "expireLicense"
	V1ActivityReleaseLicense  V1Activity = "releaseLicense"
)

// V1Activities lists every activity ParseV1Request understands.
var V1Activities = []V1Activity{
	V1ActivityNewInstance, V1ActivityRefreshInstance, V1ActivityExpireInstance,
	V1ActivityReleaseInstance, V1ActivityUpgrade, V1ActivityInstanceStatus, V1ActivityQueryInstance,
	V1ActivityGetLicense, V1ActivityRefreshLicense, V1ActivityExpireLicense, V1ActivityReleaseLicense,
}

// V1Status is the target status of a V1 instanceStatus call (§1.12).
type V1Status string

// The instanceStatus values: a pay-per-use instance frozen for arrears,
// and restored once paid.
const (
	V1StatusFreeze V1Status = "FREEZE"
	V1StatusNormal V1Status = "NORMAL"
)

// Documented V1 lengths (§1.12); the pages give none for some fields, which
// get maxV1Text so that what is stored stays bounded.
const (
	maxV1CustomerIDLen = 100
	maxV1NameLen       = 64
	maxV1TimeLen       = 20
	maxV1FlagLen       = 2
	maxV1IntDigits     = 7
	maxV1AmountLen     = 20
	maxV1PeriodTypeLen = 16
	maxV1Text          = 4096
)

// V1Request is one parsed V1 call. Its fields carry query tags, the
// parameters' names, which V1Query writes them back under.
type V1Request interface {
	// V1Activity names the call.
	V1Activity() V1Activity
	// Debug reports a console-debugger or probing call (testFlag "1").
	Debug() bool
	// read fills the request from the query, recording the first problem
	// in r.
	read(r *v1Reader)
}

// V1Common are the parameters of every V1 call besides authToken.
type V1Common struct {
	// TimeStamp is when the marketplace signed the call, as sent
	// (yyyyMMddHHmmssSSS, UTC).
	TimeStamp string   `query:"timeStamp"`
	TestFlag  TestFlag `query:"testFlag"`
}

// Debug implements V1Request.
func (c *V1Common) Debug() bool { return bool(c.TestFlag) }

func (c *V1Common) read(r *v1Reader) {
	c.TimeStamp, _ = r.time(ParamTimeStamp, true)
	c.TestFlag = TestFlag(r.flag("testFlag"))
}

// ParseV1Request reads a V1 call from its decoded query parameters (the
// url.Values V1Verifier.Verify returns) into its typed request. Unknown
// parameters, authToken among them, are ignored; a missing activity or
// mandatory field, a repeated field, a field over its documented length or
// of the wrong form, or an unknown activity gives a *RequestError with
// ResultInvalidParam whose message names the field and never quotes a
// value.
func ParseV1Request(params url.Values) (V1Request, error) {
	r := &v1Reader{params: params}
	activity := r.str("activity", 20, true)
	if r.err != nil {
		return nil, r.err
	}
	req := newV1Request(V1Activity(activity))
	if req == nil {
		return nil, invalid("unknown activity")
	}
	req.read(r)
	if r.err != nil {
		return nil, r.err
	}
	return req, nil
}

// newV1Request returns an empty request for an activity, or nil.
func newV1Request(a V1Activity) V1Request {
	switch a {
	case V1ActivityNewInstance:
		return &V1NewInstanceRequest{}
	case V1ActivityRefreshInstance:
		return &V1RefreshInstanceRequest{}
	case V1ActivityExpireInstance:
		return &V1ExpireInstanceRequest{}
	case V1ActivityReleaseInstance:
		return &V1ReleaseInstanceRequest{}
	case V1ActivityUpgrade:
		return &V1UpgradeRequest{}
	case V1ActivityInstanceStatus:
		return &V1InstanceStatusRequest{}
	case V1ActivityQueryInstance:
		return &V1QueryInstanceRequest{}
	case V1ActivityGetLicense:
		return &V1GetLicenseRequest{}
	case V1ActivityRefreshLicense:
		return &V1RefreshLicenseRequest{}
	case V1ActivityExpireLicense:
		return &V1ExpireLicenseRequest{}
	case V1ActivityReleaseLicense:
		return &V1ReleaseLicenseRequest{}
	}
	return nil
}

// V1Order is the order a V1 purchase carries in its query (§1.12): V1 has
// no Query Order to read it from. Integers absent from the query are 0.
type V1Order struct {
	CustomerID   string `query:"customerId"`
	CustomerName string `query:"customerName"`
	// UserID and UserName name the buyer's IAM user, sent only if the
	// listing asks for them, and never for assets created from
	// 2025-10-25.
	UserID   string `query:"userId"`
	UserName string `query:"userName"`
	// MobilePhone and Email are encrypted (IV + base64, §2.6) with the V1
	// key; DecryptField opens them.
	MobilePhone string `query:"mobilePhone"`
	Email       string `query:"email"`
	// BusinessID is new on every request, retries included.
	BusinessID string `query:"businessId"`
	OrderID    string `query:"orderId"`
	SkuCode    string `query:"skuCode"`
	ProductID  string `query:"productId"`
	TrialFlag  bool   `query:"trialFlag"`
	// ExpireTime is the expiry of a period product, yyyyMMddHHmmss UTC.
	ExpireTime string `query:"expireTime"`
	// ChargingMode is 1 for a period product, 3 for a one-time one.
	ChargingMode int `query:"chargingMode"`
	// SaasExtendParams holds the buyer's custom fields as sent;
	// ExtendParams decodes them.
	SaasExtendParams string `query:"saasExtendParams"`
	// Amount, DiskSize and BandWidth are the linear attributes (users,
	// disk, bandwidth), 0 when not sent.
	Amount       int    `query:"amount"`
	DiskSize     int    `query:"diskSize"`
	BandWidth    int    `query:"bandWidth"`
	PeriodType   string `query:"periodType"`
	PeriodNumber int    `query:"periodNumber"`
	// OrderAmount is what the buyer paid, a decimal of at most 3
	// decimals, as sent (for reconciliation only).
	OrderAmount   string `query:"orderAmount"`
	ProvisionType int    `query:"provisionType"`

	expireAt time.Time
}

// ExpireAt is ExpireTime parsed (UTC); zero when absent.
func (o *V1Order) ExpireAt() time.Time { return o.expireAt }

// ExtendParams decodes SaasExtendParams: base64 of a JSON list of
// name/value pairs (§1.12). The pages say to URL-decode the value before
// the base64; the query is decoded once already, so a second decoding is
// tried only if the first reading fails. Nil, nil when absent.
func (o *V1Order) ExtendParams() ([]V1ExtendParam, error) {
	return decodeExtendParams(o.SaasExtendParams)
}

// read reads the order; skuCode is mandatory for newInstance, optional
// for getLicense.
func (o *V1Order) read(r *v1Reader, skuRequired bool) {
	o.CustomerID = r.str("customerId", maxV1CustomerIDLen, true)
	// Mandatory on the Chinese site, optional on the international one.
	o.CustomerName = r.str("customerName", maxV1NameLen, false)
	o.UserID = r.str("userId", maxV1NameLen, false)
	o.UserName = r.str("userName", maxV1NameLen, false)
	o.MobilePhone = r.str("mobilePhone", maxV1Text, false)
	o.Email = r.str("email", maxV1Text, false)
	o.BusinessID = r.instanceID("businessId", true)
	o.OrderID = r.str("orderId", maxIDLen, true)
	o.SkuCode = r.str("skuCode", maxIDLen, skuRequired)
	o.ProductID = r.str("productId", maxIDLen, true)
	o.TrialFlag = r.flag("trialFlag")
	o.ExpireTime, o.expireAt = r.time("expireTime", false)
	o.ChargingMode = r.integer("chargingMode")
	o.SaasExtendParams = r.str("saasExtendParams", maxV1Text, false)
	o.Amount = r.integer("amount")
	o.DiskSize = r.integer("diskSize")
	o.BandWidth = r.integer("bandWidth")
	o.PeriodType = r.str("periodType", maxV1PeriodTypeLen, false)
	o.PeriodNumber = r.integer("periodNumber")
	o.OrderAmount = r.amount("orderAmount", false)
	o.ProvisionType = r.integer("provisionType")
}

// V1NewInstanceRequest is a V1 purchase, the order in the request
// (§1.12). Answer with V1NewInstanceResponse.
type V1NewInstanceRequest struct {
	V1Common
	V1Order
}

// V1Activity implements V1Request.
func (*V1NewInstanceRequest) V1Activity() V1Activity { return V1ActivityNewInstance }

func (q *V1NewInstanceRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.V1Order.read(r, true)
}

// V1GetLicenseRequest is a 联营License purchase (§1.11): the V1 order, with
// skuCode optional. Answer with V1GetLicenseResponse.
type V1GetLicenseRequest struct {
	V1Common
	V1Order
}

// V1Activity implements V1Request.
func (*V1GetLicenseRequest) V1Activity() V1Activity { return V1ActivityGetLicense }

func (q *V1GetLicenseRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.V1Order.read(r, false)
}

// V1Renewal is what a V1 renewal carries: the renewal order, the instance
// and its new expiry.
type V1Renewal struct {
	OrderID      string `query:"orderId"`
	InstanceID   string `query:"instanceId"`
	ProductID    string `query:"productId"`
	ExpireTime   string `query:"expireTime"`
	PeriodType   string `query:"periodType"`
	PeriodNumber int    `query:"periodNumber"`

	expireAt time.Time
}

// ExpireAt is the new expiry, ExpireTime parsed (UTC).
func (n *V1Renewal) ExpireAt() time.Time { return n.expireAt }

func (n *V1Renewal) read(r *v1Reader) {
	n.OrderID = r.str("orderId", maxIDLen, true)
	n.InstanceID = r.instanceID("instanceId", true)
	n.ProductID = r.str("productId", maxIDLen, false)
	n.ExpireTime, n.expireAt = r.time("expireTime", true)
	n.PeriodType = r.str("periodType", maxV1PeriodTypeLen, false)
	n.PeriodNumber = r.integer("periodNumber")
}

// V1RefreshInstanceRequest renews an instance, turns a trial into a paid
// purchase (TrialToFormal), or takes back a refunded renewal period (a
// negative OrderAmount, 退续费) (§1.12).
type V1RefreshInstanceRequest struct {
	V1Common
	V1Renewal
	TrialToFormal bool `query:"trialToFormal"`
	// OrderAmount is the renewal's price as sent; negative for a refund.
	OrderAmount string `query:"orderAmount"`
}

// V1Activity implements V1Request.
func (*V1RefreshInstanceRequest) V1Activity() V1Activity { return V1ActivityRefreshInstance }

// Refund reports a refunded renewal period: a negative OrderAmount ("-0"
// is not one).
func (q *V1RefreshInstanceRequest) Refund() bool {
	return strings.HasPrefix(q.OrderAmount, "-") && strings.Trim(q.OrderAmount, "-0.") != ""
}

func (q *V1RefreshInstanceRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.V1Renewal.read(r)
	q.TrialToFormal = r.flag("trialToFormal")
	q.OrderAmount = r.amount("orderAmount", true)
}

// V1RefreshLicenseRequest renews a 联营License (§1.11); sent once.
type V1RefreshLicenseRequest struct {
	V1Common
	V1Renewal
}

// V1Activity implements V1Request.
func (*V1RefreshLicenseRequest) V1Activity() V1Activity { return V1ActivityRefreshLicense }

func (q *V1RefreshLicenseRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.V1Renewal.read(r)
}

// V1InstanceOrder names an instance and the order of its purchase.
type V1InstanceOrder struct {
	InstanceID string `query:"instanceId"`
	OrderID    string `query:"orderId"`
}

// V1ExpireInstanceRequest says an instance expired: freeze it (§1.12).
type V1ExpireInstanceRequest struct {
	V1Common
	V1InstanceOrder
}

// V1Activity implements V1Request.
func (*V1ExpireInstanceRequest) V1Activity() V1Activity { return V1ActivityExpireInstance }

func (q *V1ExpireInstanceRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.InstanceID = r.instanceID("instanceId", true)
	q.OrderID = r.str("orderId", maxIDLen, true)
}

// V1ExpireLicenseRequest says a 联营License expired. Its page was never
// retrieved; it is read as expireInstance is (§1.11).
type V1ExpireLicenseRequest struct {
	V1Common
	V1InstanceOrder
}

// V1Activity implements V1Request.
func (*V1ExpireLicenseRequest) V1Activity() V1Activity { return V1ActivityExpireLicense }

func (q *V1ExpireLicenseRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.InstanceID = r.instanceID("instanceId", true)
	q.OrderID = r.str("orderId", maxIDLen, true)
}

// V1ReleaseInstanceRequest deletes an instance (§1.12). OrderID names the
// purchase order; the table calls it mandatory but the documented example
// has none, so it is optional here.
type V1ReleaseInstanceRequest struct {
	V1Common
	V1InstanceOrder
	OrderAmount string `query:"orderAmount"`
}

// V1Activity implements V1Request.
func (*V1ReleaseInstanceRequest) V1Activity() V1Activity { return V1ActivityReleaseInstance }

func (q *V1ReleaseInstanceRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.InstanceID = r.instanceID("instanceId", true)
	q.OrderID = r.str("orderId", maxIDLen, false)
	q.OrderAmount = r.amount("orderAmount", true)
}

// V1ReleaseLicenseRequest deletes a 联营License (§1.11); sent once. OrderID
// is the purchase order.
type V1ReleaseLicenseRequest struct {
	V1Common
	V1InstanceOrder
}

// V1Activity implements V1Request.
func (*V1ReleaseLicenseRequest) V1Activity() V1Activity { return V1ActivityReleaseLicense }

func (q *V1ReleaseLicenseRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.InstanceID = r.instanceID("instanceId", true)
	q.OrderID = r.str("orderId", maxIDLen, true)
}

// V1UpgradeRequest changes an instance's spec (§1.12). Unlike V2's
// upgradeInstance, the new spec is in the request: SkuCode and ProductID
// after the upgrade, and the new linear attributes.
type V1UpgradeRequest struct {
	V1Common
	V1InstanceOrder
	SkuCode          string `query:"skuCode"`
	ProductID        string `query:"productId"`
	Amount           int    `query:"amount"`
	DiskSize         int    `query:"diskSize"`
	BandWidth        int    `query:"bandWidth"`
	SaasExtendParams string `query:"saasExtendParams"`
}

// V1Activity implements V1Request.
func (*V1UpgradeRequest) V1Activity() V1Activity { return V1ActivityUpgrade }

// ExtendParams decodes SaasExtendParams, as V1Order.ExtendParams does.
func (q *V1UpgradeRequest) ExtendParams() ([]V1ExtendParam, error) {
	return decodeExtendParams(q.SaasExtendParams)
}

func (q *V1UpgradeRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.InstanceID = r.instanceID("instanceId", true)
	q.OrderID = r.str("orderId", maxIDLen, true)
	q.SkuCode = r.str("skuCode", maxIDLen, true)
	q.ProductID = r.str("productId", maxIDLen, true)
	q.Amount = r.integer("amount")
	q.DiskSize = r.integer("diskSize")
	q.BandWidth = r.integer("bandWidth")
	q.SaasExtendParams = r.str("saasExtendParams", maxV1Text, false)
}

// V1InstanceStatusRequest freezes a pay-per-use instance for arrears
// (FREEZE) or restores it (NORMAL) (§1.12).
type V1InstanceStatusRequest struct {
	V1Common
	InstanceID string   `query:"instanceId"`
	Status     V1Status `query:"instanceStatus"`
}

// V1Activity implements V1Request.
func (*V1InstanceStatusRequest) V1Activity() V1Activity { return V1ActivityInstanceStatus }

func (q *V1InstanceStatusRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.InstanceID = r.instanceID("instanceId", true)
	status := r.str("instanceStatus", 20, true)
	if r.err == nil && status != string(V1StatusFreeze) && status != string(V1StatusNormal) {
		r.fail("field instanceStatus must be FREEZE or NORMAL")
	}
	q.Status = V1Status(status)
}

// V1QueryInstanceRequest asks for an instance's information, the usage of
// a pay-per-use one (§1.12). InstanceID is read as V2's is: it may list
// several IDs, comma-separated.
type V1QueryInstanceRequest struct {
	V1Common
	InstanceID string `query:"instanceId"`
}

// V1Activity implements V1Request.
func (*V1QueryInstanceRequest) V1Activity() V1Activity { return V1ActivityQueryInstance }

// InstanceIDs splits InstanceID as QueryInstanceRequest.InstanceIDs does.
func (q *V1QueryInstanceRequest) InstanceIDs() []string {
	return (&QueryInstanceRequest{InstanceID: q.InstanceID}).InstanceIDs()
}

func (q *V1QueryInstanceRequest) read(r *v1Reader) {
	q.V1Common.read(r)
	q.InstanceID = r.str("instanceId", maxQueryIDListLen, true)
	if r.err == nil {
		if err := (&QueryInstanceRequest{InstanceID: q.InstanceID}).validate(); err != nil {
			r.err = err.(*RequestError)
		}
	}
}
