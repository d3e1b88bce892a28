package emulator

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// License codes (License授权码 2.0, contract §13.5, §13.6): the buyer
// receives a code; the merchant's software activates it through the open
// API, and its validity counts from then. The emulator sells them, serves
// the activate and query APIs, and plays the rest of a code's life on its
// clock with the three callbacks: renewals and refunded renewal periods
// (refreshLicenseCode), the freeze at expiry and the unfreeze by a renewal
// (updateLicenseCodeStatus), and the release at the end of the retention
// or by unsubscription (releaseLicenseCode). Each is retried every 2
// minutes until answered 000000, 60 times (koogallery.Deliveries).
//
// A code that is not activated has no expiry clock: nothing freezes it or
// releases it. Its renewals, refunds and unsubscription change what the
// marketplace keeps (the open API's activation answer then tells the
// merchant the validity, or RELEASED), but no callback is sent: the
// merchant learns a code only when it is activated, so it would answer
// 000003 (the code does not exist) to every attempt, and a renewal's
// expireTime, made before the validity starts to count, would contradict
// the expiry the activation then reports.

// StateLicenseIssued is a license-code purchase whose code is the buyer's,
// not activated yet; once activated it is in service, frozen at expiry,
// then released (or unsubscribed), as a SaaS purchase.
const StateLicenseIssued = "license_issued"

// IssueLicenseCodeActivity keeps a sold code for the open API.
const IssueLicenseCodeActivity = "EmulatorIssueLicenseCode"

// LicenseCodeActivationActivity reads when a code was activated.
const LicenseCodeActivationActivity = "EmulatorLicenseCodeActivation"

// LicenseActivatedSignal tells a license-code purchase that the merchant's
// software activated its code through the open API; its payload is the
// activation time (time.Time, real), as the open API recorded it.
const LicenseActivatedSignal = "license-activated"

// licenseCodeLifeChange is the GetVersion change ID of the code's life
// after its issue: a purchase whose code was issued before it ended there.
const licenseCodeLifeChange = "license-code-life"

// actLicenseActivated is the activation, queued among the purchase's
// actions; it is not a console action (not in Actions).
const actLicenseActivated = "license-activated"

// LicenseCodeView is a sold code as the console shows it.
type LicenseCodeView struct {
	License   string `json:"license" db:"license"`
	ProductID string `json:"productId" db:"product_id"`
	OrderID   string `json:"orderId" db:"order_id"`
	Amount    int64  `json:"amount" db:"amount"`
	// ValidFor is the real duration of its validity from the activation:
	// renewals lengthen it, refunded renewal periods shorten it.
	ValidForMS  int64      `json:"validForMs" db:"valid_for_ms"`
	ActivatedAt *time.Time `json:"activatedAt,omitempty" db:"activated_at"`
	Released    bool       `json:"released" db:"released"`
	PurchaseID  string     `json:"purchaseId" db:"purchase_id"`
	// Calls are the callbacks the marketplace sent about the code.
	Calls LicenseCodeCalls `json:"calls,omitempty" db:"calls"`
}

// LicenseCodeCall is a license-code callback as the console lists it.
type LicenseCodeCall struct {
	// MessageID names the call in the failed calls (生产接口消息).
	MessageID string `json:"messageId"`
	Activity  string `json:"activity"`
	// Detail is what the call says: the scene and the expireTime, the
	// status, or the unsubscription order.
	Detail string    `json:"detail"`
	SentAt time.Time `json:"sentAt"`
	// Result is the answer: "" while the marketplace is still retrying,
	// 000000, or CallFailedForGood when the retries ran out.
	Result string `json:"result,omitempty"`
}

// CallFailedForGood is the Result of a call whose retries ran out; the
// console can restart it.
const CallFailedForGood = "failed"

// LicenseCodeCalls is the license_codes.calls column.
type LicenseCodeCalls []LicenseCodeCall

// Value stores the calls as JSON.
func (l LicenseCodeCalls) Value() (driver.Value, error) {
	if l == nil {
		l = LicenseCodeCalls{}
	}
	return json.Marshal(l)
}

// Scan reads the calls column.
func (l *LicenseCodeCalls) Scan(src any) error {
	switch b := src.(type) {
	case nil:
		*l = nil
		return nil
	case []byte:
		return json.Unmarshal(b, l)
	}
	return fmt.Errorf("calls column: unexpected %T", src)
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

// codeState is a license-code purchase's code as its workflow keeps it.
type codeState struct {
	License string
	// Base is the real instant the validity counts from: the order's
	// until the code is activated, then the activation's.
	Base time.Time
	// ValidFor is the validity from Base, in whole milliseconds, as the
	// database keeps it: the open API and the workflow then agree on the
	// expiry to the millisecond.
	ValidFor  time.Duration
	Activated bool
	Released  bool
	Calls     []LicenseCodeCall `json:",omitempty"`
}

// expiry is when the validity ends (real); before the activation, when it
// would end had the code been activated at the order.
func (c *codeState) expiry() time.Time { return c.Base.Add(c.ValidFor) }

// update is what the workflow writes of the code.
func (c *codeState) update() *LicenseCodeUpdate {
	return &LicenseCodeUpdate{License: c.License, ValidForMS: c.ValidFor.Milliseconds(), Released: c.Released,
		Calls: slices.Clone(c.Calls)}
}

// LicenseCodeUpdate is a code's state as its purchase's workflow writes it.
type LicenseCodeUpdate struct {
	License    string
	ValidForMS int64
	Released   bool
	Calls      LicenseCodeCalls
}

// issueLicenseCode sells the purchase's code: the buyer receives it, and
// the marketplace waits for the merchant's software to activate it. The
// code has no expiry until then.
func (w *purchaseWorkflow) issueLicenseCode(ctx workflow.Context, o Order, orderedAt time.Time) {
	p := w.p
	validFor := p.Clock.Real(p.ExpireAt.Sub(orderedAt)).Truncate(time.Millisecond)
	p.Code = &codeState{License: licenseCodeOf(p.ID), Base: p.Clock.RealAt(orderedAt), ValidFor: validFor}
	code := LicenseCodeView{License: p.Code.License, PurchaseID: p.ID, ProductID: o.ProductID, OrderID: o.OrderID,
		Amount: p.Spec.Quantity, ValidForMS: validFor.Milliseconds()}
	if err := workflow.ExecuteActivity(localOptions(ctx), IssueLicenseCodeActivity, code).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("License code not saved", "error", err)
	}
	p.State, p.ExpireAt = StateLicenseIssued, nil
	w.record(ctx, "license-issued", fmt.Sprintf("License code %s issued to the buyer: %s %s from its activation (%s real), "+
		"which the merchant's software asks for through the open API (激活授权码).", code.License, describePeriod(p.Buy), "of validity", validFor))
	w.save(ctx)
}

// IssueLicenseCode keeps a sold code.
func (a *Activities) IssueLicenseCode(ctx context.Context, code LicenseCodeView) error {
	return a.Store.SaveLicenseCode(ctx, code)
}

// LicenseCodeActivation returns when a code was activated, nil when it
// is not.
func (a *Activities) LicenseCodeActivation(ctx context.Context, license string) (*time.Time, error) {
	var at *time.Time
	if err := a.Store.x.GetContext(ctx, &at, `SELECT activated_at FROM emulator.license_codes WHERE license = $1`, license); err != nil {
		return nil, fmt.Errorf("read the activation of license code %s: %w", license, err)
	}
	return at, nil
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

const licenseCodeColumns = `license, purchase_id, product_id, order_id, amount, valid_for_ms, activated_at, released, calls`

// LicenseCodeOf returns a purchase's code, or ErrNotFound.
func (s *Store) LicenseCodeOf(ctx context.Context, purchaseID string) (LicenseCodeView, error) {
	var c LicenseCodeView
	err := s.x.GetContext(ctx, &c, `SELECT `+licenseCodeColumns+` FROM emulator.license_codes WHERE purchase_id = $1`, purchaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return LicenseCodeView{}, ErrNotFound
	}
	return c, err
}

// UpdateLicenseCode writes what the purchase's workflow changed of its
// code at a revision of the purchase; an older revision changes nothing.
// The activation is the open API's, and stays as it is.
func (s *Store) UpdateLicenseCode(ctx context.Context, u LicenseCodeUpdate, revision int64) error {
	if _, err := s.x.ExecContext(ctx, `
		UPDATE emulator.license_codes SET valid_for_ms = $2, released = $3, calls = $4, revision = $5
		WHERE license = $1 AND revision < $5`, u.License, u.ValidForMS, u.Released, u.Calls, revision); err != nil {
		return fmt.Errorf("update license code %s: %w", u.License, err)
	}
	return nil
}

// licenseCodeSource serves the sold codes to the open API. activated, when
// set, tells the code's purchase of its first activation.
type licenseCodeSource struct {
	db        *Store
	activated func(ctx context.Context, purchaseID string, at time.Time)
}

// Activate implements mockapi.LicenseCodeSource: the first activation
// counts, and starts the code's clock in its purchase's workflow.
func (l *licenseCodeSource) Activate(ctx context.Context, license string, effectiveAt time.Time) (mockapi.LicenseCode, bool, error) {
	var c LicenseCodeView
	err := l.db.x.GetContext(ctx, &c, `
		UPDATE emulator.license_codes SET activated_at = $2
		WHERE license = $1 AND activated_at IS NULL RETURNING `+licenseCodeColumns, license, effectiveAt.UTC())
	if errors.Is(err, sql.ErrNoRows) {
		// Unknown, or activated already: the first activation stands.
		return l.License(ctx, license)
	}
	if err == nil && l.activated != nil {
		l.activated(ctx, c.PurchaseID, *c.ActivatedAt)
	}
	return mockCode(c, err)
}

// License implements mockapi.LicenseCodeSource.
func (l *licenseCodeSource) License(ctx context.Context, license string) (mockapi.LicenseCode, bool, error) {
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
