// Package emulator plays Huawei Cloud KooGallery against a merchant's
// production interface, so that a merchant can rehearse every purchase's
// life locally: it sells orders, sends signed SaaS 2.0 callbacks with the
// marketplace's delivery modes (retries, single sends, restarts from the
// console), polls queryInstance and shows the buyer the decrypted access
// information, drives expiry, freeze, retention and release on an
// accelerated clock, walks supervised orders through delivery and
// acceptance, sells license codes and plays their renewals, freezes and
// releases once activated, and serves the open API (Query Order, usage
// push, license-code activate and query) to the merchant.
//
// Each purchase is a Temporal workflow (PurchaseWorkflow) on its own task
// queue; the emulator's state lives in Postgres, in a schema of its own
// (emulator), which its own migrations make when it starts (Store). It
// works against any server that implements the marketplace contract
// (docs/contract.md), not only this one.
package emulator

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// DefaultTaskQueue is the emulator workflows' task queue.
const DefaultTaskQueue = "koogallery-emulator"

// Workflow, signal and query names.
const (
	PurchaseWorkflowName = "EmulatedPurchaseWorkflow"
	// ActionSignal carries a buyer's or console action (Action).
	ActionSignal = "action"
	// PurchaseQuery returns the purchase's state (PurchaseState).
	PurchaseQuery = "purchase"
)

// Activity names.
const (
	CallActivity      = "EmulatorCall"
	SaveOrderActivity = "EmulatorSaveOrder"
	SaveActivity      = "EmulatorSave"
	RelayActivity     = "EmulatorRelaySupervision"
)

// PurchaseWorkflowID is the workflow ID of an emulated purchase.
func PurchaseWorkflowID(purchaseID string) string { return "emulator/" + purchaseID }

// Billing modes, as Query Order's chargingMode.
const (
	ModePeriod      = "PERIOD"
	ModeOneTime     = "ONE_TIME"
	ModeOnDemand    = "ON_DEMAND"
	ModeOnDemandPkg = "ON_DEMAND_PKG"
)

// BuyRequest is what the emulated buyer buys.
type BuyRequest struct {
	// ProductID and SkuCode name the product (defaults: "demo-product",
	// "demo-sku").
	ProductID string `json:"productId,omitempty"`
	SkuCode   string `json:"skuCode,omitempty"`
	// BillingMode is PERIOD (default), ONE_TIME, ON_DEMAND or ON_DEMAND_PKG.
	BillingMode string `json:"billingMode,omitempty"`
	// PeriodType (month default, year, day) and PeriodNumber (default 1)
	// for PERIOD and ON_DEMAND_PKG.
	PeriodType   string `json:"periodType,omitempty"`
	PeriodNumber int    `json:"periodNumber,omitempty"`
	// Quantity is the linear value (seats), default 10.
	Quantity int64 `json:"quantity,omitempty"`
	// Supervised sells a product under service supervision (contract §5.3).
	Supervised bool `json:"supervised,omitempty"`
	// Reviewed: Huawei Cloud reviews the supervised order's delivery
	// before the buyer accepts it (华为云复核, 赋能云/基地云 orders).
	Reviewed bool `json:"reviewed,omitempty"`
	// TrialDays > 0 sells a trial of that many days (order type TRIAL).
	TrialDays int `json:"trialDays,omitempty"`
	// Debug sends every call with testFlag=1, like the console's debugger.
	Debug bool `json:"debug,omitempty"`
	// CustomerName is the buyer's account name (default "emulated_buyer").
	CustomerName string `json:"customerName,omitempty"`
	// OnlineLicense sells an online licence product (在线开通License,
	// contract §13): its devices ask for licences (license-request).
	OnlineLicense bool `json:"onlineLicense,omitempty"`
	// LicenseCode sells a license code (License授权码 2.0, contract
	// §13.5): the buyer receives a code, which the merchant's software
	// activates through the open API (contract §13.6).
	LicenseCode bool `json:"licenseCode,omitempty"`
	// Reset sells a package (ON_DEMAND_PKG) whose content resets
	// "monthly" or "yearly" (按月/按年重置, contract §6.4): under the
	// productId demo-package-monthly or demo-package-yearly unless one is
	// given. Nothing in the order says it; the server's
	// PACKAGE_RESET_PRODUCTS must name the product (make run does).
	Reset string `json:"reset,omitempty"`
	// Interface is the production interface the listing uses: "v2" (SaaS
	// 2.0, the default) or InterfaceV1, the withdrawn V1.0 GET interface
	// (contract §1.12).
	Interface string `json:"interface,omitempty"`
}

// Validate fills defaults and refuses what the marketplace would not sell.
func (b *BuyRequest) Validate() error {
	if b.Reset != "" && (b.BillingMode != ModeOnDemandPkg || (b.Reset != "monthly" && b.Reset != "yearly")) {
		return fmt.Errorf("reset is monthly or yearly, for a package (ON_DEMAND_PKG)")
	}
	if b.ProductID == "" && b.Reset != "" {
		b.ProductID = "demo-package-" + b.Reset
	}
	if b.ProductID == "" {
		b.ProductID = "demo-product"
	}
	if b.SkuCode == "" {
		b.SkuCode = "demo-sku"
	}
	if b.BillingMode == "" {
		b.BillingMode = ModePeriod
	}
	if b.Quantity == 0 {
		b.Quantity = 10
	}
	if b.CustomerName == "" {
		b.CustomerName = "emulated_buyer"
	}
	switch b.BillingMode {
	case ModePeriod, ModeOnDemandPkg:
		if b.PeriodType == "" {
			b.PeriodType = "month"
		}
		if b.PeriodNumber == 0 {
			b.PeriodNumber = 1
		}
		if b.PeriodType != "month" && b.PeriodType != "year" && b.PeriodType != "day" {
			return fmt.Errorf("periodType must be month, year or day")
		}
		if b.PeriodNumber < 1 || b.PeriodNumber > 60 {
			return fmt.Errorf("periodNumber must be from 1 to 60")
		}
	case ModeOneTime, ModeOnDemand:
		if b.PeriodType != "" || b.PeriodNumber != 0 {
			return fmt.Errorf("%s has no period", b.BillingMode)
		}
	default:
		return fmt.Errorf("billingMode must be PERIOD, ONE_TIME, ON_DEMAND or ON_DEMAND_PKG")
	}
	if b.TrialDays < 0 || b.TrialDays > 90 {
		return fmt.Errorf("trialDays must be from 0 to 90")
	}
	if b.TrialDays > 0 && b.BillingMode != ModePeriod {
		return fmt.Errorf("only PERIOD products have trials")
	}
	if b.Reviewed && !b.Supervised {
		return fmt.Errorf("only supervised products are reviewed")
	}
	if b.Supervised && b.BillingMode == ModeOnDemand {
		return fmt.Errorf("pay-per-use products are not supervised")
	}
	if b.Quantity < 0 {
		return fmt.Errorf("quantity must be positive")
	}
	if b.LicenseCode && (b.BillingMode != ModePeriod || b.TrialDays > 0 || b.Supervised || b.OnlineLicense) {
		return fmt.Errorf("a license code is a yearly/monthly product (PERIOD), without trial, supervision or online licences")
	}
	return b.validateInterface()
}

// Actions of the buyer and of the consoles, the Kind of an Action.
const (
	ActRenew               = "renew"                // buyer renews Periods more periods
	ActUnsubscribe         = "unsubscribe"          // buyer unsubscribes: release with the unsubscription order
	ActRefundRenewal       = "refund-renewal"       // buyer refunds the last renewal period
	ActUpgrade             = "upgrade"              // buyer changes the spec: change check, then upgrade
	ActConvert             = "convert"              // trial to formal
	ActArrears             = "arrears"              // pay-per-use account in arrears: FREEZE
	ActPay                 = "pay"                  // arrears paid: UNFREEZE
	ActSubmitRequirements  = "submit-requirements"  // supervision: buyer
	ActConfirmRequirements = "confirm-requirements" // supervision: merchant, in the seller console (确认需求)
	ActRejectRequirements  = "reject-requirements"  // supervision: merchant, in the seller console (驳回), with a Reason
	ActConfirmDelivery     = "confirm-delivery"     // supervision: merchant, in the seller console
	ActApproveReview       = "review-approve"       // supervision: Huawei Cloud's reviewer approves the delivery (华为云复核)
	ActRejectReview        = "review-reject"        // supervision: Huawei Cloud's reviewer rejects it, with a Reason
	ActAccept              = "accept"               // supervision: buyer
	ActReject              = "reject"               // supervision: buyer
	ActRestart             = "restart"              // console: restart a failed call (MessageID)
)

// Actions lists every action kind.
var Actions = []string{
	ActRenew, ActUnsubscribe, ActRefundRenewal, ActUpgrade, ActConvert, ActArrears, ActPay,
	ActSubmitRequirements, ActConfirmRequirements, ActRejectRequirements, ActConfirmDelivery,
	ActApproveReview, ActRejectReview, ActAccept, ActReject, ActRestart,
	ActBind, ActUnbind, ActAuthorize, ActRevoke, ActRemoveUsers, ActDepartment, ActLicenseRequest,
}

// Action is a buyer's or a console's action on a purchase.
type Action struct {
	Kind string `json:"kind"`
	// renew: how many periods (default 1)
	Periods int `json:"periods,omitempty"`
	// upgrade: the target spec
	Quantity int64  `json:"quantity,omitempty"`
	SkuCode  string `json:"skuCode,omitempty"`
	// confirm-delivery: the evidence, the result description (服务结果描述)
	// and the declared start
	Evidence  string     `json:"evidence,omitempty"`
	Result    string     `json:"result,omitempty"`
	StartTime *time.Time `json:"startTime,omitempty"`
	// reject-requirements, review-reject: why
	Reason string `json:"reason,omitempty"`
	// restart
	MessageID string `json:"messageId,omitempty"`
	// bind: the enterprise's name
	Enterprise string `json:"enterprise,omitempty"`
	// authorize, revoke, remove-users: the users; authorize: their role
	// (user or admin) and department
	Users   []string `json:"users,omitempty"`
	Role    string   `json:"role,omitempty"`
	OrgCode string   `json:"orgCode,omitempty"`
	// department: the department (OrgCode), its name and parent (for a
	// department that exists, what is left out stays); Delete deletes it
	OrgName    string `json:"orgName,omitempty"`
	ParentCode string `json:"parentCode,omitempty"`
	Delete     bool   `json:"delete,omitempty"`
	// license-request: the device's fingerprint and the marketplace's
	// event ID (default: made up from the purchase)
	Fingerprint string `json:"fingerprint,omitempty"`
	EventID     string `json:"eventId,omitempty"`
	// the activation of a license code (LicenseActivatedSignal, not a
	// console action): when the merchant's software activated it (real)
	ActivatedAt *time.Time `json:"activatedAt,omitempty"`
}

// Clock is the emulated clock: it runs Scale times faster than real time
// from Origin. Durations of the marketplace's world (a month's validity, 15
// days of retention, 3 hours to complete a supervised order) are emulated
// durations; the merchant sees them shrunk by Scale, in real time.
type Clock struct {
	Scale  float64
	Origin time.Time
}

// Real is how long an emulated duration lasts in real time.
func (c Clock) Real(d time.Duration) time.Duration {
	if c.Scale <= 1 {
		return d
	}
	// Rounded, not truncated: an emulated expiry that is a whole real
	// second must map to that second, not to a nanosecond before it.
	return time.Duration(math.Round(float64(d) / c.Scale))
}

// RealAt is the real time of an emulated instant.
func (c Clock) RealAt(e time.Time) time.Time { return c.Origin.Add(c.Real(e.Sub(c.Origin))) }

// EmulatedAt is the emulated time of a real instant.
func (c Clock) EmulatedAt(t time.Time) time.Time {
	if c.Scale <= 1 {
		return t
	}
	return c.Origin.Add(time.Duration(math.Round(float64(t.Sub(c.Origin)) * c.Scale)))
}

// ParseScale reads EMULATOR_TIME_SCALE: a factor ("8640") or a ratio of
// durations ("1d=10s": one emulated day per ten real seconds; d means 24h).
func ParseScale(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if emulated, real, ok := strings.Cut(s, "="); ok {
		e, err1 := parseDays(emulated)
		r, err2 := parseDays(real)
		if err1 != nil || err2 != nil || e <= 0 || r <= 0 {
			return 0, fmt.Errorf("time scale %q: want emulated=real durations such as 1d=10s", s)
		}
		return float64(e) / float64(r), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 1 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("time scale %q: want a factor of at least 1, or emulated=real such as 1d=10s", s)
	}
	return f, nil
}

// parseDays parses a Go duration that may use d for days.
func parseDays(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return 0, err
		}
		return time.Duration(f * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// PurchaseState is what the purchase query returns.
type PurchaseState struct {
	PurchaseID   string
	State        string
	InstanceID   string
	ChargingMode string
	Supervised   bool
	Debug        bool
	// ExpireAt is the emulated expiry; RealExpireAt what the merchant was told.
	ExpireAt     *time.Time
	RealExpireAt *time.Time
	Supervision  string
	Spec         Spec
	Pending      int
	// Kit is the enterprise the app is bound to, if any (联营 listings).
	Kit *KitView `json:",omitempty"`
	// OnlineLicense marks an online licence purchase; Licenses are its
	// devices' requests.
	OnlineLicense bool                 `json:",omitempty"`
	Licenses      []LicenseRequestView `json:",omitempty"`
}

// Spec is a purchased specification.
type Spec struct {
	ProductID string
	SkuCode   string
	Quantity  int64
}

// UsageFailures arms the open API's usage endpoint to refuse the next Count
// pushes, as the marketplace does when it is in trouble: the body of POST
// /emulator/usage/failures.
type UsageFailures struct {
	// Count is how many pushes fail, from 1 to 1000.
	Count int `json:"count"`
	// Status is the HTTP status, from 400 to 599; default: the one the
	// marketplace pairs with Code (contract §6.3), 500 for MKT.0999.
	Status int `json:"status,omitempty"`
	// Code is the error_code answered, one of the open API's failure codes
	// (contract §6.3); default MKT.0999, the marketplace's internal error, which
	// a merchant retries.
	Code string `json:"code,omitempty"`
}

// usageFailureStatus is each failure code of contract §6.3 with the HTTP status
// the marketplace answers it with.
var usageFailureStatus = map[string]int{
	koogallery.OpenAPIInternalError:    500,
	koogallery.OpenAPIParamCheckFailed: 500,
	koogallery.OpenAPIInvalidParam:     400,
	koogallery.OpenAPIInvalidBodySign:  400,
	koogallery.OpenAPIRequestError:     400,
	koogallery.OpenAPIIllegalOperation: 401,
	koogallery.OpenAPINoAuthority:      401,
	koogallery.OpenAPIIllegalToken:     401,
	koogallery.OpenAPIInstanceNotFound: 500,
	koogallery.OpenAPIInvalidUsage:     500,
	koogallery.OpenAPITooManyRecords:   500,
	koogallery.OpenAPIRecordTooOld:     500,
}

// UsageFailureCodes lists the codes UsageFailures accepts, in the order of
// contract §6.3.
var UsageFailureCodes = []string{
	koogallery.OpenAPIInternalError, koogallery.OpenAPIParamCheckFailed, koogallery.OpenAPIInvalidParam,
	koogallery.OpenAPIInvalidBodySign, koogallery.OpenAPIRequestError, koogallery.OpenAPIIllegalOperation,
	koogallery.OpenAPINoAuthority, koogallery.OpenAPIIllegalToken, koogallery.OpenAPIInstanceNotFound,
	koogallery.OpenAPIInvalidUsage, koogallery.OpenAPITooManyRecords, koogallery.OpenAPIRecordTooOld,
}

// Validate fills the defaults and refuses what the console does not arm.
func (f *UsageFailures) Validate() error {
	if f.Code == "" {
		f.Code = koogallery.OpenAPIInternalError
	}
	status, ok := usageFailureStatus[f.Code]
	switch {
	case f.Code == koogallery.OpenAPISuccess:
		return errors.New("code MKT.0000 is the success code; give a failure code: " + strings.Join(UsageFailureCodes, ", "))
	case !ok:
		return fmt.Errorf("code must be one of the open API's failure codes (contract §6.3): %s", strings.Join(UsageFailureCodes, ", "))
	case f.Count < 1 || f.Count > 1000:
		return errors.New("count must be from 1 to 1000")
	}
	if f.Status == 0 {
		f.Status = status
	}
	if f.Status < 400 || f.Status > 599 {
		return errors.New("status must be an HTTP error status, from 400 to 599")
	}
	return nil
}
