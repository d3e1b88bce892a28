package loadgen

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Orders are the load's orders as the marketplace's Query Order serves
// them (a mockapi.OrderSource): a monthly purchase for every
// "<prefix>-<n>", line "<prefix>-<n>-000001", expiring a month after it is
// first asked for, or when ExpireAt says for its prefix.
type Orders struct {
	mu     sync.Mutex
	expiry map[string]time.Time
}

// NewOrders returns an empty order book.
func NewOrders() *Orders { return &Orders{expiry: map[string]time.Time{}} }

// ExpireAt makes every order of the prefix expire at t.
func (o *Orders) ExpireAt(prefix string, t time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expiry[prefix] = t
}

// Order implements mockapi.OrderSource.
func (o *Orders) Order(_ context.Context, orderID string) (*koogallery.OrderInfo, error) {
	cut := strings.LastIndexByte(orderID, '-')
	if cut < 0 {
		return nil, nil
	}
	if _, err := strconv.Atoi(orderID[cut+1:]); err != nil {
		return nil, nil
	}
	o.mu.Lock()
	expiry, ok := o.expiry[orderID[:cut]]
	o.mu.Unlock()
	if !ok {
		expiry = time.Now().AddDate(0, 1, 0)
	}
	users := koogallery.LinearValue(10)
	return &koogallery.OrderInfo{
		OrderID: orderID, OrderType: koogallery.OrderTypeNew,
		CreateTime: koogallery.FormatTime(time.Now()),
		OrderLines: []koogallery.OrderLine{{
			OrderLineID: orderID + "-000001", ChargingMode: koogallery.ChargingPeriod,
			PeriodType: "month", PeriodNumber: 1, ExpireTime: koogallery.FormatTime(expiry),
			ProductInfo: []koogallery.ProductInfo{{SkuCode: "LOADGEN-SKU", ProductID: "LOADGEN-PRODUCT-MONTH", LinearValue: &users}},
		}},
	}, nil
}
