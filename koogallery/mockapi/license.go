package mockapi

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// LicenseUpload is one licence the merchant uploaded for a getLicenseAsync
// event (contract §13.3), as the mock received it.
type LicenseUpload struct {
	EventID    string
	Type       string
	FileName   string
	SHA256     string
	Content    []byte
	ReceivedAt time.Time
}

// LicenseSink stores accepted licence uploads. It must be safe for
// concurrent use.
type LicenseSink interface {
	// StoreLicense keeps an upload. An error is answered 500.
	StoreLicense(ctx context.Context, u LicenseUpload) error
}

// MemoryLicenses is a LicenseSink in memory.
type MemoryLicenses struct {
	mu      sync.Mutex
	uploads []LicenseUpload
}

// StoreLicense implements LicenseSink.
func (m *MemoryLicenses) StoreLicense(_ context.Context, u LicenseUpload) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uploads = append(m.uploads, u)
	return nil
}

// Uploads returns every upload received, in order.
func (m *MemoryLicenses) Uploads() []LicenseUpload {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]LicenseUpload(nil), m.uploads...)
}

// Licenses is where accepted uploads go (Config.Licenses, or the mock's
// own MemoryLicenses).
func (s *Server) Licenses() LicenseSink { return s.cfg.Licenses }

// FailLicenseUploads makes the next n licence uploads fail with the given
// HTTP status and error_code, after their signature was checked.
func (s *Server) FailLicenseUploads(n, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLicense = usageFailure{n: n, status: status, code: code}
}

// uploadLicense serves 字符串/文件流上传 (contract §13.3): AK/SK over the raw
// multipart body (its SHA-256, or UNSIGNED-PAYLOAD, which VerifyAKSK
// refuses), then the two parts. Answers: CBC.0150 (HTTP 401) for a bad
// signature, CBC.0101 (HTTP 400) for a body that is not the documented
// multipart or whose sha256 does not match, CBC.0000 on success.
func (s *Server) uploadLicense(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, code, msg string) {
		writeJSON(w, status, koogallery.LicenseUploadAnswer{ErrorCode: code, ErrorMsg: msg})
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLicenseBody+1))
	if err != nil || len(body) > maxLicenseBody {
		answer(http.StatusBadRequest, koogallery.LicenseUploadInvalidParam, "unreadable or too large request")
		return
	}
	if err := koogallery.VerifyAKSK(r, body, s.cfg.AK, s.cfg.SK, s.cfg.Now(), MaxSkew); err != nil {
		answer(http.StatusUnauthorized, koogallery.LicenseUploadAuthFailed, "authentication failed")
		return
	}
	s.mu.Lock()
	fail := s.failLicense
	if fail.n > 0 {
		s.failLicense.n--
	}
	s.mu.Unlock()
	if fail.n > 0 {
		answer(fail.status, fail.code, "injected failure")
		return
	}
	eventID := r.PathValue("event_id")
	desc, content, err := koogallery.DecodeLicenseUpload(r.Header.Get("Content-Type"), body)
	if err != nil || eventID == "" {
		answer(http.StatusBadRequest, koogallery.LicenseUploadInvalidParam, "invalid parameter")
		return
	}
	u := LicenseUpload{EventID: eventID, Type: desc.Type, FileName: desc.FileName, SHA256: desc.SHA256,
		Content: content, ReceivedAt: s.cfg.Now()}
	if err := s.cfg.Licenses.StoreLicense(r.Context(), u); err != nil {
		answer(http.StatusInternalServerError, "CBC.0999", "internal error")
		return
	}
	answer(http.StatusOK, koogallery.LicenseUploadSuccess, "success")
}

// maxLicenseBody bounds an upload: a licence file is small.
const maxLicenseBody = 4 << 20
