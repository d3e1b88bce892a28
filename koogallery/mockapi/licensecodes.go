package mockapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// LicenseCodeSource keeps the license codes the marketplace sold, for the
// license-code open APIs (activate, query). It must be safe for concurrent
// use.
type LicenseCodeSource interface {
	// Activate activates a code at effectiveAt (the first activation
	// counts; activating again changes nothing) and returns it; found is
	// false for a code the marketplace never sold.
	Activate(ctx context.Context, license string, effectiveAt time.Time) (code LicenseCode, found bool, err error)
	// License returns a code as it stands; found is false for an unknown
	// code.
	License(ctx context.Context, license string) (code LicenseCode, found bool, err error)
}

// LicenseCode is a license code the marketplace sold.
type LicenseCode struct {
	License   string
	ProductID string
	OrderID   string
	Amount    int64
	// Validity is how long the code is valid from its activation.
	Validity    time.Duration
	ActivatedAt *time.Time
	Released    bool
}

// expireAt is the end of validity of an activated code.
func (c LicenseCode) expireAt() *time.Time {
	if c.ActivatedAt == nil {
		return nil
	}
	t := c.ActivatedAt.Add(c.Validity)
	return &t
}

// status is the open API's status of the code at now.
func (c LicenseCode) status(now time.Time) string {
	switch exp := c.expireAt(); {
	case c.Released:
		return koogallery.LicenseReleased
	case exp != nil && !now.Before(*exp):
		return koogallery.LicenseExpired
	}
	return koogallery.LicenseAlive
}

// MemoryLicenseCodes is an in-memory LicenseCodeSource.
type MemoryLicenseCodes struct {
	mu    sync.Mutex
	codes map[string]LicenseCode
}

// NewMemoryLicenseCodes returns an empty MemoryLicenseCodes.
func NewMemoryLicenseCodes() *MemoryLicenseCodes {
	return &MemoryLicenseCodes{codes: map[string]LicenseCode{}}
}

// Add sells a code.
func (m *MemoryLicenseCodes) Add(c LicenseCode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.codes[c.License] = c
}

// Release marks a code released.
func (m *MemoryLicenseCodes) Release(license string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.codes[license]; ok {
		c.Released = true
		m.codes[license] = c
	}
}

// Activate implements LicenseCodeSource.
func (m *MemoryLicenseCodes) Activate(_ context.Context, license string, effectiveAt time.Time) (LicenseCode, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.codes[license]
	if !ok {
		return LicenseCode{}, false, nil
	}
	if c.ActivatedAt == nil {
		at := effectiveAt.UTC()
		c.ActivatedAt = &at
		m.codes[license] = c
	}
	return c, true, nil
}

// License implements LicenseCodeSource.
func (m *MemoryLicenseCodes) License(_ context.Context, license string) (LicenseCode, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.codes[license]
	return c, ok, nil
}

// licenseCodeAnswer is the license APIs' envelope.
type licenseCodeAnswer struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
	Data      any    `json:"data,omitempty"`
}

// authenticLicenseCall reads and authenticates a license-code call and
// returns its license, or answers it.
func (s *Server) authenticLicenseCall(w http.ResponseWriter, r *http.Request) (license, effect string, ok bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, licenseCodeAnswer{ErrorCode: koogallery.OpenAPIRequestError, ErrorMsg: "unreadable request"})
		return "", "", false
	}
	if err := koogallery.VerifyAKSK(r, body, s.cfg.AK, s.cfg.SK, s.cfg.Now(), MaxSkew); err != nil {
		writeJSON(w, http.StatusUnauthorized, licenseCodeAnswer{ErrorCode: koogallery.OpenAPIIllegalToken, ErrorMsg: "illegal token"})
		return "", "", false
	}
	var req struct {
		License      string `json:"license"`
		RealEffectAt string `json:"real_effect_time"`
	}
	if json.Unmarshal(body, &req) != nil || koogallery.ValidLicense(req.License) != nil {
		writeJSON(w, http.StatusBadRequest, licenseCodeAnswer{ErrorCode: koogallery.OpenAPIInvalidParam, ErrorMsg: "license is required"})
		return "", "", false
	}
	return req.License, req.RealEffectAt, true
}

// activateLicense serves 激活授权码.
func (s *Server) activateLicense(w http.ResponseWriter, r *http.Request) {
	license, effect, ok := s.authenticLicenseCall(w, r)
	if !ok {
		return
	}
	at := s.cfg.Now()
	if effect != "" {
		t, err := koogallery.ParseTime(effect)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, licenseCodeAnswer{ErrorCode: koogallery.OpenAPIInvalidParam, ErrorMsg: "real_effect_time must be yyyyMMddHHmmss"})
			return
		}
		at = t
	}
	c, found, err := s.cfg.LicenseCodes.Activate(r.Context(), license, at)
	if !s.licenseFound(w, found, err) {
		return
	}
	info, _ := json.Marshal(map[string]any{
		"status": c.status(s.cfg.Now()), "expire_time": formatOptional(c.expireAt()), "product_id": c.ProductID,
		"amount": c.Amount, "order_id": c.OrderID,
	})
	writeJSON(w, http.StatusOK, licenseCodeAnswer{ErrorCode: koogallery.LicenseAPISuccess, ErrorMsg: "success",
		Data: map[string]string{"license_code_info": string(info)}})
}

// queryLicense serves 查询授权码.
func (s *Server) queryLicense(w http.ResponseWriter, r *http.Request) {
	license, _, ok := s.authenticLicenseCall(w, r)
	if !ok {
		return
	}
	c, found, err := s.cfg.LicenseCodes.License(r.Context(), license)
	if !s.licenseFound(w, found, err) {
		return
	}
	writeJSON(w, http.StatusOK, licenseCodeAnswer{ErrorCode: koogallery.LicenseAPISuccess, ErrorMsg: "success", Data: map[string]any{
		"license_code": c.License, "status": c.status(s.cfg.Now()), "activate_time": formatOptional(c.ActivatedAt),
		"expire_time": formatOptional(c.expireAt()), "product_id": c.ProductID, "order_id": c.OrderID,
	}})
}

// licenseFound answers an unknown code or a failing source.
func (s *Server) licenseFound(w http.ResponseWriter, found bool, err error) bool {
	switch {
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, licenseCodeAnswer{ErrorCode: koogallery.OpenAPIInternalError, ErrorMsg: "internal error"})
		return false
	case !found:
		writeJSON(w, http.StatusOK, licenseCodeAnswer{ErrorCode: koogallery.LicenseAPINotFound, ErrorMsg: "license code notexist"})
		return false
	}
	return true
}

func formatOptional(t *time.Time) string {
	if t == nil {
		return ""
	}
	return koogallery.FormatTime(*t)
}
