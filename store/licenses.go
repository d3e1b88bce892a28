package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Licenses keeps the licences issued for online-licence instances
// (contract §13.4), one per (instance, eventId, device fingerprint).
type Licenses struct{ x *sqlx.DB }

// LicenseKey names one licence request (contract §13.2).
type LicenseKey struct {
	InstanceID        string
	EventID           string
	DeviceFingerprint string
}

// FingerprintHash is the hex SHA-256 of a device fingerprint: how the key
// holds a fingerprint of up to 1024 characters.
func FingerprintHash(fingerprint string) string {
	sum := sha256.Sum256([]byte(fingerprint))
	return hex.EncodeToString(sum[:])
}

// License is an issued licence and its upload.
type License struct {
	InstanceID        string       `db:"instance_id" json:"instanceId"`
	EventID           string       `db:"event_id" json:"eventId"`
	FingerprintSHA256 string       `db:"fingerprint_sha256" json:"fingerprintSha256"`
	DeviceFingerprint string       `db:"device_fingerprint" json:"deviceFingerprint"`
	Seq               int64        `db:"seq" json:"seq"`
	EffectiveAt       time.Time    `db:"effective_at" json:"effectiveAt"`
	ExpireAt          sql.NullTime `db:"expire_at" json:"-"`
	Kind              string       `db:"kind" json:"type"`
	FileName          string       `db:"file_name" json:"fileName"`
	Content           []byte       `db:"content" json:"-"`
	SHA256            string       `db:"sha256" json:"sha256"`
	IssuedAt          time.Time    `db:"issued_at" json:"issuedAt"`
	UploadAttempts    int          `db:"upload_attempts" json:"uploadAttempts"`
	LastUploadError   string       `db:"last_upload_error" json:"lastUploadError,omitempty"`
	UploadedAt        sql.NullTime `db:"uploaded_at" json:"-"`
	UploadResult      string       `db:"upload_result" json:"uploadResult,omitempty"`
}

// Uploaded reports whether the marketplace accepted the licence.
func (l License) Uploaded() bool { return l.UploadedAt.Valid }

// Key is the licence's request key.
func (l License) Key() LicenseKey {
	return LicenseKey{InstanceID: l.InstanceID, EventID: l.EventID, DeviceFingerprint: l.DeviceFingerprint}
}

const licenseColumns = `instance_id, event_id, fingerprint_sha256, device_fingerprint, seq, effective_at, expire_at,
	kind, file_name, content, sha256, issued_at, upload_attempts, last_upload_error, uploaded_at, upload_result`

// Issue stores a licence unless its request already has one, and returns
// the stored licence: the first one issued for a request is the one kept
// (fresh reports whether it was this one).
func (s *Licenses) Issue(ctx context.Context, l License) (stored License, fresh bool, err error) {
	l.FingerprintSHA256 = FingerprintHash(l.DeviceFingerprint)
	res, err := s.x.ExecContext(ctx, `
		INSERT INTO licenses (instance_id, event_id, fingerprint_sha256, device_fingerprint, seq, effective_at, expire_at,
			kind, file_name, content, sha256)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (instance_id, event_id, fingerprint_sha256) DO NOTHING`,
		l.InstanceID, l.EventID, l.FingerprintSHA256, l.DeviceFingerprint, l.Seq, l.EffectiveAt.UTC(), l.ExpireAt,
		l.Kind, l.FileName, l.Content, l.SHA256)
	if err != nil {
		return License{}, false, fmt.Errorf("issue licence %s/%s: %w", l.InstanceID, l.EventID, err)
	}
	n, _ := res.RowsAffected()
	stored, err = s.Get(ctx, l.Key())
	return stored, n == 1, err
}

// Get returns the licence of a request, or ErrNotFound.
func (s *Licenses) Get(ctx context.Context, k LicenseKey) (License, error) {
	var l License
	err := getOne(ctx, s.x, &l, ErrNotFound, fmt.Sprintf("read licence %s/%s", k.InstanceID, k.EventID),
		`SELECT `+licenseColumns+` FROM licenses WHERE instance_id = $1 AND event_id = $2 AND fingerprint_sha256 = $3`,
		k.InstanceID, k.EventID, FingerprintHash(k.DeviceFingerprint))
	return l, err
}

// UploadFailed counts a failed upload and keeps its error.
func (s *Licenses) UploadFailed(ctx context.Context, k LicenseKey, reason string) error {
	_, err := s.x.ExecContext(ctx, `
		UPDATE licenses SET upload_attempts = upload_attempts + 1, last_upload_error = $4
		WHERE instance_id = $1 AND event_id = $2 AND fingerprint_sha256 = $3`,
		k.InstanceID, k.EventID, FingerprintHash(k.DeviceFingerprint), reason)
	if err != nil {
		return fmt.Errorf("record failed upload of licence %s/%s: %w", k.InstanceID, k.EventID, err)
	}
	return nil
}

// MarkUploaded records the marketplace's acceptance of the licence; a
// second call keeps the first time.
func (s *Licenses) MarkUploaded(ctx context.Context, k LicenseKey, result string) error {
	_, err := s.x.ExecContext(ctx, `
		UPDATE licenses SET upload_attempts = upload_attempts + 1, last_upload_error = '',
			uploaded_at = COALESCE(uploaded_at, now()), upload_result = $4
		WHERE instance_id = $1 AND event_id = $2 AND fingerprint_sha256 = $3`,
		k.InstanceID, k.EventID, FingerprintHash(k.DeviceFingerprint), result)
	if err != nil {
		return fmt.Errorf("record upload of licence %s/%s: %w", k.InstanceID, k.EventID, err)
	}
	return nil
}

// Devices counts the distinct device fingerprints that hold a licence of
// the instance, leaving out one fingerprint (the asking device's own, which
// uses no more quota by asking again).
func (s *Licenses) Devices(ctx context.Context, instanceID, except string) (int, error) {
	var n int
	err := s.x.GetContext(ctx, &n, `
		SELECT count(DISTINCT fingerprint_sha256) FROM licenses WHERE instance_id = $1 AND fingerprint_sha256 <> $2`,
		instanceID, FingerprintHash(except))
	if err != nil {
		return 0, fmt.Errorf("count licensed devices of %s: %w", instanceID, err)
	}
	return n, nil
}

// Of lists an instance's licences, oldest first.
func (s *Licenses) Of(ctx context.Context, instanceID string) ([]License, error) {
	var out []License
	err := sqlx.SelectContext(ctx, s.x, &out,
		`SELECT `+licenseColumns+` FROM licenses WHERE instance_id = $1 ORDER BY issued_at, event_id`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("list licences of %s: %w", instanceID, err)
	}
	return out, nil
}
