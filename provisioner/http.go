package provisioner

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Headers of a provisioning request (docs/provisioner.md).
const (
	TimestampHeader      = "X-Fulfillment-Timestamp"
	SignatureHeader      = "X-Fulfillment-Signature"
	IdempotencyKeyHeader = "Idempotency-Key"
)

// HTTP calls the merchant's application: POST {URL}/{operation} with a JSON
// body, signed with HMAC-SHA256 over "timestamp.body" with the shared key.
// 2xx is success; 408, 425, 429 and 5xx (and network failures) are retried;
// any other status is a permanent failure whose {"error": …} message is
// kept, shortened, as the reason.
type HTTP struct {
	url    string
	key    []byte
	client *http.Client
	now    func() time.Time
}

var _ Provisioner = (*HTTP)(nil)

// maxResponse bounds what is read of an application's answer.
const maxResponse = 1 << 20

// NewHTTP returns a provisioner calling the application at baseURL. The key
// signs every request; client may be nil for a default with a 60 s timeout.
func NewHTTP(baseURL, key string, client *http.Client) (*HTTP, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("provisioner URL %q must be an absolute http(s) URL", baseURL)
	}
	if key == "" {
		return nil, errors.New("PROVISIONER_KEY is required with an HTTP provisioner")
	}
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	return &HTTP{url: strings.TrimRight(baseURL, "/"), key: []byte(key), client: client, now: time.Now}, nil
}

// Provision implements Provisioner.
func (h *HTTP) Provision(ctx context.Context, req ProvisionRequest) (Tenant, error) {
	var t Tenant
	if err := h.call(ctx, "provision", "provision:"+req.InstanceID, req, &t); err != nil {
		return Tenant{}, err
	}
	if t.FrontEndURL == "" {
		return Tenant{}, Permanent("provision", "the application's answer has no frontEndUrl")
	}
	return t, nil
}

// Freeze implements Provisioner.
func (h *HTTP) Freeze(ctx context.Context, req TenantRequest) error {
	return h.call(ctx, "freeze", operationKey("freeze", req), req, nil)
}

// Unfreeze implements Provisioner.
func (h *HTTP) Unfreeze(ctx context.Context, req TenantRequest) error {
	return h.call(ctx, "unfreeze", operationKey("unfreeze", req), req, nil)
}

// operationKey is a tenant operation's idempotency key: its operation ID,
// or, for an operation scheduled before operations had IDs, op:instanceId.
func operationKey(op string, req TenantRequest) string {
	if req.OperationID != "" {
		return req.OperationID
	}
	return op + ":" + req.InstanceID
}

// Upgrade implements Provisioner.
func (h *HTTP) Upgrade(ctx context.Context, req UpgradeRequest) error {
	return h.call(ctx, "upgrade", "upgrade:"+req.InstanceID+":"+req.OrderID, req, nil)
}

// Release implements Provisioner.
func (h *HTTP) Release(ctx context.Context, req TenantRequest) error {
	return h.call(ctx, "release", operationKey("release", req), req, nil)
}

// CheckChange implements Provisioner.
func (h *HTTP) CheckChange(ctx context.Context, req ChangeRequest) (ChangeVerdict, error) {
	var v ChangeVerdict
	err := h.call(ctx, "check-change", "", req, &v)
	return v, err
}

// SyncEnterprise implements Provisioner.
func (h *HTTP) SyncEnterprise(ctx context.Context, req EnterpriseRequest) error {
	return h.call(ctx, "directory/enterprise", req.OperationID, req, nil)
}

// SyncApp implements Provisioner.
func (h *HTTP) SyncApp(ctx context.Context, req AppRequest) error {
	return h.call(ctx, "directory/app", req.OperationID, req, nil)
}

// SyncUsers implements Provisioner.
func (h *HTTP) SyncUsers(ctx context.Context, req UsersRequest) error {
	return h.call(ctx, "directory/users", req.OperationID, req, nil)
}

// SyncDepartments implements Provisioner.
func (h *HTTP) SyncDepartments(ctx context.Context, req DepartmentsRequest) error {
	return h.call(ctx, "directory/departments", req.OperationID, req, nil)
}

func (h *HTTP) call(ctx context.Context, op, idempotencyKey string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return Permanent(op, "encode request: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/"+op, bytes.NewReader(body))
	if err != nil {
		return Permanent(op, "build request: %v", err)
	}
	ts := strconv.FormatInt(h.now().UnixMilli(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(SignatureHeader, "v1="+Signature(h.key, ts, body))
	if idempotencyKey != "" {
		req.Header.Set(IdempotencyKeyHeader, idempotencyKey)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// The URL is configuration, not a secret, but the error text of a
		// failed dial is enough to diagnose.
		return fmt.Errorf("%s: application unreachable: %w", op, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", op, err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(answer, out); err != nil {
			return Permanent(op, "the application's answer is not the expected JSON")
		}
		return nil
	case retryableStatus(resp.StatusCode):
		return fmt.Errorf("%s: application answered %d: %s", op, resp.StatusCode, applicationMessage(answer))
	default:
		return Permanent(op, "application answered %d: %s", resp.StatusCode, applicationMessage(answer))
	}
}

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooEarly ||
		code == http.StatusTooManyRequests || code >= 500
}

// applicationMessage extracts {"error": "..."} from an answer, shortened, so
// that the reason shown to operators is the application's own words.
func applicationMessage(answer []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(answer))
	if json.Unmarshal(answer, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		return "(empty answer)"
	}
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "…"
	}
	return msg
}

// Signature is the hex HMAC-SHA256 of "timestamp.body" with key: the value
// after "v1=" in the X-Fulfillment-Signature header.
func Signature(key []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifyRequest checks a provisioning request's signature and that its
// timestamp is within maxSkew of now. Merchants writing their application
// in Go can use it as is; it is also what the tests' fake application does.
func VerifyRequest(r *http.Request, body, key []byte, now time.Time, maxSkew time.Duration) error {
	ts := r.Header.Get(TimestampHeader)
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("missing or malformed " + TimestampHeader)
	}
	if d := now.Sub(time.UnixMilli(ms)); d > maxSkew || d < -maxSkew {
		return errors.New("stale " + TimestampHeader)
	}
	got, ok := strings.CutPrefix(r.Header.Get(SignatureHeader), "v1=")
	if !ok {
		return errors.New("missing or malformed " + SignatureHeader)
	}
	gotMAC, err := hex.DecodeString(got)
	if err != nil {
		return errors.New("malformed " + SignatureHeader)
	}
	want, _ := hex.DecodeString(Signature(key, ts, body))
	if !hmac.Equal(gotMAC, want) {
		return errors.New("wrong " + SignatureHeader)
	}
	return nil
}
