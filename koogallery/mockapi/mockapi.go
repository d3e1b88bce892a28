// Package mockapi is a local stand-in for the KooGallery open API (contract §6),
// for tests and local runs of the fulfillment server. It serves Query Order
// (GET /api/mkp-openapi-public/global/v1/order/query) behind the same AK/SK
// signature check as the real API gateway, using koogallery.VerifyAKSK.
//
// It knows the nine mock order IDs that the marketplace documents for
// debugging (contract §6.1), each with the single line "<ID>-000001". The
// marketplace does not publish what those orders contain, so THEIR CONTENT
// HERE IS MADE UP: plausible values chosen to exercise every order type and
// charging mode. Times are computed from Config.Now at request time, so the orders
// never go stale. Expiry times follow the one documented example (an order
// placed 2022-07-26 expiring "20230726155959"): the end of the Beijing
// (UTC+8) day one period after now, written in UTC (15:59:59Z).
//
//	Order ID                 orderType        chargingMode   period     expireTime
//	MOCKPERIODYEARNEW        NEW              PERIOD         year × 1   now + 1 year
//	MOCKONETIMENEW           NEW              ONE_TIME       none       none: a one-time purchase never expires
//	                                                                    (no refresh/freeze is sent for it, contract §1.1)
//	MOCKONDEMAND             NEW              ON_DEMAND      none       none: pay-per-use runs until released
//	MOCKONDEMANDPKG          NEW              ON_DEMAND_PKG  month × 1  now + 1 month (the package's validity)
//	MOCKPERIODDAYTRIAL       TRIAL            PERIOD         day × 7    now + 7 days
//	MOCKMONTYTRIALTOFORMAL   TRIAL_TO_FORMAL  PERIOD         month × 1  now + 1 month
//	MOCKMONTYUNSUBSCRIBE     UNSUBSCRIBE      PERIOD         month × 1  now + 1 month (a renewed month was
//	                                                                    refunded, so expiry moves back from +2 to +1)
//	MOCKMONTYRENEW           RENEW            PERIOD         month × 1  now + 2 months (one month left, one renewed)
//	MOCKMONTYCHANGE          CHANGE           PERIOD         month × 1  now + 1 month, upgraded spec
//
// Every line has one productInfo entry. The period orders share skuCode
// MOCK-SKU-BASIC (the skuCode survives period-type changes) with productId
// MOCK-PRODUCT-BASIC-YEAR, -MONTH or -TRIAL and linearValue 10; the change
// order upgrades to MOCK-SKU-PRO / MOCK-PRODUCT-PRO-MONTH with linearValue
// 20. The one-time, pay-per-use and package orders use MOCK-SKU-ONCE,
// MOCK-SKU-PPU and MOCK-SKU-PKG with matching productIds and no linearValue.
// createTime is now. buyerInfo has only customerId (MockCustomerID) and
// customerName (MockCustomerName): IAM sub-user data is no longer sent
// since 2025-10-25 (contract §1.12), and contact data would be encrypted.
//
// Tests register further orders with AddOrder and observe fetches with
// Calls; a program with orders of its own (the emulator, from its database)
// serves them through Config.Orders. An order is looked up in AddOrder
// registrations, then Config.Orders, then the built-in mock orders. Answers:
// unknown order or line → HTTP 400 MKT.0100; missing orderId → HTTP 400
// MKT.0199; bad signature → HTTP 401 MKT.0154; unknown path → HTTP 404
// APIGW.0101.
//
// The pay-per-use usage push (POST /api/mkp-openapi-public/global/v1/isv/usage-data,
// contract §6.2) is served too, with answers in the error_code/error_msg
// style of contract §6.3. The checks run in this order, and the first
// failure answers:
//
//	AK/SK signature (koogallery.VerifyAKSK)           401 MKT.0154
//	Config.AccessKey unset                            500 MKT.0999 "usage push not configured"
//	signature/ts/nonce headers (Config.AccessKey)     400 MKT.0102
//	  (the signature may cover the raw bytes, the top-level-sorted or the
//	  fully sorted body; the form that matched goes to the UsageSink)
//	  (a body that is not JSON cannot be verified)    400 MKT.0101
//	a failure armed with FailUsage                    its status and code
//	body: not one object with exactly usage_records,
//	  records with unknown fields or wrong types      400 MKT.0101
//	more than 1000 records                            500 MKT.9003
//	a record refused by ValidateUsageRecord           500 MKT.0100 or MKT.9004
//	an instance the UsageSink does not know           500 MKT.9001
//	the UsageSink failing                             500 MKT.0999
//	otherwise                                         200 MKT.0000, records handed to the UsageSink
//
// Unlike the marketplace, which answers MKT.0000 and drops bad records later
// in its back end (contract §6.2), the mock refuses the whole batch when any
// record is bad and records nothing from it: a client bug then fails the
// test that causes it instead of vanishing. Deduplication (metering_sn; the first
// record of an (instance, begin, end) triple) is the UsageSink's, and a
// resent batch is still answered MKT.0000.
package mockapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// The documented mock order IDs (contract §6.1).
const (
	OrderPeriodYearNew      = "MOCKPERIODYEARNEW"
	OrderOneTimeNew         = "MOCKONETIMENEW"
	OrderOnDemand           = "MOCKONDEMAND"
	OrderOnDemandPkg        = "MOCKONDEMANDPKG"
	OrderPeriodDayTrial     = "MOCKPERIODDAYTRIAL"
	OrderMonthTrialToFormal = "MOCKMONTYTRIALTOFORMAL"
	OrderMonthUnsubscribe   = "MOCKMONTYUNSUBSCRIBE"
	OrderMonthRenew         = "MOCKMONTYRENEW"
	OrderMonthChange        = "MOCKMONTYCHANGE"
)

const (
	// mockLineSuffix makes the single line ID "<ID>-000001" (contract §6.1).
	mockLineSuffix = "-000001"
	// maxRequestBody bounds what the mock reads to verify a signature. A
	// usage push of 1000 records is about 250 KiB.
	maxRequestBody = 1 << 20
)

// The made-up buyer of every built-in mock order.
const (
	MockCustomerID   = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	MockCustomerName = "mock_buyer"
)

// MaxSkew is how far a request's X-Sdk-Date may be from Config.Now, the API
// gateway's documented window.
const MaxSkew = koogallery.DefaultAKSKMaxSkew

// MockOrderIDs returns the nine documented mock order IDs in the order of
// the documentation.
func MockOrderIDs() []string {
	return []string{
		OrderPeriodYearNew, OrderOneTimeNew, OrderOnDemand, OrderOnDemandPkg, OrderPeriodDayTrial,
		OrderMonthTrialToFormal, OrderMonthUnsubscribe, OrderMonthRenew, OrderMonthChange,
	}
}

// Config configures a Server.
type Config struct {
	// AK and SK are the key pair the mock accepts, i.e. what the client
	// under test is configured with.
	AK, SK string
	// AccessKey is the merchant key bound to 基础接口 that signs usage-push
	// bodies (contract §6.2). Empty: usage pushes are answered 500 MKT.0999.
	AccessKey string
	// Now is the server clock for signature freshness, for the times in
	// mock orders and for the 21-day age of usage records; nil means
	// time.Now. Tests pass a fixed clock.
	Now func() time.Time
	// Orders is optional: orders served by Query Order before the built-in
	// mock orders (but after AddOrder registrations).
	Orders OrderSource
	// Usage receives accepted usage pushes; nil means a fresh MemoryUsage,
	// available from Server.Usage.
	Usage UsageSink
	// Licenses receives accepted licence uploads (contract §13.3); nil
	// means a fresh MemoryLicenses.
	Licenses LicenseSink
	// LicenseCodes are the license codes sold (License授权码 2.0), for the
	// activate and query APIs; nil means a fresh MemoryLicenseCodes,
	// available from Server.LicenseCodes.
	LicenseCodes LicenseCodeSource
}

// OrderSource supplies orders to Query Order, e.g. the orders an emulator
// created, read from its database.
type OrderSource interface {
	// Order returns the order, or (nil, nil) when the source does not know
	// it. An error is answered 500 MKT.0999. The mock never modifies the
	// returned order.
	Order(ctx context.Context, orderID string) (*koogallery.OrderInfo, error)
}

// UsageSink stores the usage records that a push delivered. It must be safe
// for concurrent use.
type UsageSink interface {
	// InstanceExists reports whether a usage push may name instanceID; a
	// push naming an unknown one is refused with MKT.9001.
	InstanceExists(ctx context.Context, instanceID string) (bool, error)
	// Record stores a validated batch, in order, received as push says. As
	// the marketplace does, it must skip a record whose metering_sn it has
	// already stored (the first one wins) and one whose (instance_id,
	// begin_time, end_time) it has already stored under another
	// metering_sn. It returns how many records it stored. Each record's
	// UsageValue.Form says whether usage_value came as a number or a string.
	Record(ctx context.Context, records []koogallery.UsageRecord, push UsagePush) (accepted int, err error)
}

// UsagePush is what the mock knows of an accepted usage push beside its
// records.
type UsagePush struct {
	// ReceivedAt is the mock's clock when the push arrived.
	ReceivedAt time.Time
	// SignedForm is the form of the body its signature covers, for the
	// merchant to see which reading of "naturally sorted" (contract §11.1)
	// its client signs.
	SignedForm koogallery.UsageSignatureForm
}

// Server is the mock open API, an http.Handler. It is safe for concurrent
// use.
type Server struct {
	cfg Config
	mux *http.ServeMux

	mu          sync.Mutex
	orders      map[string][]byte // AddOrder registrations, stored as JSON so callers cannot alias them
	calls       map[string]int    // authenticated Query Order calls per orderId
	usageCalls  int               // usage pushes that passed both signature checks
	failUsage   usageFailure      // armed by FailUsage
	failLicense usageFailure      // armed by FailLicenseUploads
}

// usageFailure is the answer FailUsage arms for the next n usage pushes.
type usageFailure struct {
	n      int
	status int
	code   string
}

// New returns a mock open API that accepts requests signed with cfg.AK/SK.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Usage == nil {
		cfg.Usage = NewMemoryUsage()
	}
	if cfg.Licenses == nil {
		cfg.Licenses = &MemoryLicenses{}
	}
	if cfg.LicenseCodes == nil {
		cfg.LicenseCodes = NewMemoryLicenseCodes()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), orders: map[string][]byte{}, calls: map[string]int{}}
	s.mux.HandleFunc("GET "+koogallery.QueryOrderPath, s.queryOrder)
	s.mux.HandleFunc("POST "+koogallery.UsageDataPath, s.pushUsage)
	s.mux.HandleFunc("POST "+koogallery.LicenseActivatePath, s.activateLicense)
	s.mux.HandleFunc("POST "+koogallery.LicenseQueryPath, s.queryLicense)
	s.mux.HandleFunc("POST "+koogallery.LicenseUploadPath, s.uploadLicense)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		// What the real gateway says for an API it does not publish.
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error_code": "APIGW.0101",
			"error_msg":  "The API does not exist or has not been published in the environment",
		})
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// AddOrder registers an order that Query Order returns from now on. It
// replaces a previous registration, or a built-in mock order, with the same
// orderId.
func (s *Server) AddOrder(o koogallery.OrderInfo) {
	b, err := json.Marshal(o)
	if err != nil {
		// OrderInfo holds only strings, numbers and slices of them.
		panic("mockapi: encode order: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[o.OrderID] = b
}

// Calls returns how many correctly signed Query Order calls named orderID,
// whether or not the order was found.
func (s *Server) Calls(orderID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[orderID]
}

type queryOrderAnswer struct {
	ResultCode string                `json:"resultCode"`
	ResultMsg  string                `json:"resultMsg"`
	OrderInfo  *koogallery.OrderInfo `json:"orderInfo,omitempty"`
}

func (s *Server) queryOrder(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, queryOrderAnswer{ResultCode: koogallery.OpenAPIRequestError, ResultMsg: "unreadable request"})
		return
	}
	now := s.cfg.Now()
	if err := koogallery.VerifyAKSK(r, body, s.cfg.AK, s.cfg.SK, now, MaxSkew); err != nil {
		// Like the gateway, say only that the token is illegal.
		writeJSON(w, http.StatusUnauthorized, queryOrderAnswer{ResultCode: koogallery.OpenAPIIllegalToken, ResultMsg: "illegal token"})
		return
	}
	q := r.URL.Query()
	orderID, lineID := q.Get("orderId"), q.Get("orderLineId")
	if orderID == "" {
		writeJSON(w, http.StatusBadRequest, queryOrderAnswer{ResultCode: koogallery.OpenAPIRequestError, ResultMsg: "orderId is required"})
		return
	}
	s.mu.Lock()
	s.calls[orderID]++
	registered, ok := s.orders[orderID]
	s.mu.Unlock()

	var order koogallery.OrderInfo
	internalError := func() {
		writeJSON(w, http.StatusInternalServerError, queryOrderAnswer{ResultCode: koogallery.OpenAPIInternalError, ResultMsg: "internal error"})
	}
	switch {
	case ok:
		if err := json.Unmarshal(registered, &order); err != nil {
			internalError()
			return
		}
	case s.cfg.Orders != nil:
		o, err := s.cfg.Orders.Order(r.Context(), orderID)
		if err != nil {
			internalError()
			return
		}
		if o != nil {
			// A copy: narrowing to one line below replaces the copy's slice,
			// never the source's.
			order = *o
			break
		}
		fallthrough
	default:
		order, ok = mockOrder(orderID, now)
		if !ok {
			writeJSON(w, http.StatusBadRequest, queryOrderAnswer{ResultCode: koogallery.OpenAPIParamCheckFailed, ResultMsg: "order not found"})
			return
		}
	}
	if lineID != "" {
		// The real API's answer to orderLineId is not documented; the mock
		// returns only the asked-for line, which OrderInfo.Line handles
		// either way.
		line, found := order.Line(lineID)
		if !found {
			writeJSON(w, http.StatusBadRequest, queryOrderAnswer{ResultCode: koogallery.OpenAPIParamCheckFailed, ResultMsg: "order line not found"})
			return
		}
		order.OrderLines = []koogallery.OrderLine{line}
	}
	writeJSON(w, http.StatusOK, queryOrderAnswer{ResultCode: koogallery.OpenAPISuccess, ResultMsg: "success", OrderInfo: &order})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"resultCode":"MKT.0999","resultMsg":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// beijing is UTC+8 without a tzdata dependency; China has no daylight time.
var beijing = time.FixedZone("CST", 8*60*60)

// endOfBeijingDay is the last second of t's day in Beijing, in UTC: the
// marketplace's documented example expires at 15:59:59Z.
func endOfBeijingDay(t time.Time) time.Time {
	y, m, d := t.In(beijing).Date()
	return time.Date(y, m, d, 23, 59, 59, 0, beijing).UTC()
}

// mockOrder builds a documented mock order as of now (see the package doc).
func mockOrder(id string, now time.Time) (koogallery.OrderInfo, bool) {
	linear := func(n int64) *koogallery.LinearValue {
		v := koogallery.LinearValue(n)
		return &v
	}
	product := func(sku, productID string, lv *koogallery.LinearValue) []koogallery.ProductInfo {
		return []koogallery.ProductInfo{{SkuCode: sku, ProductID: productID, LinearValue: lv}}
	}
	expiry := func(years, months, days int) string {
		return koogallery.FormatTime(endOfBeijingDay(now.AddDate(years, months, days)))
	}
	basicMonth := product("MOCK-SKU-BASIC", "MOCK-PRODUCT-BASIC-MONTH", linear(10))

	var typ koogallery.OrderType
	line := koogallery.OrderLine{ChargingMode: koogallery.ChargingPeriod, PeriodType: "month", PeriodNumber: 1}
	switch id {
	case OrderPeriodYearNew:
		typ = koogallery.OrderTypeNew
		line.PeriodType, line.ExpireTime = "year", expiry(1, 0, 0)
		line.ProductInfo = product("MOCK-SKU-BASIC", "MOCK-PRODUCT-BASIC-YEAR", linear(10))
	case OrderOneTimeNew:
		typ = koogallery.OrderTypeNew
		line = koogallery.OrderLine{ChargingMode: koogallery.ChargingOneTime,
			ProductInfo: product("MOCK-SKU-ONCE", "MOCK-PRODUCT-ONCE", nil)}
	case OrderOnDemand:
		typ = koogallery.OrderTypeNew
		line = koogallery.OrderLine{ChargingMode: koogallery.ChargingOnDemand,
			ProductInfo: product("MOCK-SKU-PPU", "MOCK-PRODUCT-PPU", nil)}
	case OrderOnDemandPkg:
		typ = koogallery.OrderTypeNew
		line.ChargingMode, line.ExpireTime = koogallery.ChargingOnDemandPkg, expiry(0, 1, 0)
		line.ProductInfo = product("MOCK-SKU-PKG", "MOCK-PRODUCT-PKG", nil)
	case OrderPeriodDayTrial:
		typ = koogallery.OrderTypeTrial
		line.PeriodType, line.PeriodNumber, line.ExpireTime = "day", 7, expiry(0, 0, 7)
		line.ProductInfo = product("MOCK-SKU-BASIC", "MOCK-PRODUCT-BASIC-TRIAL", linear(10))
	case OrderMonthTrialToFormal:
		typ = koogallery.OrderTypeTrialToFormal
		line.ExpireTime, line.ProductInfo = expiry(0, 1, 0), basicMonth
	case OrderMonthUnsubscribe:
		typ = koogallery.OrderTypeUnsubscribe
		line.ExpireTime, line.ProductInfo = expiry(0, 1, 0), basicMonth
	case OrderMonthRenew:
		typ = koogallery.OrderTypeRenew
		line.ExpireTime, line.ProductInfo = expiry(0, 2, 0), basicMonth
	case OrderMonthChange:
		typ = koogallery.OrderTypeChange
		line.ExpireTime = expiry(0, 1, 0)
		line.ProductInfo = product("MOCK-SKU-PRO", "MOCK-PRODUCT-PRO-MONTH", linear(20))
	default:
		return koogallery.OrderInfo{}, false
	}
	line.OrderLineID = id + mockLineSuffix
	return koogallery.OrderInfo{
		OrderID:    id,
		OrderType:  typ,
		CreateTime: koogallery.FormatTime(now),
		OrderLines: []koogallery.OrderLine{line},
		BuyerInfo:  &koogallery.BuyerInfo{CustomerID: MockCustomerID, CustomerName: MockCustomerName},
	}, true
}

// Usage returns the sink that receives usage pushes: Config.Usage, or the
// MemoryUsage made for a nil one.
func (s *Server) Usage() UsageSink { return s.cfg.Usage }

// LicenseCodes returns where the license codes sold are kept.
func (s *Server) LicenseCodes() LicenseCodeSource { return s.cfg.LicenseCodes }

// FailUsage makes the next n usage pushes that pass both signature checks
// fail with the given HTTP status and error_code (e.g. 503 "MKT.0999"),
// before their body is decoded or the sink touched; n ≤ 0 disarms it. A
// status outside 100–599 is answered as 500. For tests and the emulator's
// console.
func (s *Server) FailUsage(n int, status int, code string) {
	if status < 100 || status > 599 {
		status = http.StatusInternalServerError
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failUsage = usageFailure{n: max(n, 0), status: status, code: code}
}

// UsageCalls returns how many usage pushes passed both the AK/SK and the body
// signature check, whatever was answered afterwards (FailUsage failures and
// refused batches included).
func (s *Server) UsageCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usageCalls
}

type usageAnswer struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

// openAPIStatus is the HTTP status the marketplace pairs with a code (contract §6.3).
func openAPIStatus(code string) int {
	switch code {
	case koogallery.OpenAPISuccess:
		return http.StatusOK
	case koogallery.OpenAPIInvalidParam, koogallery.OpenAPIInvalidBodySign, koogallery.OpenAPIRequestError:
		return http.StatusBadRequest
	case koogallery.OpenAPIIllegalOperation, koogallery.OpenAPINoAuthority, koogallery.OpenAPIIllegalToken:
		return http.StatusUnauthorized
	case koogallery.OpenAPIRateLimited:
		return http.StatusNotAcceptable
	default: // MKT.0100, MKT.0999, MKT.9001–9004
		return http.StatusInternalServerError
	}
}

func (s *Server) pushUsage(w http.ResponseWriter, r *http.Request) {
	answer := func(code, msg string) {
		writeJSON(w, openAPIStatus(code), usageAnswer{ErrorCode: code, ErrorMsg: msg})
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		answer(koogallery.OpenAPIRequestError, "unreadable request")
		return
	}
	if len(body) > maxRequestBody {
		answer(koogallery.OpenAPIInvalidParam, "request body too large")
		return
	}
	now := s.cfg.Now()
	if err := koogallery.VerifyAKSK(r, body, s.cfg.AK, s.cfg.SK, now, MaxSkew); err != nil {
		answer(koogallery.OpenAPIIllegalToken, "illegal token")
		return
	}
	if s.cfg.AccessKey == "" {
		answer(koogallery.OpenAPIInternalError, "usage push not configured")
		return
	}
	// The body signature is checked over the raw bytes (or their sorted
	// forms), before decoding.
	form, err := koogallery.VerifyUsageBodySignature(r.Header, s.cfg.AccessKey, body, now, MaxSkew)
	if err != nil {
		if errors.Is(err, koogallery.ErrInvalidJSON) {
			answer(koogallery.OpenAPIInvalidParam, "request body is not valid JSON")
			return
		}
		answer(koogallery.OpenAPIInvalidBodySign, "invalid body sign")
		return
	}

	if fail, armed := s.countUsageCall(); armed {
		writeJSON(w, fail.status, usageAnswer{ErrorCode: fail.code, ErrorMsg: "injected failure"})
		return
	}

	records, ok := decodeUsagePush(body)
	if !ok {
		answer(koogallery.OpenAPIInvalidParam, "invalid parameter: the body must be {\"usage_records\":[...]} with the documented record fields")
		return
	}
	if err := koogallery.ValidateUsageRecords(records, now); err != nil {
		var ue *koogallery.UsageRecordError
		if !errors.As(err, &ue) {
			answer(koogallery.OpenAPIParamCheckFailed, "invalid usage records")
			return
		}
		answer(ue.Code, ue.Error())
		return
	}
	checked := map[string]bool{}
	for i, rec := range records {
		if checked[rec.InstanceID] {
			continue
		}
		exists, err := s.cfg.Usage.InstanceExists(r.Context(), rec.InstanceID)
		if err != nil {
			answer(koogallery.OpenAPIInternalError, "internal error")
			return
		}
		if !exists {
			answer(koogallery.OpenAPIInstanceNotFound, fmt.Sprintf("usage record %d: instance_id not found", i))
			return
		}
		checked[rec.InstanceID] = true
	}
	if _, err := s.cfg.Usage.Record(r.Context(), records, UsagePush{ReceivedAt: now, SignedForm: form}); err != nil {
		answer(koogallery.OpenAPIInternalError, "internal error")
		return
	}
	answer(koogallery.OpenAPISuccess, "success")
}

// countUsageCall counts a usage push that passed both signature checks and
// takes the failure armed for it by FailUsage, if any.
func (s *Server) countUsageCall() (usageFailure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usageCalls++
	fail := s.failUsage
	if fail.n <= 0 {
		return fail, false
	}
	s.failUsage.n--
	return fail, true
}

// decodeUsagePush reads the body strictly: one object whose only field is
// usage_records (present, an array), records without unknown fields and with
// the documented types. The body is already known to be one JSON value.
func decodeUsagePush(body []byte) ([]koogallery.UsageRecord, bool) {
	var push struct {
		UsageRecords *[]koogallery.UsageRecord `json:"usage_records"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&push); err != nil || push.UsageRecords == nil {
		return nil, false
	}
	return *push.UsageRecords, true
}

// MemoryUsage is an in-memory UsageSink, the default of a Server. It is
// safe for concurrent use. Every instance exists until KnownInstances
// registers some; from then on only the registered ones do.
type MemoryUsage struct {
	mu      sync.Mutex
	known   map[string]bool // nil: every instance exists
	records []koogallery.UsageRecord
	sns     map[string]bool
	periods map[usagePeriod]bool
	totals  map[string]*big.Int // per instance, in units of 0.0001
	forms   []koogallery.UsageSignatureForm
}

// usagePeriod is the marketplace's second deduplication key. The times are
// compared as text, which ValidateUsageRecord makes exact.
type usagePeriod struct{ instance, begin, end string }

// NewMemoryUsage returns an empty MemoryUsage in which every instance
// exists.
func NewMemoryUsage() *MemoryUsage {
	return &MemoryUsage{sns: map[string]bool{}, periods: map[usagePeriod]bool{}, totals: map[string]*big.Int{}}
}

// KnownInstances registers instances that exist; once any is registered,
// pushes naming others are refused with MKT.9001.
func (m *MemoryUsage) KnownInstances(ids ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.known == nil {
		m.known = map[string]bool{}
	}
	for _, id := range ids {
		m.known[id] = true
	}
}

// InstanceExists implements UsageSink.
func (m *MemoryUsage) InstanceExists(_ context.Context, instanceID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.known == nil || m.known[instanceID], nil
}

// Record implements UsageSink: records already stored under their
// metering_sn or their (instance_id, begin_time, end_time) are skipped. A
// record with an invalid usage_value fails the whole call before anything is
// stored.
func (m *MemoryUsage) Record(_ context.Context, records []koogallery.UsageRecord, push UsagePush) (int, error) {
	units := make([]int64, len(records))
	for i, r := range records {
		u, err := r.UsageValue.Units()
		if err != nil {
			return 0, fmt.Errorf("record usage %s: %w", r.MeteringSN, err)
		}
		units[i] = u
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forms = append(m.forms, push.SignedForm)
	accepted := 0
	for i, r := range records {
		p := usagePeriod{r.InstanceID, r.BeginTime, r.EndTime}
		if m.sns[r.MeteringSN] || m.periods[p] {
			continue
		}
		m.sns[r.MeteringSN], m.periods[p] = true, true
		m.records = append(m.records, r)
		t := m.totals[r.InstanceID]
		if t == nil {
			t = new(big.Int)
			m.totals[r.InstanceID] = t
		}
		t.Add(t, big.NewInt(units[i]))
		accepted++
	}
	return accepted, nil
}

// Records returns the stored records in the order they were accepted.
func (m *MemoryUsage) Records() []koogallery.UsageRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.records)
}

// SignedForms returns, for each push Record was given, the form of the
// body its signature covered.
func (m *MemoryUsage) SignedForms() []koogallery.UsageSignatureForm {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.forms)
}

// Totals returns the exact sum of the stored usage per instance, as plain
// decimals ("0.3", "12.3456", "7").
func (m *MemoryUsage) Totals() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.totals))
	for id, t := range m.totals {
		out[id] = formatUnits(t)
	}
	return out
}

// formatUnits writes a non-negative count of 0.0001 units as a decimal.
func formatUnits(u *big.Int) string {
	s := u.String()
	if len(s) < 5 {
		s = strings.Repeat("0", 5-len(s)) + s
	}
	whole, frac := s[:len(s)-4], strings.TrimRight(s[len(s)-4:], "0")
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}
