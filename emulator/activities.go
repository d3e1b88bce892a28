package emulator

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Activities are the emulator's side effects.
type Activities struct {
	Store *Store
	// ProductionURL is the merchant's production interface.
	ProductionURL string
	// AccessKey signs the calls, checks the answers' Body-Sign.
	AccessKey string
	// KitAccessKey signs the 联营 kit's calls and checks their answers;
	// KitPublicKey is the merchant's public key, which encrypts the app
	// credentials' client secrets (contract §12).
	KitAccessKey string
	KitPublicKey *rsa.PublicKey
	// LicenseAccessKey signs the license-code callbacks and checks their
	// answers (contract §13.5).
	LicenseAccessKey string
	// V1AccessKey signs the calls of V1 listings and checks their answers
	// (contract §2.5).
	V1AccessKey string
	// SignatureForm is what the calls' signatures cover: the canonical
	// body, as Huawei's sample verifies (the default, FormCanonical), or
	// the raw bytes (FormRaw).
	SignatureForm koogallery.SignedForm
	// MerchantAdminURL and MerchantAdminToken, when set, receive the
	// supervision steps taken in the consoles, as the merchant's
	// operators would relay them (this server's admin API).
	MerchantAdminURL   string
	MerchantAdminToken string
	HTTP               *http.Client
}

// CallInput is one production-interface call.
type CallInput struct {
	// MessageID names the call in the console's failed calls.
	MessageID  string
	PurchaseID string
	Activity   string
	Body       string
	Debug      bool
	// V1 sends the call as a V1 listing receives it: the V1 activity, a
	// GET with authToken (contract §1.12).
	V1 bool `json:",omitempty"`
}

// CallResult is the merchant's answer. The access information of a
// queryInstance answer is stored by the activity, not returned.
type CallResult struct {
	ResultCode string
	ResultMsg  string
	InstanceID string
}

// SaveInput writes a purchase and its new timeline events.
type SaveInput struct {
	Purchase Purchase
	Events   []Event
	// Code is a license-code purchase's code, written at the purchase's
	// revision.
	Code *LicenseCodeUpdate `json:",omitempty"`
}

// RelayInput tells the merchant's server a supervision step.
type RelayInput struct {
	InstanceID string
	Signal     string
	Body       string
}

// answer is a production-interface answer.
type answer struct {
	ResultCode string                    `json:"resultCode"`
	ResultMsg  string                    `json:"resultMsg"`
	InstanceID string                    `json:"instanceId"`
	Info       []koogallery.InstanceInfo `json:"info"`
	// AppInfo is a V1 newInstance answer's access information.
	AppInfo *koogallery.AppInfo `json:"appInfo"`
}

// Call signs and sends a call like the marketplace (contract §2.2), checks
// the answer's Body-Sign (contract §2.4) and judges it as the marketplace
// does (contract §4.2): anything but HTTP 200 with 000000 fails (000004 too
// for newInstance), and so does an answer without a valid Body-Sign. Each
// failure is recorded as a failed call (生产接口消息) before the error makes
// the activity retry.
func (a *Activities) Call(ctx context.Context, in CallInput) (CallResult, error) {
	res, err := a.send(ctx, in)
	if err != nil {
		if in.Activity != string(koogallery.ActivityQueryInstance) {
			if rerr := a.Store.RecordFailure(ctx, in.MessageID, in.PurchaseID, in.Activity, in.Body, err.Error(), time.Now()); rerr != nil {
				return CallResult{}, rerr
			}
		}
		return CallResult{}, temporal.NewApplicationError(err.Error(), "CallFailed")
	}
	if in.MessageID != "" {
		if err := a.Store.ResolveMessage(ctx, in.MessageID, time.Now()); err != nil {
			return CallResult{}, err
		}
	}
	return res, nil
}

// signedRequest is a call signed as the marketplace signs it: a basic
// interface call with its signature in the query (contract §2.2), a kit
// call on the kit's sub-path with x-sign headers (contract §12.3); for a V1
// listing a GET with authToken (contract §2.5), or a kit call on the V1
// sub-path with an authToken header (contract §12.10). key is what the
// answer's Body-Sign is checked with.
func (a *Activities) signedRequest(ctx context.Context, in CallInput) (req *http.Request, key string, err error) {
	if op, kit := koogallery.ParseKitOperation(in.Activity); kit && in.V1 {
		return a.v1KitRequest(ctx, op, in)
	}
	if in.V1 {
		return a.v1Request(ctx, in)
	}
	body := []byte(in.Body)
	form := a.SignatureForm
	if form == "" {
		form = koogallery.FormCanonical
	}
	if op, kit := koogallery.ParseKitOperation(in.Activity); kit {
		if a.KitAccessKey == "" {
			return nil, "", errors.New("no kit key: set KOOGALLERY_KIT_ACCESS_KEY")
		}
		header, err := koogallery.SignedKitHeaders(form, a.KitAccessKey, body, time.Now())
		if err != nil {
			return nil, "", fmt.Errorf("sign the call: %w", err)
		}
		if req, err = http.NewRequestWithContext(ctx, http.MethodPost, kitURL(a.ProductionURL, op), bytes.NewReader(body)); err != nil {
			return nil, "", fmt.Errorf("build request: %w", err)
		}
		maps.Copy(req.Header, header)
		req.Header.Set("Content-Type", "application/json")
		return req, a.KitAccessKey, nil
	}
	key = a.AccessKey
	if koogallery.IsLicenseCodeActivity(koogallery.Activity(in.Activity)) {
		// License-code callbacks have a key type of their own (contract §13.5).
		if a.LicenseAccessKey == "" {
			return nil, "", errors.New("no license-code key: set KOOGALLERY_LICENSE_ACCESS_KEY")
		}
		key = a.LicenseAccessKey
	}
	query, err := koogallery.SignedQueryAs(form, key, body, time.Now())
	if err != nil {
		return nil, "", fmt.Errorf("sign the call: %w", err)
	}
	if req, err = http.NewRequestWithContext(ctx, http.MethodPost, withQuery(a.ProductionURL, query), bytes.NewReader(body)); err != nil {
		return nil, "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	return req, key, nil
}

func (a *Activities) send(ctx context.Context, in CallInput) (CallResult, error) {
	req, answerKey, err := a.signedRequest(ctx, in)
	if errors.Is(err, errNotInV1) {
		// Nothing to send: the V1 listing's instance needs no such call.
		return CallResult{ResultCode: string(koogallery.ResultSuccess), ResultMsg: err.Error()}, nil
	}
	if err != nil {
		return CallResult{}, err
	}
	req.Header.Set("Accept", "application/json")
	client := a.HTTP
	if client == nil {
		// The marketplace gives up after 5 s (contract §9): a slower
		// answer is a failed call.
		client = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return CallResult{}, fmt.Errorf("no answer: %w", errors.Unwrap(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return CallResult{}, fmt.Errorf("answer not read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return CallResult{}, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if err := koogallery.VerifyBodySign(resp.Header.Get(koogallery.BodySignHeader), answerKey, raw); err != nil {
		return CallResult{}, errors.New("the answer has no valid Body-Sign header")
	}
	var ans answer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return CallResult{}, errors.New("the answer is not JSON")
	}
	res := CallResult{ResultCode: ans.ResultCode, ResultMsg: ans.ResultMsg, InstanceID: ans.InstanceID}
	failed := fmt.Errorf("resultCode %s: %s", ans.ResultCode, ans.ResultMsg)
	switch koogallery.Activity(in.Activity) {
	case koogallery.ActivityNewInstance:
		if in.V1 {
			return a.v1Purchased(ctx, in.PurchaseID, ans, res, failed)
		}
		if ans.ResultCode != string(koogallery.ResultSuccess) && ans.ResultCode != string(koogallery.ResultProcessing) {
			return CallResult{}, failed
		}
		if ans.InstanceID == "" {
			return CallResult{}, errors.New("the answer has no instanceId")
		}
	case koogallery.ActivityQueryInstance:
		switch ans.ResultCode {
		case string(koogallery.ResultProcessing):
		case string(koogallery.ResultSuccess):
			if err := a.keepAppInfo(ctx, in.PurchaseID, ans); err != nil {
				return CallResult{}, err
			}
		default:
			return CallResult{}, failed
		}
	case koogallery.ActivityChangeInstanceCheck:
		// Any result code is the merchant's verdict.
	case koogallery.ActivityGetLicenseAsync:
		// 000004: issued asynchronously; 000900–000903: the device's
		// refusal, shown to it, not a failed call (contract §13.2).
		if ans.ResultCode != string(koogallery.ResultSuccess) && ans.ResultCode != string(koogallery.ResultProcessing) &&
			!licenseRefusal(ans.ResultCode) {
			return CallResult{}, failed
		}
	default:
		if ans.ResultCode != string(koogallery.ResultSuccess) {
			return CallResult{}, failed
		}
	}
	return res, nil
}

// keepAppInfo stores the access information the buyer is shown; userName
// and password stay as received (encrypted).
func (a *Activities) keepAppInfo(ctx context.Context, purchaseID string, ans answer) error {
	if len(ans.Info) == 0 || ans.Info[0].AppInfo == nil || ans.Info[0].AppInfo.FrontEndURL == "" {
		return errors.New("queryInstance answered 000000 without appInfo.frontEndUrl")
	}
	app := ans.Info[0].AppInfo
	return a.Store.SaveAppInfo(ctx, AppInfo{
		PurchaseID: purchaseID, FrontEndURL: app.FrontEndURL, AdminURL: app.AdminURL,
		UserName: app.UserName, Password: app.Password, Memo: app.Memo,
	})
}

func withQuery(base string, q url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + q.Encode()
}

// SaveOrder stores an order the emulator sold.
func (a *Activities) SaveOrder(ctx context.Context, o Order) error {
	return a.Store.SaveOrder(ctx, o)
}

// Save writes a purchase and its timeline.
func (a *Activities) Save(ctx context.Context, in SaveInput) error {
	if err := a.Store.SavePurchase(ctx, in.Purchase, in.Events); err != nil {
		return err
	}
	if in.Code != nil {
		return a.Store.UpdateLicenseCode(ctx, *in.Code, in.Purchase.Revision)
	}
	return nil
}

// Relay posts a supervision step to the merchant's admin API. It reports
// false when no admin API is configured.
func (a *Activities) Relay(ctx context.Context, in RelayInput) (bool, error) {
	if a.MerchantAdminURL == "" {
		return false, nil
	}
	u := strings.TrimRight(a.MerchantAdminURL, "/") + "/v1/instances/" + url.PathEscape(in.InstanceID) + "/signals/" + in.Signal
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(in.Body))
	if err != nil {
		return false, temporal.NewNonRetryableApplicationError("build relay request: "+err.Error(), "RelayFailed", nil)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.MerchantAdminToken)
	req.Header.Set("X-Operator", "koogallery-emulator")
	client := a.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("relay %s: %w", in.Signal, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
		return true, nil
	case resp.StatusCode >= 500:
		return false, fmt.Errorf("relay %s: HTTP %d", in.Signal, resp.StatusCode)
	default:
		return false, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("relay %s: HTTP %d %s", in.Signal, resp.StatusCode, strings.TrimSpace(string(msg))), "RelayRefused", nil)
	}
}

// marketplaceJSON writes a call's body with its members in reverse order of
// their names. The marketplace's bodies are not always sorted (contract
// §8.1) and it may sign their canonical form, so a merchant must verify
// unsorted bodies; the emulator sends nothing else (a body of one member
// excepted).
func marketplaceJSON(members map[string]any) string {
	names := slices.Sorted(maps.Keys(members)) //workflowcheck:ignore the keys are sorted: their order is fixed
	slices.Reverse(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(mustJSON(name))
		b.WriteByte(':')
		b.WriteString(mustJSON(members[name]))
	}
	b.WriteByte('}')
	return b.String()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("emulator: encode %T: %v", v, err))
	}
	return string(b)
}
