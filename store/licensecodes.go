package store

import (
	"context"
	"fmt"
	"time"
)

// License codes the merchant's software activated (License授权码 2.0,
// contract §13.6): the read model its daily checks are answered from.

// License-code states.
const (
	LicenseActive   = "active"
	LicenseFrozen   = "frozen"
	LicenseExpired  = "expired"
	LicenseReleased = "released"
)

// LicenseCode is an activated license code.
type LicenseCode struct {
	License           string     `db:"license" json:"license"`
	Status            string     `db:"status" json:"status"`
	MarketplaceStatus string     `db:"marketplace_status" json:"marketplaceStatus"`
	ProductID         string     `db:"product_id" json:"productId"`
	OrderID           string     `db:"order_id" json:"orderId"`
	Amount            int64      `db:"amount" json:"amount"`
	EffectiveTime     *time.Time `db:"effective_time" json:"effectiveTime,omitempty"`
	ExpireTime        *time.Time `db:"expire_time" json:"expireTime,omitempty"`
	ActivatedAt       time.Time  `db:"activated_at" json:"activatedAt"`
	CheckedAt         time.Time  `db:"checked_at" json:"checkedAt"`
}

const licenseCodeColumns = `license, status, marketplace_status, product_id, order_id, amount, effective_time,
	expire_time, activated_at, checked_at`

// LicenseCode returns a code, or ErrNotFound.
func (s *LicenseCodes) LicenseCode(ctx context.Context, license string) (LicenseCode, error) {
	var out LicenseCode
	err := getOne(ctx, s.x, &out, ErrNotFound, "read license code",
		`SELECT `+licenseCodeColumns+` FROM license_codes WHERE license = $1`, license)
	return out, err
}

// RecordActivation records a code's first activation and returns the
// code as stored: an activation repeated (or racing) returns the first
// one's record, unchanged.
func (s *LicenseCodes) RecordActivation(ctx context.Context, c LicenseCode) (LicenseCode, error) {
	if _, err := s.x.NamedExecContext(ctx, `
		INSERT INTO license_codes (`+licenseCodeColumns+`)
		VALUES (:license, :status, :marketplace_status, :product_id, :order_id, :amount, :effective_time,
			:expire_time, :activated_at, :checked_at)
		ON CONFLICT (license) DO NOTHING`, c); err != nil {
		return LicenseCode{}, fmt.Errorf("record the activation of a license code: %w", err)
	}
	return s.LicenseCode(ctx, c.License)
}

// RecordCheck records what the marketplace last said of a code: its
// status there, the expiry it estimates, and the state that follows (a
// code the marketplace reports expired or released is so here too; one
// it reports alive keeps a freeze).
func (s *LicenseCodes) RecordCheck(ctx context.Context, license, marketplaceStatus, status string, expire *time.Time, at time.Time) (LicenseCode, error) {
	res, err := s.x.ExecContext(ctx, `
		UPDATE license_codes SET marketplace_status = $2,
			status = CASE WHEN $3 = 'active' AND status = 'frozen' THEN status ELSE $3 END,
			expire_time = COALESCE($4, expire_time), checked_at = $5, updated_at = now()
		WHERE license = $1`, license, marketplaceStatus, status, expire, at)
	if err != nil {
		return LicenseCode{}, fmt.Errorf("record a license code's check: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return LicenseCode{}, ErrNotFound
	}
	return s.LicenseCode(ctx, license)
}
