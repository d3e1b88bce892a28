package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
)

// LicenseUploader uploads a licence to the marketplace
// (koogallery.OpenAPIClient, contract §13.3).
type LicenseUploader interface {
	UploadLicense(ctx context.Context, eventID string, f koogallery.LicenseFile) error
}

// LicenseRequest is a getLicenseAsync as the server keeps it (the
// callback's payload, contract §13.2).
type LicenseRequest struct {
	EventID           string     `json:"eventId"`
	DeviceFingerprint string     `json:"deviceFingerprint,omitempty"`
	EffectiveTime     time.Time  `json:"effectiveTime"`
	ExpireTime        *time.Time `json:"expireTime,omitempty"`
	// InAnswer marks a 联营License's licence (V1 getLicense, contract
	// §1.11): it is given back in the call's answer, never uploaded.
	InAnswer bool `json:"inAnswer,omitempty"`
}

// NewLicenseRequest is what the server keeps of a getLicenseAsync.
func NewLicenseRequest(r *koogallery.GetLicenseAsyncRequest) LicenseRequest {
	l := LicenseRequest{EventID: r.EventID, DeviceFingerprint: r.DeviceFingerprint, EffectiveTime: r.EffectiveAt()}
	if t := r.ExpireAt(); !t.IsZero() {
		l.ExpireTime = &t
	}
	return l
}

// LicenseOperationID is the idempotency key of a licence request, the
// same for the generator and in the inbox: the fingerprint, which may be
// 1024 characters of anything, appears as the first 16 hex digits of its
// SHA-256.
func LicenseOperationID(instanceID, eventID, fingerprint string) string {
	return fmt.Sprintf("license:%s:%s:%s", instanceID, eventID, store.FingerprintHash(fingerprint)[:16])
}

// LicenseInput names a recorded getLicenseAsync to apply. Quota is how
// many devices the order allows (0: no limit, for a debug instance without
// an order).
type LicenseInput struct {
	InstanceID string
	Seq        int64
	Debug      bool
	Quota      int64
}

// LicenseIssued says what applying a licence request did, for the
// timeline. Refused is set when no licence was issued, with the reason.
type LicenseIssued struct {
	Summary string
	Refused string `json:",omitempty"`
}

// errTypeLicenseUpload marks an upload the marketplace refused for good.
const errTypeLicenseUpload = "LicenseUploadRefused"

// IssueLicense applies a recorded getLicenseAsync (contract §13.4): unless
// the request has a licence already, it asks the merchant's generator for
// one and stores it (the first stored is kept, whatever a retry of the
// generator answers), then uploads the stored licence unless the
// marketplace has it. Every part is idempotent, so a retry repeats nothing
// that succeeded.
func (a *Activities) IssueLicense(ctx context.Context, in LicenseInput) (LicenseIssued, error) {
	defer heartbeatWhileRunning(ctx)()
	payload, _, err := a.Store.Callbacks.Payload(ctx, in.Seq)
	if err != nil {
		return LicenseIssued{}, err
	}
	var req LicenseRequest
	if err := json.Unmarshal(payload, &req); err != nil || req.EventID == "" {
		return LicenseIssued{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("callback %d holds no readable licence request", in.Seq), "BadLicenseRequest", nil)
	}
	key := store.LicenseKey{InstanceID: in.InstanceID, EventID: req.EventID, DeviceFingerprint: req.DeviceFingerprint}
	lic, err := a.Store.Licenses.Get(ctx, key)
	switch {
	case err == nil && lic.Uploaded():
		return LicenseIssued{Summary: fmt.Sprintf("Licence for event %s (%s) was uploaded before; nothing sent again.",
			req.EventID, device(req.DeviceFingerprint))}, nil
	case err == nil && req.InAnswer:
		return LicenseIssued{Summary: fmt.Sprintf("Licence of order %s was issued before; getLicense answers it.", req.EventID)}, nil
	case errors.Is(err, store.ErrNotFound):
		var refused string
		if lic, refused, err = a.issue(ctx, in, req, key); err != nil || refused != "" {
			return LicenseIssued{Refused: refused}, err
		}
	case err != nil:
		return LicenseIssued{}, err
	}
	if req.InAnswer {
		return LicenseIssued{Summary: fmt.Sprintf("Licence of order %s issued (%s, SHA-256 %s…); getLicense answers it.",
			req.EventID, lic.Kind, lic.SHA256[:12])}, nil
	}
	file := koogallery.LicenseFile{Type: lic.Kind, FileName: lic.FileName, Content: lic.Content}
	if err := a.Licenses.UploadLicense(ctx, req.EventID, file); err != nil {
		msg := fmt.Sprintf("upload licence of event %s: %v", req.EventID, err)
		if rerr := a.Store.Licenses.UploadFailed(ctx, key, msg); rerr != nil {
			return LicenseIssued{}, errors.Join(err, rerr)
		}
		if !koogallery.IsRetryable(err) {
			return LicenseIssued{}, temporal.NewNonRetryableApplicationError(msg, errTypeLicenseUpload, nil)
		}
		return LicenseIssued{}, errors.New(msg)
	}
	if err := a.Store.Licenses.MarkUploaded(ctx, key, koogallery.LicenseUploadSuccess); err != nil {
		return LicenseIssued{}, err
	}
	return LicenseIssued{Summary: fmt.Sprintf("Licence for event %s (%s) issued and uploaded: %s, SHA-256 %s….",
		req.EventID, device(req.DeviceFingerprint), lic.Kind, lic.SHA256[:12])}, nil
}

// issue asks the generator for a new request's licence and stores it, or
// says why none is issued (the quota is used up by other devices).
func (a *Activities) issue(ctx context.Context, in LicenseInput, req LicenseRequest, key store.LicenseKey) (store.License, string, error) {
	if in.Quota > 0 {
		n, err := a.Store.Licenses.Devices(ctx, in.InstanceID, req.DeviceFingerprint)
		if err != nil {
			return store.License{}, "", err
		}
		if int64(n) >= in.Quota {
			return store.License{}, fmt.Sprintf("the order allows %d device(s), and %d other device(s) hold a licence", in.Quota, n), nil
		}
	}
	got, err := a.Provisioner.IssueLicense(ctx, provisioner.LicenseRequest{
		InstanceID: in.InstanceID, OperationID: LicenseOperationID(in.InstanceID, req.EventID, req.DeviceFingerprint),
		EventID: req.EventID, DeviceFingerprint: req.DeviceFingerprint,
		EffectiveTime: req.EffectiveTime, ExpireTime: req.ExpireTime, Debug: in.Debug,
	})
	if err != nil {
		return store.License{}, "", provisionerError(err)
	}
	file := koogallery.LicenseFile{Type: got.Type, FileName: got.FileName, Content: got.Bytes()}
	switch {
	case got.Type != provisioner.LicenseCharacters && got.Type != provisioner.LicenseFile:
		return store.License{}, "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the licence generator answered type %q, not CHARACTERS or FILE", got.Type), errTypeProvisioner, nil)
	case len(file.Content) == 0:
		return store.License{}, "", temporal.NewNonRetryableApplicationError(
			"the licence generator answered an empty licence", errTypeProvisioner, nil)
	case file.FileName == "" && got.Type == provisioner.LicenseCharacters:
		file.FileName = "license.txt"
	case file.FileName == "":
		file.FileName = "license.lic"
	}
	l := store.License{InstanceID: key.InstanceID, EventID: key.EventID, DeviceFingerprint: key.DeviceFingerprint,
		Seq: in.Seq, EffectiveAt: req.EffectiveTime, Kind: file.Type, FileName: file.FileName, Content: file.Content,
		SHA256: file.SHA256()}
	if req.ExpireTime != nil {
		l.ExpireAt.Time, l.ExpireAt.Valid = req.ExpireTime.UTC(), true
	}
	stored, _, err := a.Store.Licenses.Issue(ctx, l)
	return stored, "", err
}

func device(fingerprint string) string {
	if fingerprint == "" {
		return "no device fingerprint"
	}
	if r := []rune(fingerprint); len(r) > 24 {
		return "device " + string(r[:24]) + "…"
	}
	return "device " + fingerprint
}
