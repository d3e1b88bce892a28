package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
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
	// What the code's workflow saved (SaveLicenseCodeState).
	FrozenAt    *time.Time `db:"frozen_at" json:"frozenAt,omitempty"`
	ReleasedAt  *time.Time `db:"released_at" json:"releasedAt,omitempty"`
	RetainUntil *time.Time `db:"retain_until" json:"retainUntil,omitempty"`
	LastError   string     `db:"last_error" json:"lastError,omitempty"`
	Revision    int64      `db:"revision" json:"revision"`
}

const licenseCodeColumns = `license, status, marketplace_status, product_id, order_id, amount, effective_time,
	expire_time, activated_at, checked_at, frozen_at, released_at, retain_until, last_error, revision`

// ErrUnknownLicenseCode is returned for a callback naming a license code
// no activation recorded (contract §13.5 answers it 000003).
var ErrUnknownLicenseCode = errors.New("unknown license code")

// LicenseCode returns a code, or ErrNotFound.
func (s *LicenseCodes) LicenseCode(ctx context.Context, license string) (LicenseCode, error) {
	var out LicenseCode
	err := getOne(ctx, s.x, &out, ErrNotFound, "read license code",
		`SELECT `+licenseCodeColumns+` FROM license_codes WHERE license = $1`, license)
	return out, err
}

// RecordActivation records a code's first activation and, in the same
// transaction, the inbox row that starts the code's workflow (activation),
// so that no activated code goes without its lifecycle. It returns the
// code as stored and that row: an activation repeated (or racing) returns
// the first one's record, unchanged, and its row.
func (s *LicenseCodes) RecordActivation(ctx context.Context, c LicenseCode, activation NewCallback) (LicenseCode, Recorded, error) {
	var rec Recorded
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		if _, err := tx.NamedExecContext(ctx, `
			INSERT INTO license_codes (license, status, marketplace_status, product_id, order_id, amount, effective_time,
				expire_time, activated_at, checked_at)
			VALUES (:license, :status, :marketplace_status, :product_id, :order_id, :amount, :effective_time,
				:expire_time, :activated_at, :checked_at)
			ON CONFLICT (license) DO NOTHING`, c); err != nil {
			return fmt.Errorf("record the activation of a license code: %w", err)
		}
		var err error
		rec.Callback, rec.Fresh, err = insertCallback(ctx, tx, activation)
		return err
	})
	if err != nil {
		return LicenseCode{}, Recorded{}, err
	}
	stored, err := s.LicenseCode(ctx, c.License)
	return stored, rec, err
}

// LicenseCodeKey returns a code as activated: what its workflow starts
// from.
func (s *Callbacks) LicenseCodeKey(ctx context.Context, license string) (LicenseCode, error) {
	return (&LicenseCodes{s.x}).LicenseCode(ctx, license)
}

// RecordCheck records what the marketplace last said of a code: its
// status there, the expiry it estimates, and the state that follows (a
// code the marketplace reports expired or released is so here too; one
// it reports alive keeps a freeze).
func (s *LicenseCodes) RecordCheck(ctx context.Context, license, marketplaceStatus, status string, expire *time.Time, at time.Time) (LicenseCode, error) {
	res, err := s.x.ExecContext(ctx, `
		UPDATE license_codes SET marketplace_status = $2,
			status = CASE WHEN $3 = 'active' AND status = 'frozen' THEN status
				WHEN status = 'released' THEN status ELSE $3 END,
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

// LicenseCodeState is what a code's workflow decided: the state the
// software's checks are answered from.
type LicenseCodeState struct {
	License     string
	Status      string
	ExpireTime  *time.Time
	FrozenAt    *time.Time
	ReleasedAt  *time.Time
	RetainUntil *time.Time
	LastError   string
	// Revision orders the saves: one older than the last saved changes
	// nothing (a retried activity after a newer save).
	Revision int64
}

// SaveLicenseCodeState saves what the code's workflow decided, unless a
// newer revision was saved already.
func (s *LicenseCodes) SaveLicenseCodeState(ctx context.Context, st LicenseCodeState) error {
	if _, err := s.x.ExecContext(ctx, `
		UPDATE license_codes SET status = $2, expire_time = COALESCE($3, expire_time), frozen_at = $4,
			released_at = $5, retain_until = $6, last_error = $7, revision = $8, updated_at = now()
		WHERE license = $1 AND revision < $8`,
		st.License, st.Status, st.ExpireTime, st.FrozenAt, st.ReleasedAt, st.RetainUntil, st.LastError, st.Revision); err != nil {
		return fmt.Errorf("save the state of license code %s: %w", st.License, err)
	}
	return nil
}

// RecordLicenseCodeCallback records a license-code callback (contract
// §13.5), serialised with the code's other callbacks by a row lock on the
// code, as RecordCallback does for an instance. It returns
// ErrUnknownLicenseCode for a code no activation recorded.
func (s *Callbacks) RecordLicenseCodeCallback(ctx context.Context, in NewCallback) (Recorded, error) {
	var out Recorded
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		var code struct {
			LastStatus    sql.NullString `db:"last_status"`
			StatusEpisode int            `db:"status_episode"`
		}
		if err := getOne(ctx, tx, &code, ErrUnknownLicenseCode, fmt.Sprintf("read license code %s", in.License),
			`SELECT last_status, status_episode FROM license_codes WHERE license = $1 FOR NO KEY UPDATE`, in.License); err != nil {
			return err
		}
		// A code is never a debugger's: its activation was real.
		last := StatusEpisode{Status: code.LastStatus.String, Number: code.StatusEpisode}
		if err := keyStatusChange(ctx, tx, &in, false, last, `
			UPDATE license_codes SET last_status = $2, status_episode = $3 WHERE license = $1`, in.License); err != nil {
			return err
		}
		var err error
		out.Callback, out.Fresh, err = insertCallback(ctx, tx, in)
		return err
	})
	if errors.Is(err, ErrUnknownLicenseCode) {
		return Recorded{}, err
	}
	if err != nil {
		return Recorded{}, fmt.Errorf("record callback %s: %w", in.DedupKey, err)
	}
	return out, nil
}
