package koogallery

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Order types of Query Order (§6.1). The documented field list is
// incomplete (§7.10), so every field is optional to the decoder, unknown
// fields are ignored, and callers keep the raw JSON next to the typed view.

// OrderType is OrderInfo.orderType.
type OrderType string

// The documented order types.
const (
	OrderTypeNew           OrderType = "NEW"
	OrderTypeTrial         OrderType = "TRIAL"
	OrderTypeTrialToFormal OrderType = "TRIAL_TO_FORMAL"
	OrderTypeUnsubscribe   OrderType = "UNSUBSCRIBE"
	OrderTypeRenew         OrderType = "RENEW"
	OrderTypeChange        OrderType = "CHANGE"
)

// ChargingMode is OrderLine.chargingMode.
type ChargingMode string

// The documented charging modes.
const (
	ChargingOnDemand    ChargingMode = "ON_DEMAND"     // pay-per-use (按需)
	ChargingOneTime     ChargingMode = "ONE_TIME"      // one-time (按次)
	ChargingPeriod      ChargingMode = "PERIOD"        // yearly/monthly (包周期)
	ChargingOnDemandPkg ChargingMode = "ON_DEMAND_PKG" // pay-per-use package (按需套餐包)
)

// OrderInfo is the order returned by Query Order.
type OrderInfo struct {
	OrderID      string        `json:"orderId"`
	OrderType    OrderType     `json:"orderType"`
	CreateTime   string        `json:"createTime"` // yyyyMMddHHmmss, when the order was placed
	OrderLines   []OrderLine   `json:"orderLine"`
	BuyerInfo    *BuyerInfo    `json:"buyerInfo,omitempty"`
	ExtendParams []ExtendParam `json:"extendParams,omitempty"`
}

// Line returns the order line with the given ID, or, when orderLineID is
// empty and the order has exactly one line, that line.
func (o *OrderInfo) Line(orderLineID string) (OrderLine, bool) {
	for _, l := range o.OrderLines {
		if l.OrderLineID == orderLineID {
			return l, true
		}
	}
	if orderLineID == "" && len(o.OrderLines) == 1 {
		return o.OrderLines[0], true
	}
	return OrderLine{}, false
}

// OrderLine is one purchased line of an order.
type OrderLine struct {
	OrderLineID  string        `json:"orderLineId"`
	ChargingMode ChargingMode  `json:"chargingMode"`
	ExpireTime   string        `json:"expireTime,omitempty"` // yyyyMMddHHmmss UTC; absent for pay-per-use
	PeriodType   string        `json:"periodType,omitempty"` // "year", "month", "day", ...
	PeriodNumber int           `json:"periodNumber,omitempty"`
	ProductInfo  []ProductInfo `json:"productInfo,omitempty"`
}

// ExpireAt parses ExpireTime; ok is false when the line has none.
func (l OrderLine) ExpireAt() (t time.Time, ok bool, err error) {
	if strings.TrimSpace(l.ExpireTime) == "" {
		return time.Time{}, false, nil
	}
	t, err = ParseTime(l.ExpireTime)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("order line %s expireTime: %w", l.OrderLineID, err)
	}
	return t, true, nil
}

// Product returns the line's first product, the purchased spec.
func (l OrderLine) Product() ProductInfo {
	if len(l.ProductInfo) == 0 {
		return ProductInfo{}
	}
	return l.ProductInfo[0]
}

// ProductInfo is a purchased spec: skuCode stays the same across period-type
// changes, productId changes with them (§1.7, §1.12).
type ProductInfo struct {
	SkuCode     string       `json:"skuCode,omitempty"`
	ProductID   string       `json:"productId,omitempty"`
	LinearValue *LinearValue `json:"linearValue,omitempty"`
}

// LinearValue is a quantity attribute (for example a number of users). The
// marketplace has sent it both as a number and as a numeric string.
type LinearValue int64

// UnmarshalJSON accepts 20, "20", " 20 " and 20.0; a quantity with a
// fraction, or anything else, is an error rather than silently rounded.
func (v *LinearValue) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(strings.Trim(strings.TrimSpace(string(b)), `"`))
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*v = LinearValue(n)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return fmt.Errorf("linearValue %q is not a whole number", s)
	}
	*v = LinearValue(f)
	return nil
}

// BuyerInfo is the customer of an order.
type BuyerInfo struct {
	CustomerID   string `json:"customerId,omitempty"`
	CustomerName string `json:"customerName,omitempty"`
	UserID       string `json:"userId,omitempty"`
	UserName     string `json:"userName,omitempty"`
	MobilePhone  string `json:"mobilePhone,omitempty"`
	Email        string `json:"email,omitempty"`
}

// ExtendParam is a buyer-entered custom field.
type ExtendParam struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// QueryOrderResult is the body of a Query Order answer.
type QueryOrderResult struct {
	ResultCode string          `json:"resultCode"`
	ResultMsg  string          `json:"resultMsg"`
	OrderInfo  *OrderInfo      `json:"orderInfo,omitempty"`
	Raw        json.RawMessage `json:"-"`
}
