package provisioner

import (
	"context"
	"time"
)

// License codes (License授权码 2.0, contract §13.5, §13.6): the merchant's
// software activates a code the buyer bought; afterwards the marketplace
// renews, freezes, unfreezes and releases it, and the merchant's
// application hears each change, to grant or withdraw what the code
// entitles and to delete the buyer's data once the code is released.

// License-code events: what happened to a code.
const (
	LicenseCodeActivated       = "activated"        // the software activated it
	LicenseCodeRenewed         = "renewed"          // a renewal moved its expiry later
	LicenseCodeRenewalRefunded = "renewal-refunded" // a refunded renewal moved its expiry earlier
	LicenseCodeExpired         = "expired"          // its validity ended; the marketplace's grace runs
	LicenseCodeFrozen          = "frozen"           // unusable, its data kept (15 days of retention)
	LicenseCodeUnfrozen        = "unfrozen"         // usable again after a renewal
	LicenseCodeReleased        = "released"         // gone: delete what it kept
)

// LicenseCodeRequest tells the application what happened to a code.
// OperationID names the change ("license-code:<code>:<n>"): the same for
// every retry, another for the next change.
type LicenseCodeRequest struct {
	License     string `json:"license"`
	OperationID string `json:"operationId"`
	// Event is one of the LicenseCode* events; Status is the code's
	// status after it: active, expired, frozen or released.
	Event      string     `json:"event"`
	Status     string     `json:"status"`
	ExpireTime *time.Time `json:"expireTime,omitempty"`
	ProductID  string     `json:"productId,omitempty"`
	// OrderID is the order behind the change: the purchase for an
	// activation, the renewal or unsubscription order otherwise.
	OrderID string `json:"orderId,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// LicenseCodeChanged implements Provisioner: POST {base}/license-code.
func (h *HTTP) LicenseCodeChanged(ctx context.Context, req LicenseCodeRequest) error {
	return h.call(ctx, "license-code", req.OperationID, req, nil)
}

// LicenseCodeChanged records the code's state in the demo application; a
// released code's entitlement is deleted. It fails while the demo
// application is in maintenance.
func (d *Demo) LicenseCodeChanged(ctx context.Context, req LicenseCodeRequest) error {
	if err := d.available(ctx, "license-code"); err != nil {
		return err
	}
	return d.Store.SaveLicenseCode(ctx, req)
}
