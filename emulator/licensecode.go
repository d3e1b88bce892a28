package emulator

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// License codes (License授权码 2.0, contract §13.5, §13.6): the buyer
// receives a code; the merchant's software activates it through the open
// API, and its validity counts from then. The emulator sells them and
// serves the activate and query APIs; it does not play the code's
// callbacks (renewal, freeze, release) yet.

// StateLicenseIssued is a license-code purchase: the code is the buyer's.
const StateLicenseIssued = "license_issued"

// IssueLicenseCodeActivity keeps a sold code for the open API.
const IssueLicenseCodeActivity = "EmulatorIssueLicenseCode"

// LicenseCodeView is a sold code as the console shows it.
type LicenseCodeView struct {
	License   string `json:"license" db:"license"`
	ProductID string `json:"productId" db:"product_id"`
	OrderID   string `json:"orderId" db:"order_id"`
	Amount    int64  `json:"amount" db:"amount"`
	// ValidFor is the real duration of its validity from the activation.
	ValidForMS  int64      `json:"validForMs" db:"valid_for_ms"`
	ActivatedAt *time.Time `json:"activatedAt,omitempty" db:"activated_at"`
	Released    bool       `json:"released" db:"released"`
	PurchaseID  string     `json:"purchaseId" db:"purchase_id"`
}

// ExpireTime is when an activated code's validity ends (real time).
func (v LicenseCodeView) ExpireTime() *time.Time {
	if v.ActivatedAt == nil {
		return nil
	}
	t := v.ActivatedAt.Add(time.Duration(v.ValidForMS) * time.Millisecond)
	return &t
}

// licenseCodeOf is the code sold with a purchase: derived from its ID, so
// that a replay makes the same code.
func licenseCodeOf(purchaseID string) string {
	sum := sha256.Sum256([]byte("license-code:" + purchaseID))
	return "PL" + strings.ToUpper(hex.EncodeToString(sum[:8]))
}

// issueLicenseCode sells the purchase's code: the buyer receives it, and
// the marketplace waits for the merchant's software to activate it.
func (w *purchaseWorkflow) issueLicenseCode(ctx workflow.Context, o Order, orderedAt time.Time) {
	p := w.p
	validFor := p.Clock.Real(p.ExpireAt.Sub(orderedAt))
	code := LicenseCodeView{License: licenseCodeOf(p.ID), PurchaseID: p.ID, ProductID: o.ProductID, OrderID: o.OrderID,
		Amount: p.Spec.Quantity, ValidForMS: validFor.Milliseconds()}
	if err := workflow.ExecuteActivity(localOptions(ctx), IssueLicenseCodeActivity, code).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("License code not saved", "error", err)
	}
	p.State = StateLicenseIssued
	w.record(ctx, "license-issued", fmt.Sprintf("License code %s issued to the buyer: %s %s from its activation (%s real), "+
		"which the merchant's software asks for through the open API (激活授权码).", code.License, describePeriod(p.Buy), "of validity", validFor))
	w.save(ctx)
}

// IssueLicenseCode keeps a sold code.
func (a *Activities) IssueLicenseCode(ctx context.Context, code LicenseCodeView) error {
	return a.Store.SaveLicenseCode(ctx, code)
}

// SaveLicenseCode keeps a sold code; saving it again changes nothing.
func (s *Store) SaveLicenseCode(ctx context.Context, c LicenseCodeView) error {
	if _, err := s.x.NamedExecContext(ctx, `
		INSERT INTO emulator.license_codes (license, purchase_id, product_id, order_id, amount, valid_for_ms)
		VALUES (:license, :purchase_id, :product_id, :order_id, :amount, :valid_for_ms)
		ON CONFLICT (license) DO NOTHING`, c); err != nil {
		return fmt.Errorf("save license code %s: %w", c.License, err)
	}
	return nil
}

const licenseCodeColumns = `license, purchase_id, product_id, order_id, amount, valid_for_ms, activated_at, released`

// LicenseCodeOf returns a purchase's code, or ErrNotFound.
func (s *Store) LicenseCodeOf(ctx context.Context, purchaseID string) (LicenseCodeView, error) {
	var c LicenseCodeView
	err := s.x.GetContext(ctx, &c, `SELECT `+licenseCodeColumns+` FROM emulator.license_codes WHERE purchase_id = $1`, purchaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return LicenseCodeView{}, ErrNotFound
	}
	return c, err
}

// licenseCodeSource serves the sold codes to the open API.
type licenseCodeSource struct{ db *Store }

// Activate implements mockapi.LicenseCodeSource: the first activation
// counts.
func (l licenseCodeSource) Activate(ctx context.Context, license string, effectiveAt time.Time) (mockapi.LicenseCode, bool, error) {
	var c LicenseCodeView
	err := l.db.x.GetContext(ctx, &c, `
		UPDATE emulator.license_codes SET activated_at = COALESCE(activated_at, $2)
		WHERE license = $1 RETURNING `+licenseCodeColumns, license, effectiveAt.UTC())
	return mockCode(c, err)
}

// License implements mockapi.LicenseCodeSource.
func (l licenseCodeSource) License(ctx context.Context, license string) (mockapi.LicenseCode, bool, error) {
	var c LicenseCodeView
	err := l.db.x.GetContext(ctx, &c, `SELECT `+licenseCodeColumns+` FROM emulator.license_codes WHERE license = $1`, license)
	return mockCode(c, err)
}

func mockCode(c LicenseCodeView, err error) (mockapi.LicenseCode, bool, error) {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return mockapi.LicenseCode{}, false, nil
	case err != nil:
		return mockapi.LicenseCode{}, false, fmt.Errorf("read license code: %w", err)
	}
	return mockapi.LicenseCode{License: c.License, ProductID: c.ProductID, OrderID: c.OrderID, Amount: c.Amount,
		Validity: time.Duration(c.ValidForMS) * time.Millisecond, ActivatedAt: c.ActivatedAt, Released: c.Released}, true, nil
}

// licenseCodeStatus is the open API's status of a code now, for the
// console.
func licenseCodeStatus(c LicenseCodeView, now time.Time) string {
	switch exp := c.ExpireTime(); {
	case c.Released:
		return koogallery.LicenseReleased
	case c.ActivatedAt == nil:
		return "NOT_ACTIVATED"
	case !now.Before(*exp):
		return koogallery.LicenseExpired
	}
	return koogallery.LicenseAlive
}
