package koogallery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Activity names the scenario of a production-interface call; it is the
// "activity" field of every V2 request body (§1.0).
type Activity string

// The V2 activities (§1.1, §1.9); getLicenseAsync is in license.go (§13.2).
const (
	ActivityNewInstance          Activity = "newInstance"
	ActivityQueryInstance        Activity = "queryInstance"
	ActivityRefreshInstance      Activity = "refreshInstance"
	ActivityUpdateInstanceStatus Activity = "updateInstanceStatus"
	ActivityReleaseInstance      Activity = "releaseInstance"
	ActivityUpgradeInstance      Activity = "upgradeInstance"
	ActivityChangeInstanceCheck  Activity = "changeInstanceCheck"
	ActivityOrderNotify          Activity = "orderNotify"
)

// Activities lists every activity ParseRequest understands.
var Activities = []Activity{
	ActivityNewInstance, ActivityQueryInstance, ActivityRefreshInstance,
	ActivityUpdateInstanceStatus, ActivityReleaseInstance, ActivityUpgradeInstance,
	ActivityChangeInstanceCheck, ActivityOrderNotify, ActivityGetLicenseAsync,
	ActivityRefreshLicenseCode, ActivityUpdateLicenseCodeStatus, ActivityReleaseLicenseCode,
}

// Scene is the reason of a refreshInstance call (§1.4).
type Scene string

// The refreshInstance scenes. SceneRenewalChange appears only in newer prose
// (§7.7); it is accepted and treated as a renewal.
const (
	SceneRenewal                  Scene = "RENEWAL"
	SceneTrialToFormal            Scene = "TRIAL_TO_FORMAL"
	SceneUnsubscribeRenewalPeriod Scene = "UNSUBSCRIBE_RENEWAL_PERIOD"
	SceneRenewalChange            Scene = "RENEWAL_CHANGE"
)

// InstanceStatus is the target status of updateInstanceStatus (§1.5).
type InstanceStatus string

// The updateInstanceStatus statuses.
const (
	StatusFreeze   InstanceStatus = "FREEZE"
	StatusUnfreeze InstanceStatus = "UNFREEZE"
)

// Documented maximum lengths (§1.2–§1.9).
const (
	maxIDLen          = 64
	maxQueryIDListLen = 100 // queryInstance instanceId may list several IDs (§1.3)
	maxSceneLen       = 64
)

// Request is one parsed production-interface call.
type Request interface {
	// Activity names the scenario.
	Activity() Activity
	// Debug reports a console-debugger or probing call (testFlag "1", §2.7).
	Debug() bool
	// validate checks mandatory fields and documented limits.
	validate() error
}

// RequestError says why a request body was rejected. Its Code is the result
// code to answer with (always ResultInvalidParam today); its message is safe
// to return to the caller: it names fields, never echoes values.
type RequestError struct {
	Code    ResultCode
	Message string
}

func (e *RequestError) Error() string { return e.Message }

func invalid(format string, args ...any) *RequestError {
	return &RequestError{Code: ResultInvalidParam, Message: fmt.Sprintf(format, args...)}
}

// ParseRequest decodes a V2 request body into its typed request, reading
// member names exactly as Java does: a member whose name differs in case
// from a field is not that field, and a body whose members repeat or differ
// only in case is refused, so the request applied is the one that was
// signed. Unknown fields are ignored (§7.16); a malformed body, a missing
// mandatory field, a field over its documented length or an unknown
// activity gives a *RequestError with ResultInvalidParam.
func ParseRequest(body []byte) (Request, error) {
	root, err := parseJSONObject(body)
	if err != nil {
		return nil, invalid("request body is not a JSON object")
	}
	if problem := namesProblem(root, isRequestField); problem != "" {
		return nil, invalid("request body is ambiguous: %s", problem)
	}
	activity, ok := root.member("activity")
	switch {
	case !ok || activity.kind == jsonNull:
		return nil, invalid("missing field activity")
	case activity.kind != jsonString:
		return nil, invalid("field activity must be a string")
	}
	var req Request
	switch Activity(activity.text) {
	case "":
		return nil, invalid("missing field activity")
	case ActivityNewInstance:
		req = &NewInstanceRequest{}
	case ActivityQueryInstance:
		req = &QueryInstanceRequest{}
	case ActivityRefreshInstance:
		req = &RefreshInstanceRequest{}
	case ActivityUpdateInstanceStatus:
		req = &UpdateInstanceStatusRequest{}
	case ActivityReleaseInstance:
		req = &ReleaseInstanceRequest{}
	case ActivityUpgradeInstance:
		req = &UpgradeInstanceRequest{}
	case ActivityChangeInstanceCheck:
		req = &ChangeInstanceCheckRequest{}
	case ActivityOrderNotify:
		req = &OrderNotifyRequest{}
	case ActivityGetLicenseAsync:
		req = &GetLicenseAsyncRequest{}
	case ActivityRefreshLicenseCode:
		req = &RefreshLicenseCodeRequest{}
	case ActivityUpdateLicenseCodeStatus:
		req = &UpdateLicenseCodeStatusRequest{}
	case ActivityReleaseLicenseCode:
		req = &ReleaseLicenseCodeRequest{}
	default:
		return nil, invalid("unknown activity")
	}
	if err := decodeExact(root, req); err != nil {
		var flagErr *testFlagError
		if errors.As(err, &flagErr) {
			return nil, invalid("field testFlag must be \"0\" or \"1\"")
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return nil, invalid("field %s has the wrong type", typeErr.Field)
		}
		return nil, invalid("request body does not match activity %s", activity.text)
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	return req, nil
}

// requestFields are the member names the V2 requests are read from, which
// an error message may name.
var requestFields = func() map[string]bool {
	fields := map[string]bool{"activity": true}
	for _, r := range []any{NewInstanceRequest{}, QueryInstanceRequest{}, RefreshInstanceRequest{},
		UpdateInstanceStatusRequest{}, ReleaseInstanceRequest{}, UpgradeInstanceRequest{},
		ChangeInstanceCheckRequest{}, OrderNotifyRequest{}, GetLicenseAsyncRequest{}, ProductInfo{},
		RefreshLicenseCodeRequest{}, UpdateLicenseCodeStatusRequest{}, ReleaseLicenseCodeRequest{}} {
		for name := range jsonFields(reflect.TypeOf(r)) {
			fields[name] = true
		}
	}
	return fields
}()

func isRequestField(name string) bool { return requestFields[name] }

// TestFlag is the optional testFlag field. Real calls omit it or send "0";
// the kit APIs send the number 0/1 (§7.5); all of these are accepted.
type TestFlag bool

type testFlagError struct{}

func (testFlagError) Error() string { return "testFlag must be 0 or 1" }

// UnmarshalJSON accepts absent, null, "", "0", "1", 0, 1, false and true.
func (f *TestFlag) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case `null`, `""`, `"0"`, `0`, `false`:
		*f = false
	case `"1"`, `1`, `true`:
		*f = true
	default:
		return &testFlagError{}
	}
	return nil
}

// MarshalJSON writes the documented string form.
func (f TestFlag) MarshalJSON() ([]byte, error) {
	if f {
		return []byte(`"1"`), nil
	}
	return []byte(`"0"`), nil
}

// NewInstanceRequest is a new purchase (§1.2).
type NewInstanceRequest struct {
	OrderID     string   `json:"orderId"`
	OrderLineID string   `json:"orderLineId"`
	BusinessID  string   `json:"businessId"`
	TestFlag    TestFlag `json:"testFlag"`
}

// Activity implements Request.
func (*NewInstanceRequest) Activity() Activity { return ActivityNewInstance }

// Debug implements Request.
func (r *NewInstanceRequest) Debug() bool { return bool(r.TestFlag) }

func (r *NewInstanceRequest) validate() error {
	return firstError(
		requireID("orderId", r.OrderID),
		requireID("orderLineId", r.OrderLineID),
		requireInstanceID("businessId", r.BusinessID),
	)
}

// QueryInstanceRequest asks for the instance information (§1.3). InstanceID
// may hold several IDs separated by commas.
type QueryInstanceRequest struct {
	InstanceID string   `json:"instanceId"`
	TestFlag   TestFlag `json:"testFlag"`
}

// Activity implements Request.
func (*QueryInstanceRequest) Activity() Activity { return ActivityQueryInstance }

// Debug implements Request.
func (r *QueryInstanceRequest) Debug() bool { return bool(r.TestFlag) }

// InstanceIDs splits the comma-separated instanceId field, trimming blanks
// and dropping repeats while keeping the order of first appearance.
func (r *QueryInstanceRequest) InstanceIDs() []string {
	var ids []string
	seen := map[string]bool{}
	for _, id := range strings.Split(r.InstanceID, ",") {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids
}

func (r *QueryInstanceRequest) validate() error {
	if strings.TrimSpace(r.InstanceID) == "" {
		return invalid("missing field instanceId")
	}
	if len(r.InstanceID) > maxQueryIDListLen {
		return invalid("field instanceId is longer than %d characters", maxQueryIDListLen)
	}
	for _, id := range r.InstanceIDs() {
		if len(id) > maxIDLen {
			return invalid("an instanceId in the list is longer than %d characters", maxIDLen)
		}
		if !ValidInstanceID(id) {
			return invalid("an instanceId in the list is not letters, digits, '-', '_' or '.', starting with a letter or a digit")
		}
	}
	if len(r.InstanceIDs()) == 0 {
		return invalid("missing field instanceId")
	}
	return nil
}

// RefreshInstanceRequest moves an instance's expiry: renewal, trial to
// formal, or a refunded renewal period (§1.4).
type RefreshInstanceRequest struct {
	Scene       Scene    `json:"scene"`
	OrderID     string   `json:"orderId"`
	OrderLineID string   `json:"orderLineId"`
	InstanceID  string   `json:"instanceId"`
	ProductID   string   `json:"productId"`
	ExpireTime  string   `json:"expireTime"`
	TestFlag    TestFlag `json:"testFlag"`

	expireAt time.Time
}

// Activity implements Request.
func (*RefreshInstanceRequest) Activity() Activity { return ActivityRefreshInstance }

// Debug implements Request.
func (r *RefreshInstanceRequest) Debug() bool { return bool(r.TestFlag) }

// ExpireAt is the new expiry, parsed from ExpireTime (UTC).
func (r *RefreshInstanceRequest) ExpireAt() time.Time { return r.expireAt }

func (r *RefreshInstanceRequest) validate() error {
	if err := firstError(
		requireField("scene", string(r.Scene), maxSceneLen),
		requireID("orderId", r.OrderID),
		requireID("orderLineId", r.OrderLineID),
		requireInstanceID("instanceId", r.InstanceID),
		optionalID("productId", r.ProductID),
		requireField("expireTime", r.ExpireTime, 20),
	); err != nil {
		return err
	}
	switch r.Scene {
	case SceneRenewal, SceneTrialToFormal, SceneUnsubscribeRenewalPeriod, SceneRenewalChange:
	default:
		return invalid("field scene must be one of RENEWAL, TRIAL_TO_FORMAL, UNSUBSCRIBE_RENEWAL_PERIOD, RENEWAL_CHANGE")
	}
	t, err := ParseTime(r.ExpireTime)
	if err != nil {
		return invalid("field expireTime must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC)")
	}
	r.expireAt = t
	return nil
}

// UpdateInstanceStatusRequest freezes or unfreezes an instance (§1.5).
type UpdateInstanceStatusRequest struct {
	InstanceID string         `json:"instanceId"`
	Status     InstanceStatus `json:"status"`
	TestFlag   TestFlag       `json:"testFlag"`
}

// Activity implements Request.
func (*UpdateInstanceStatusRequest) Activity() Activity { return ActivityUpdateInstanceStatus }

// Debug implements Request.
func (r *UpdateInstanceStatusRequest) Debug() bool { return bool(r.TestFlag) }

func (r *UpdateInstanceStatusRequest) validate() error {
	if err := requireInstanceID("instanceId", r.InstanceID); err != nil {
		return err
	}
	return requireStatus(r.Status)
}

// requireStatus checks a status change's status field: FREEZE or UNFREEZE.
func requireStatus(status InstanceStatus) error {
	switch {
	case status == StatusFreeze || status == StatusUnfreeze:
		return nil
	case strings.TrimSpace(string(status)) == "":
		return invalid("missing field status")
	default:
		return invalid("field status must be FREEZE or UNFREEZE")
	}
}

// ReleaseInstanceRequest deletes an instance at the end of retention or on
// unsubscription; OrderID then names the unsubscription order (§1.6).
type ReleaseInstanceRequest struct {
	InstanceID  string   `json:"instanceId"`
	OrderID     string   `json:"orderId"`
	OrderLineID string   `json:"orderLineId"`
	TestFlag    TestFlag `json:"testFlag"`
}

// Activity implements Request.
func (*ReleaseInstanceRequest) Activity() Activity { return ActivityReleaseInstance }

// Debug implements Request.
func (r *ReleaseInstanceRequest) Debug() bool { return bool(r.TestFlag) }

func (r *ReleaseInstanceRequest) validate() error {
	return firstError(
		requireInstanceID("instanceId", r.InstanceID),
		optionalID("orderId", r.OrderID),
		optionalID("orderLineId", r.OrderLineID),
	)
}

// UpgradeInstanceRequest applies a paid upgrade order to an instance; the
// target spec comes from Query Order (§1.7).
type UpgradeInstanceRequest struct {
	InstanceID  string   `json:"instanceId"`
	OrderID     string   `json:"orderId"`
	OrderLineID string   `json:"orderLineId"`
	TestFlag    TestFlag `json:"testFlag"`
}

// Activity implements Request.
func (*UpgradeInstanceRequest) Activity() Activity { return ActivityUpgradeInstance }

// Debug implements Request.
func (r *UpgradeInstanceRequest) Debug() bool { return bool(r.TestFlag) }

func (r *UpgradeInstanceRequest) validate() error {
	return firstError(
		requireInstanceID("instanceId", r.InstanceID),
		requireID("orderId", r.OrderID),
		requireID("orderLineId", r.OrderLineID),
	)
}

// ChangeInstanceCheckRequest asks whether a renewal with a spec change is
// feasible (§1.8). The ProductInfo struct is undocumented (§7.9); it is read
// as Query Order's ProductInfo, given either as an object or as a list whose
// first element is the target.
type ChangeInstanceCheckRequest struct {
	InstanceID  string      `json:"instanceId"`
	ProductInfo ProductInfo `json:"productInfo"`
	TestFlag    TestFlag    `json:"testFlag"`
}

// Activity implements Request.
func (*ChangeInstanceCheckRequest) Activity() Activity { return ActivityChangeInstanceCheck }

// Debug implements Request.
func (r *ChangeInstanceCheckRequest) Debug() bool { return bool(r.TestFlag) }

func (r *ChangeInstanceCheckRequest) validate() error {
	if err := requireInstanceID("instanceId", r.InstanceID); err != nil {
		return err
	}
	if r.ProductInfo.SkuCode == "" && r.ProductInfo.ProductID == "" && r.ProductInfo.LinearValue == nil {
		return invalid("missing field productInfo")
	}
	return firstError(optionalID("productInfo.skuCode", r.ProductInfo.SkuCode),
		optionalID("productInfo.productId", r.ProductInfo.ProductID))
}

// UnmarshalJSON accepts productInfo as an object or as a one-element list.
func (r *ChangeInstanceCheckRequest) UnmarshalJSON(b []byte) error {
	var raw struct {
		InstanceID  string          `json:"instanceId"`
		ProductInfo json.RawMessage `json:"productInfo"`
		TestFlag    TestFlag        `json:"testFlag"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	r.InstanceID, r.TestFlag, r.ProductInfo = raw.InstanceID, raw.TestFlag, ProductInfo{}
	info := bytes.TrimSpace(raw.ProductInfo)
	switch {
	case len(info) == 0 || string(info) == "null":
	case info[0] == '[':
		var list []ProductInfo
		if err := json.Unmarshal(info, &list); err != nil {
			return err
		}
		if len(list) > 0 {
			r.ProductInfo = list[0]
		}
	default:
		if err := json.Unmarshal(info, &r.ProductInfo); err != nil {
			return err
		}
	}
	return nil
}

// OrderNotifyRequest announces that an order was created (§1.9); the
// details come from Query Order.
type OrderNotifyRequest struct {
	OrderID     string   `json:"orderId"`
	OrderLineID string   `json:"orderLineId"`
	TestFlag    TestFlag `json:"testFlag"`
}

// Activity implements Request.
func (*OrderNotifyRequest) Activity() Activity { return ActivityOrderNotify }

// Debug implements Request.
func (r *OrderNotifyRequest) Debug() bool { return bool(r.TestFlag) }

func (r *OrderNotifyRequest) validate() error {
	return firstError(requireID("orderId", r.OrderID), requireID("orderLineId", r.OrderLineID))
}

func requireID(name, value string) error { return requireField(name, value, maxIDLen) }

// ValidInstanceID reports whether id is in the instance ID alphabet: 1 to
// 64 characters of A-Z, a-z, 0-9, '-', '_' and '.', the first a letter or
// a digit. An instanceId is the businessId of the first newInstance (§1.2),
// and it travels where other characters break: the Temporal workflow ID and
// its gRPC header (printable ASCII only), the admin API's URL path ('/',
// '..'), queryInstance's comma-separated list (',', spaces trimmed) and the
// inbox's ':'-separated keys. The marketplace's own businessIds are UUIDs.
func ValidInstanceID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || (c != '-' && c != '_' && c != '.')) {
			return false
		}
	}
	return true
}

// requireInstanceID checks a field that names an instance.
func requireInstanceID(name, value string) error {
	if err := requireID(name, value); err != nil {
		return err
	}
	if !ValidInstanceID(value) {
		return invalid("field %s must be letters, digits, '-', '_' or '.', starting with a letter or a digit", name)
	}
	return nil
}

func requireField(name, value string, maxLen int) error {
	if strings.TrimSpace(value) == "" {
		return invalid("missing field %s", name)
	}
	if len(value) > maxLen {
		return invalid("field %s is longer than %d characters", name, maxLen)
	}
	return nil
}

func optionalID(name, value string) error {
	if len(value) > maxIDLen {
		return invalid("field %s is longer than %d characters", name, maxIDLen)
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
