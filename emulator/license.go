package emulator

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// ActLicenseRequest: a buyer's device asks for a licence of an online
// licence purchase (getLicenseAsync, contract §13.2).
const ActLicenseRequest = "license-request"

// LicenseRequestView is a device's licence request and the merchant's
// answer, as the console shows it.
type LicenseRequestView struct {
	EventID     string    `json:"eventId"`
	Fingerprint string    `json:"deviceFingerprint,omitempty"`
	ResultCode  string    `json:"resultCode"`
	ResultMsg   string    `json:"resultMsg,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
	// Uploads are the licences the merchant uploaded for the event (the
	// console fills them in).
	Uploads []LicenseUploadView `json:"uploads,omitempty"`
}

// LicenseUploadView is a licence received through the upload open API.
type LicenseUploadView struct {
	Type     string `json:"type"`
	FileName string `json:"fileName"`
	SHA256   string `json:"sha256"`
	// Characters is the licence when it is text; a binary file shows only
	// its SHA-256 and size.
	Characters string    `json:"characters,omitempty"`
	Size       int       `json:"size"`
	ReceivedAt time.Time `json:"receivedAt"`
}

// LicenseRequests is the purchases' licenses column.
type LicenseRequests []LicenseRequestView

// Value stores the requests as JSON.
func (l LicenseRequests) Value() (driver.Value, error) { return json.Marshal(l) }

// Scan reads the licenses column.
func (l *LicenseRequests) Scan(src any) error {
	switch b := src.(type) {
	case nil:
		*l = nil
		return nil
	case []byte:
		return json.Unmarshal(b, l)
	}
	return fmt.Errorf("licenses column: unexpected %T", src)
}

// validateLicense says whether a device may ask for a licence now.
func (p *purchase) validateLicense(a Action) error {
	switch {
	case !p.Buy.OnlineLicense:
		return errors.New("license-request needs an online licence purchase (buy -online-license)")
	case len(a.Fingerprint) > koogallery.MaxFingerprintLen:
		return fmt.Errorf("the fingerprint is longer than %d characters", koogallery.MaxFingerprintLen)
	case len(a.EventID) > 64:
		return errors.New("the event ID is longer than 64 characters")
	case p.State != StateInService:
		return fmt.Errorf("%s is not possible while the purchase is %s", a.Kind, p.State)
	}
	return nil
}

// licenseRequest plays a device asking for its licence: getLicenseAsync
// from now (real time, as the merchant's validity is) to the purchase's
// expiry. The merchant answers 000004 and uploads the licence later, or
// 000000 when it has, or refuses with 000900–000903, the device's answer.
func (w *purchaseWorkflow) licenseRequest(ctx workflow.Context, a Action) {
	p := w.p
	event := a.EventID
	if event == "" {
		event = fmt.Sprintf("EV%s%03d", p.ID, len(p.Licenses)+1)
	}
	body := map[string]any{
		"activity": string(koogallery.ActivityGetLicenseAsync), "instanceId": p.InstanceID,
		"effectiveTime": koogallery.FormatLicenseTime(workflow.Now(ctx)), "eventId": event,
	}
	if p.ExpireAt != nil {
		body["expireTime"] = koogallery.FormatLicenseTime(p.Clock.RealAt(*p.ExpireAt))
	}
	if a.Fingerprint != "" {
		body["deviceFingerprint"] = a.Fingerprint
	}
	res, ok := w.call(ctx, koogallery.ActivityGetLicenseAsync, body)
	if !ok {
		return // recorded as a failed call, restartable
	}
	p.Licenses = append(p.Licenses, LicenseRequestView{EventID: event, Fingerprint: a.Fingerprint,
		ResultCode: res.ResultCode, ResultMsg: res.ResultMsg, RequestedAt: w.now(ctx)})
	device := "without a fingerprint"
	if a.Fingerprint != "" {
		device = "with fingerprint " + a.Fingerprint
	}
	switch koogallery.ResultCode(res.ResultCode) {
	case koogallery.ResultSuccess:
		w.record(ctx, "license", fmt.Sprintf("A device %s asked for a licence (event %s): issued (000000).", device, event))
	case koogallery.ResultProcessing:
		w.record(ctx, "license", fmt.Sprintf("A device %s asked for a licence (event %s): being issued (000004); the merchant uploads it.", device, event))
	default:
		w.record(ctx, "license-refused", fmt.Sprintf("A device %s asked for a licence (event %s): refused %s %s.", device, event, res.ResultCode, res.ResultMsg))
	}
	w.save(ctx)
}

// licenseRefusal reports a getLicenseAsync answer that is the merchant's
// verdict on the device (000900–000903), not a failed call.
func licenseRefusal(code string) bool {
	switch koogallery.ResultCode(code) {
	case koogallery.ResultLicenseQuotaShort, koogallery.ResultLicenseOutOfWindow,
		koogallery.ResultLicenseNeedsExpiry, koogallery.ResultLicenseNeedsDevice:
		return true
	}
	return false
}

// licenseSink keeps the licences merchants upload, in the emulator's
// database.
type licenseSink struct{ db *Store }

func (s licenseSink) StoreLicense(ctx context.Context, u mockapi.LicenseUpload) error {
	return s.db.SaveLicenseUpload(ctx, u)
}

// SaveLicenseUpload keeps a licence upload as received.
func (s *Store) SaveLicenseUpload(ctx context.Context, u mockapi.LicenseUpload) error {
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO emulator.licenses (event_id, kind, file_name, sha256, content, received_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, u.EventID, u.Type, u.FileName, u.SHA256, u.Content, u.ReceivedAt)
	if err != nil {
		return fmt.Errorf("keep the licence of event %s: %w", u.EventID, err)
	}
	return nil
}

// LicenseUploads returns the licences uploaded for an event, oldest first.
func (s *Store) LicenseUploads(ctx context.Context, eventID string) ([]LicenseUploadView, error) {
	var rows []struct {
		Kind       string    `db:"kind"`
		FileName   string    `db:"file_name"`
		SHA256     string    `db:"sha256"`
		Content    []byte    `db:"content"`
		ReceivedAt time.Time `db:"received_at"`
	}
	if err := s.x.SelectContext(ctx, &rows, `SELECT kind, file_name, sha256, content, received_at
		FROM emulator.licenses WHERE event_id = $1 ORDER BY id`, eventID); err != nil {
		return nil, fmt.Errorf("read the licences of event %s: %w", eventID, err)
	}
	out := make([]LicenseUploadView, 0, len(rows))
	for _, r := range rows {
		v := LicenseUploadView{Type: r.Kind, FileName: r.FileName, SHA256: r.SHA256, Size: len(r.Content), ReceivedAt: r.ReceivedAt}
		if r.Kind == koogallery.LicenseTypeCharacters && utf8.Valid(r.Content) {
			v.Characters = string(r.Content)
		}
		out = append(out, v)
	}
	return out, nil
}
