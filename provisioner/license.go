package provisioner

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Online licences (在线开通License, contract §13): when a buyer's device asks
// for a licence of an instance, the merchant's licence generator issues it
// and the server uploads it to the marketplace.

// Licence kinds: text the device reads, or a file.
const (
	LicenseCharacters = "CHARACTERS"
	LicenseFile       = "FILE"
)

// LicenseRequest asks for the licence of one device. OperationID names the
// request ("license:<instanceId>:<eventId>:<fingerprint hash>"): the same
// for every retry, so the generator answers a repeat with the licence it
// issued before.
type LicenseRequest struct {
	InstanceID        string     `json:"instanceId"`
	OperationID       string     `json:"operationId"`
	EventID           string     `json:"eventId"`
	DeviceFingerprint string     `json:"deviceFingerprint,omitempty"`
	EffectiveTime     time.Time  `json:"effectiveTime"`
	ExpireTime        *time.Time `json:"expireTime,omitempty"`
	Debug             bool       `json:"debug"`
}

// License is an issued licence: Characters for LicenseCharacters, or a
// file (FileName and Content, base64 on the wire) for LicenseFile.
type License struct {
	Type       string `json:"type"`
	Characters string `json:"characters,omitempty"`
	FileName   string `json:"fileName,omitempty"`
	Content    []byte `json:"content,omitempty"`
}

// Bytes is the licence as uploaded: the characters or the file.
func (l License) Bytes() []byte {
	if l.Type == LicenseCharacters {
		return []byte(l.Characters)
	}
	return l.Content
}

// IssueLicense implements Provisioner: POST {base}/license.
func (h *HTTP) IssueLicense(ctx context.Context, req LicenseRequest) (License, error) {
	var l License
	err := h.call(ctx, "license", req.OperationID, req, &l)
	return l, err
}

// demoLicenseKey keys the demo's licences. It is not a secret: the demo's
// licences protect nothing; they only have to be the same for the same
// request, every time.
var demoLicenseKey = []byte("fulfillment demo licence generator")

// IssueLicense issues a deterministic licence text: an HMAC of the
// request's instance, event, fingerprint and validity, so that asking
// again yields the same licence. It fails while the demo application is in
// maintenance and for an instance without a live tenant.
func (d *Demo) IssueLicense(ctx context.Context, req LicenseRequest) (License, error) {
	if err := d.available(ctx, "license"); err != nil {
		return License{}, err
	}
	if _, err := d.liveTenant(ctx, "license", req.InstanceID); err != nil {
		return License{}, err
	}
	return DemoLicense(req), nil
}

// DemoLicense is the demo generator's licence for a request.
func DemoLicense(req LicenseRequest) License {
	expire := "perpetual"
	if req.ExpireTime != nil {
		expire = req.ExpireTime.UTC().Format(time.RFC3339)
	}
	effective := req.EffectiveTime.UTC().Format(time.RFC3339)
	mac := hmac.New(sha256.New, demoLicenseKey)
	mac.Write([]byte(strings.Join([]string{req.InstanceID, req.EventID, req.DeviceFingerprint, effective, expire}, "\n")))
	sig := strings.ToUpper(hex.EncodeToString(mac.Sum(nil))[:40])
	return License{Type: LicenseCharacters, Characters: "DEMO-LIC-" + sig + ";" + effective + ";" + expire}
}
