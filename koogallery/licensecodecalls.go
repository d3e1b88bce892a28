package koogallery

import "time"

// The License授权码 2.0 callbacks (§13.5): the marketplace tells the
// merchant that a license code was renewed (or a renewal refunded), frozen
// or unfrozen, or released. They arrive on the production interface like
// the SaaS calls, signed with the key of the License授权码交付接口 type.
const (
	ActivityRefreshLicenseCode      Activity = "refreshLicenseCode"
	ActivityUpdateLicenseCodeStatus Activity = "updateLicenseCodeStatus"
	ActivityReleaseLicenseCode      Activity = "releaseLicenseCode"
)

// IsLicenseCodeActivity reports whether a is one of the license-code
// callbacks, which are verified with the license key instead of the basic
// one.
func IsLicenseCodeActivity(a Activity) bool {
	switch a {
	case ActivityRefreshLicenseCode, ActivityUpdateLicenseCodeStatus, ActivityReleaseLicenseCode:
		return true
	}
	return false
}

// PeekActivity returns the activity a body names, or "" when it names none
// readably. It reads an unverified body only to choose the key its
// signature is checked with; nothing else is taken from it before the
// signature holds.
func PeekActivity(body []byte) Activity {
	root, err := parseJSONObject(body)
	if err != nil {
		return ""
	}
	activity, ok := root.member("activity")
	if !ok || activity.kind != jsonString {
		return ""
	}
	return Activity(activity.text)
}

// LicenseCodeRequest is implemented by the three license-code callbacks.
type LicenseCodeRequest interface {
	Request
	// Code is the license code the call is about.
	Code() string
}

// RefreshLicenseCodeRequest moves a code's expiry: a renewal, or a
// refunded renewal period (§13.5).
type RefreshLicenseCodeRequest struct {
	Scene       Scene    `json:"scene"`
	OrderID     string   `json:"orderId"`
	OrderLineID string   `json:"orderLineId"`
	License     string   `json:"license"`
	ProductID   string   `json:"productId"`
	ExpireTime  string   `json:"expireTime"`
	TestFlag    TestFlag `json:"testFlag"`

	expireAt time.Time
}

// Activity implements Request.
func (*RefreshLicenseCodeRequest) Activity() Activity { return ActivityRefreshLicenseCode }

// Debug implements Request.
func (r *RefreshLicenseCodeRequest) Debug() bool { return bool(r.TestFlag) }

// Code implements LicenseCodeRequest.
func (r *RefreshLicenseCodeRequest) Code() string { return r.License }

// ExpireAt is the new expiry, parsed from ExpireTime (UTC).
func (r *RefreshLicenseCodeRequest) ExpireAt() time.Time { return r.expireAt }

func (r *RefreshLicenseCodeRequest) validate() error {
	if err := firstError(
		requireField("scene", string(r.Scene), maxSceneLen),
		requireID("orderId", r.OrderID),
		requireID("orderLineId", r.OrderLineID),
		requireLicense(r.License),
		optionalID("productId", r.ProductID),
		requireField("expireTime", r.ExpireTime, 20),
	); err != nil {
		return err
	}
	if r.Scene != SceneRenewal && r.Scene != SceneUnsubscribeRenewalPeriod {
		return invalid("field scene must be RENEWAL or UNSUBSCRIBE_RENEWAL_PERIOD")
	}
	t, err := ParseTime(r.ExpireTime)
	if err != nil {
		return invalid("field expireTime must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC)")
	}
	r.expireAt = t
	return nil
}

// UpdateLicenseCodeStatusRequest freezes a code whose grace period ended,
// or unfreezes it after a renewal (§13.5).
type UpdateLicenseCodeStatusRequest struct {
	License  string         `json:"license"`
	Status   InstanceStatus `json:"status"`
	TestFlag TestFlag       `json:"testFlag"`
}

// Activity implements Request.
func (*UpdateLicenseCodeStatusRequest) Activity() Activity { return ActivityUpdateLicenseCodeStatus }

// Debug implements Request.
func (r *UpdateLicenseCodeStatusRequest) Debug() bool { return bool(r.TestFlag) }

// Code implements LicenseCodeRequest.
func (r *UpdateLicenseCodeStatusRequest) Code() string { return r.License }

func (r *UpdateLicenseCodeStatusRequest) validate() error {
	if err := requireLicense(r.License); err != nil {
		return err
	}
	return requireStatus(r.Status)
}

// ReleaseLicenseCodeRequest releases a code at the end of its retention or
// on unsubscription; OrderID then names the unsubscription order (§13.5).
type ReleaseLicenseCodeRequest struct {
	License     string   `json:"license"`
	OrderID     string   `json:"orderId"`
	OrderLineID string   `json:"orderLineId"`
	TestFlag    TestFlag `json:"testFlag"`
}

// Activity implements Request.
func (*ReleaseLicenseCodeRequest) Activity() Activity { return ActivityReleaseLicenseCode }

// Debug implements Request.
func (r *ReleaseLicenseCodeRequest) Debug() bool { return bool(r.TestFlag) }

// Code implements LicenseCodeRequest.
func (r *ReleaseLicenseCodeRequest) Code() string { return r.License }

func (r *ReleaseLicenseCodeRequest) validate() error {
	return firstError(
		requireLicense(r.License),
		optionalID("orderId", r.OrderID),
		optionalID("orderLineId", r.OrderLineID),
	)
}

// requireLicense checks a callback's license field: present, at most 64
// characters, printable ASCII (it travels in workflow IDs and URL paths).
func requireLicense(value string) error {
	if err := requireField("license", value, maxLicenseLen); err != nil {
		return err
	}
	if ValidLicense(value) != nil {
		return invalid("field license must be printable ASCII without spaces")
	}
	return nil
}
