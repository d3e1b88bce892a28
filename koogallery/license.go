package koogallery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// ActivityGetLicenseAsync is the 在线开通License activity by which a buyer's
// device asks for a licence of a purchased instance (§13.2).
const ActivityGetLicenseAsync Activity = "getLicenseAsync"

// Documented lengths of getLicenseAsync (§13.2).
const (
	maxLicenseTimeLen   = 32
	MaxFingerprintLen   = 1024
	maxLicenseEventLen  = 64
	licenseTimeExample  = `"2023-10-27 10:30:15 z"`
	licenseTimeProblem  = "must be a UTC time like " + licenseTimeExample + ", RFC 3339 or yyyyMMddHHmmss"
	licenseTimeZoneless = "2006-01-02 15:04:05"
)

// GetLicenseAsyncRequest asks for the licence of one device (§13.2). The
// key of the request is (InstanceID, EventID, DeviceFingerprint): a
// repeat must get the licence issued before.
type GetLicenseAsyncRequest struct {
	InstanceID        string   `json:"instanceId"`
	EffectiveTime     string   `json:"effectiveTime"`
	ExpireTime        string   `json:"expireTime"`
	EventID           string   `json:"eventId"`
	DeviceFingerprint string   `json:"deviceFingerprint"`
	TestFlag          TestFlag `json:"testFlag"`

	effectiveAt, expireAt time.Time
}

// Activity implements Request.
func (*GetLicenseAsyncRequest) Activity() Activity { return ActivityGetLicenseAsync }

// Debug implements Request.
func (r *GetLicenseAsyncRequest) Debug() bool { return bool(r.TestFlag) }

// EffectiveAt is the licence's start, parsed from EffectiveTime (UTC).
func (r *GetLicenseAsyncRequest) EffectiveAt() time.Time { return r.effectiveAt }

// ExpireAt is the licence's end, or the zero time when ExpireTime is absent.
func (r *GetLicenseAsyncRequest) ExpireAt() time.Time { return r.expireAt }

func (r *GetLicenseAsyncRequest) validate() error {
	if err := firstError(
		requireInstanceID("instanceId", r.InstanceID),
		requireField("effectiveTime", r.EffectiveTime, maxLicenseTimeLen),
		requireField("eventId", r.EventID, maxLicenseEventLen),
	); err != nil {
		return err
	}
	if len(r.ExpireTime) > maxLicenseTimeLen {
		return invalid("field expireTime is longer than %d characters", maxLicenseTimeLen)
	}
	if len(r.DeviceFingerprint) > MaxFingerprintLen {
		return invalid("field deviceFingerprint is longer than %d characters", MaxFingerprintLen)
	}
	t, err := ParseLicenseTime(r.EffectiveTime)
	if err != nil {
		return invalid("field effectiveTime %s", licenseTimeProblem)
	}
	r.effectiveAt = t
	if strings.TrimSpace(r.ExpireTime) != "" {
		t, err := ParseLicenseTime(r.ExpireTime)
		if err != nil {
			return invalid("field expireTime %s", licenseTimeProblem)
		}
		r.expireAt = t
	}
	return nil
}

// ParseLicenseTime reads a getLicenseAsync time leniently, since the
// format is given by one example only (§13.2): "yyyy-MM-dd HH:mm:ss" with
// an optional "z", "Z" or "UTC" suffix (or a 'T' between date and time),
// RFC 3339 with any offset, and yyyyMMddHHmmss[SSS]. The result is UTC.
func ParseLicenseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := ParseTime(s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	plain := s
	for _, suffix := range []string{"UTC", "utc", "z", "Z"} {
		if strings.HasSuffix(plain, suffix) {
			plain = strings.TrimSpace(strings.TrimSuffix(plain, suffix))
			break
		}
	}
	plain = strings.Replace(plain, "T", " ", 1)
	if t, err := time.ParseInLocation(licenseTimeZoneless, plain, time.UTC); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(licenseTimeZoneless+".999999999", plain, time.UTC); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("licence time %q is not a recognised UTC time", s)
}

// FormatLicenseTime writes t in the documented example's form (§13.2).
func FormatLicenseTime(t time.Time) string { return t.UTC().Format(licenseTimeZoneless) + " z" }

// LicenseUploadPath is the 字符串/文件流上传 endpoint (§13.3); {event_id} is
// the request's eventId.
const LicenseUploadPath = "/api/mkp-openapi-public/global/v1/market-event/{event_id}/file"

// LicenseUploadURLPath is LicenseUploadPath for one event, unescaped: the
// signer escapes the path it signs and sends.
func LicenseUploadURLPath(eventID string) string {
	return strings.Replace(LicenseUploadPath, "{event_id}", eventID, 1)
}

// The licence kinds of an upload (§13.3).
const (
	LicenseTypeCharacters = "CHARACTERS"
	LicenseTypeFile       = "FILE"
)

// The open-API codes of the License guide (§13.3).
const (
	LicenseUploadSuccess      = "CBC.0000"
	LicenseUploadAuthFailed   = "CBC.0150"
	LicenseUploadInvalidParam = "CBC.0101"
	LicenseApplyInvalid       = "91381034"
)

// LicenseUploadPart is the name of the multipart part holding the
// upload's description, and LicenseFilePart that of the licence itself.
const (
	LicenseUploadPart = "isvUpdateFileReq"
	LicenseFilePart   = "file"
)

// LicenseFile is a licence to upload: characters or a file (§13.3).
type LicenseFile struct {
	// Type is LicenseTypeCharacters or LicenseTypeFile.
	Type string
	// FileName names the file part (and the file, for LicenseTypeFile).
	FileName string
	// Content is the licence's bytes: the characters, or the file.
	Content []byte
}

// SHA256 is the hex SHA-256 of the licence's bytes.
func (f LicenseFile) SHA256() string {
	sum := sha256.Sum256(f.Content)
	return hex.EncodeToString(sum[:])
}

// LicenseUploadRequest is the isvUpdateFileReq part (§13.3).
type LicenseUploadRequest struct {
	Type       string `json:"type"`
	FileName   string `json:"file_name"`
	SHA256     string `json:"sha256"`
	Characters string `json:"characters,omitempty"`
}

// LicenseUploadAnswer is the upload's answer (§13.3).
type LicenseUploadAnswer struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

// EncodeLicenseUpload writes the multipart body of an upload and returns
// it with its Content-Type (boundary included).
func EncodeLicenseUpload(f LicenseFile) (body []byte, contentType string, err error) {
	if f.Type != LicenseTypeCharacters && f.Type != LicenseTypeFile {
		return nil, "", fmt.Errorf("licence type %q is not %s or %s", f.Type, LicenseTypeCharacters, LicenseTypeFile)
	}
	desc := LicenseUploadRequest{Type: f.Type, FileName: f.FileName, SHA256: f.SHA256()}
	if f.Type == LicenseTypeCharacters {
		desc.Characters = string(f.Content)
	}
	descJSON, err := json.Marshal(desc)
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, err := w.CreateFormFile(LicenseFilePart, f.FileName)
	if err == nil {
		_, err = fw.Write(f.Content)
	}
	if err == nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+LicenseUploadPart+`"`)
		h.Set("Content-Type", "application/json")
		var pw interface{ Write([]byte) (int, error) }
		if pw, err = w.CreatePart(h); err == nil {
			_, err = pw.Write(descJSON)
		}
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, "", fmt.Errorf("encode licence upload: %w", err)
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

// DecodeLicenseUpload reads an upload's multipart body: the description
// and the file part's bytes. It checks that the description's sha256
// matches the file and, for characters, the characters.
func DecodeLicenseUpload(contentType string, body []byte) (LicenseUploadRequest, []byte, error) {
	var desc LicenseUploadRequest
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return desc, nil, errors.New("not multipart/form-data with a boundary")
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var file []byte
	var haveDesc, haveFile bool
	for {
		p, err := r.NextPart()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return desc, nil, fmt.Errorf("read multipart body: %w", err)
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(p); err != nil {
			return desc, nil, fmt.Errorf("read part %s: %w", p.FormName(), err)
		}
		switch p.FormName() {
		case LicenseUploadPart:
			if err := json.Unmarshal(b.Bytes(), &desc); err != nil {
				return desc, nil, fmt.Errorf("part %s is not JSON", LicenseUploadPart)
			}
			haveDesc = true
		case LicenseFilePart:
			file, haveFile = b.Bytes(), true
		}
	}
	switch {
	case !haveDesc:
		return desc, nil, fmt.Errorf("missing part %s", LicenseUploadPart)
	case desc.Type != LicenseTypeCharacters && desc.Type != LicenseTypeFile:
		return desc, nil, errors.New("type must be CHARACTERS or FILE")
	case desc.Type == LicenseTypeCharacters && !haveFile:
		file = []byte(desc.Characters)
	case !haveFile:
		return desc, nil, fmt.Errorf("missing part %s", LicenseFilePart)
	}
	if desc.Type == LicenseTypeCharacters && desc.Characters != "" && desc.Characters != string(file) {
		return desc, nil, errors.New("characters differ from the file part")
	}
	sum := sha256.Sum256(file)
	if !strings.EqualFold(desc.SHA256, hex.EncodeToString(sum[:])) {
		return desc, nil, errors.New("sha256 does not match the licence")
	}
	return desc, file, nil
}

// UploadLicense uploads a licence for a getLicenseAsync event (§13.3). The
// multipart body is signed with its SHA-256 like every other call (the
// guide does not say; docs/protocol-choices.md). Any answer but HTTP 200
// with CBC.0000 is an *OpenAPIError, classified by IsRetryable.
func (c *OpenAPIClient) UploadLicense(ctx context.Context, eventID string, f LicenseFile) error {
	if eventID == "" || strings.ContainsAny(eventID, "/?#") {
		return errors.New("upload licence: eventId is required and may not contain '/', '?' or '#'")
	}
	body, contentType, err := EncodeLicenseUpload(f)
	if err != nil {
		return err
	}
	status, resp, err := c.do(ctx, http.MethodPost, LicenseUploadURLPath(eventID), nil, body,
		map[string]string{sendContentType: contentType})
	if err != nil {
		return fmt.Errorf("upload licence of event %s: %w", eventID, err)
	}
	var ans LicenseUploadAnswer
	_ = json.Unmarshal(resp, &ans)
	if status == http.StatusOK && (ans.ErrorCode == LicenseUploadSuccess || ans.ErrorCode == "") && json.Valid(resp) {
		return nil
	}
	// A 200 that is not success is the marketplace's verdict: permanent.
	return fmt.Errorf("upload licence of event %s: %w", eventID, parseOpenAPIError(status, resp))
}
