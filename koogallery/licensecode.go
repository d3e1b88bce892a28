package koogallery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// License codes (License授权码 2.0, §13.5, §13.6): the open APIs with which the merchant's
// software activates a code the buyer bought and checks it every day.

// The license-code open-API paths.
const (
	LicenseActivatePath = "/api/mkp-openapi-public/global/v1/license/activate"
	// LicenseQueryPath is 查询授权码, formerly 授权码心跳检测 (heartbeat).
	LicenseQueryPath = "/api/mkp-openapi-public/global/v1/license/heartbeat"
)

// License-code open-API result codes (error_code).
const (
	LicenseAPISuccess  = "92020000"
	LicenseAPINotFound = "92020005" // license code notexist
)

// License-code statuses as the open API reports them.
const (
	LicenseAlive    = "ALIVE"
	LicenseExpired  = "EXPIRED"
	LicenseReleased = "RELEASED"
)

// maxLicenseLen bounds a license code: the callbacks declare it String(64).
const maxLicenseLen = 64

// ErrInvalidLicense means a license code is empty, too long or holds
// characters no code has (it is refused before anything is sent).
var ErrInvalidLicense = errors.New("a license code is 1 to 64 printable ASCII characters")

// ValidLicense checks a license code's form.
func ValidLicense(license string) error {
	if license == "" || len(license) > maxLicenseLen || !utf8.ValidString(license) {
		return ErrInvalidLicense
	}
	for _, r := range license {
		if r <= ' ' || r > '~' {
			return ErrInvalidLicense
		}
	}
	return nil
}

// LicenseCodeInfo is what the marketplace says of an activated code.
type LicenseCodeInfo struct {
	License string
	// Status is LicenseAlive, LicenseExpired or LicenseReleased.
	Status string
	// ExpireTime is the marketplace's estimate of the end of validity.
	ExpireTime *time.Time
	// ActivateTime is when the code was activated (query only).
	ActivateTime *time.Time
	ProductID    string
	Amount       int64
	OrderID      string
	// Raw is the answer's data, as received.
	Raw json.RawMessage
}

// licenseActivateRequest is the activation body.
type licenseActivateRequest struct {
	License      string `json:"license"`
	RealEffectAt string `json:"real_effect_time,omitempty"`
}

// licenseAnswer is the envelope of both license-code answers.
type licenseAnswer struct {
	ErrorCode string          `json:"error_code"`
	ErrorMsg  string          `json:"error_msg"`
	Data      json.RawMessage `json:"data"`
}

// ActivateLicense activates a license code (激活授权码). effectiveAt, when
// not zero, is the real start of validity (real_effect_time, UTC, not
// earlier than the order); the marketplace otherwise counts from now. A
// code the marketplace does not know gives an *OpenAPIError with Code
// LicenseAPINotFound.
func (c *OpenAPIClient) ActivateLicense(ctx context.Context, license string, effectiveAt time.Time) (*LicenseCodeInfo, error) {
	if err := ValidLicense(license); err != nil {
		return nil, fmt.Errorf("activate license: %w", err)
	}
	req := licenseActivateRequest{License: license}
	if !effectiveAt.IsZero() {
		req.RealEffectAt = effectiveAt.UTC().Format(LayoutSeconds)
	}
	data, err := c.licenseCall(ctx, "activate license", LicenseActivatePath, req)
	if err != nil {
		return nil, err
	}
	// data.license_code_info is a JSON document inside a string.
	var wrapper struct {
		Info string `json:"license_code_info"`
	}
	if err := json.Unmarshal(data, &wrapper); err != nil || wrapper.Info == "" {
		return nil, fmt.Errorf("activate license: %w", &OpenAPIError{HTTPStatus: http.StatusOK, Code: LicenseAPISuccess,
			Message: "answer has no data.license_code_info: " + bodyExcerpt(data)})
	}
	var info struct {
		Status     string `json:"status"`
		ExpireTime string `json:"expire_time"`
		ProductID  string `json:"product_id"`
		Amount     int64  `json:"amount"`
		OrderID    string `json:"order_id"`
	}
	if err := json.Unmarshal([]byte(wrapper.Info), &info); err != nil {
		return nil, fmt.Errorf("activate license: %w", &OpenAPIError{HTTPStatus: http.StatusOK, Code: LicenseAPISuccess,
			Message: "data.license_code_info is not JSON: " + bodyExcerpt([]byte(wrapper.Info))})
	}
	out := &LicenseCodeInfo{License: license, Status: strings.ToUpper(info.Status), ProductID: info.ProductID,
		Amount: info.Amount, OrderID: info.OrderID, Raw: data}
	out.ExpireTime = parseLicenseTime(info.ExpireTime)
	return out, nil
}

// QueryLicense asks the marketplace about a code (查询授权码): its status
// and activation time.
func (c *OpenAPIClient) QueryLicense(ctx context.Context, license string) (*LicenseCodeInfo, error) {
	if err := ValidLicense(license); err != nil {
		return nil, fmt.Errorf("query license: %w", err)
	}
	data, err := c.licenseCall(ctx, "query license", LicenseQueryPath, map[string]string{"license": license})
	if err != nil {
		return nil, err
	}
	var d struct {
		License      string `json:"license_code"`
		Status       string `json:"status"`
		ActivateTime string `json:"activate_time"`
		ExpireTime   string `json:"expire_time"`
		ProductID    string `json:"product_id"`
		OrderID      string `json:"order_id"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.Status == "" {
		return nil, fmt.Errorf("query license: %w", &OpenAPIError{HTTPStatus: http.StatusOK, Code: LicenseAPISuccess,
			Message: "answer has no data.status: " + bodyExcerpt(data)})
	}
	return &LicenseCodeInfo{License: license, Status: strings.ToUpper(d.Status), ActivateTime: parseLicenseTime(d.ActivateTime),
		ExpireTime: parseLicenseTime(d.ExpireTime), ProductID: d.ProductID, OrderID: d.OrderID, Raw: data}, nil
}

// licenseCall posts body and returns the answer's data when error_code is
// the license APIs' success code.
func (c *OpenAPIClient) licenseCall(ctx context.Context, what, path string, body any) (json.RawMessage, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	status, answer, err := c.do(ctx, http.MethodPost, path, nil, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var a licenseAnswer
	if json.Unmarshal(answer, &a) != nil || a.ErrorCode == "" {
		return nil, fmt.Errorf("%s: %w", what, parseOpenAPIError(status, answer))
	}
	if status != http.StatusOK || a.ErrorCode != LicenseAPISuccess {
		return nil, fmt.Errorf("%s: %w", what, &OpenAPIError{HTTPStatus: status, Code: a.ErrorCode, Message: a.ErrorMsg})
	}
	return a.Data, nil
}

// parseLicenseTime reads the license APIs' yyyyMMddHHmmss (UTC); nil when
// absent or unreadable.
func parseLicenseTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(LayoutSeconds, s)
	if err != nil {
		return nil
	}
	return &t
}
