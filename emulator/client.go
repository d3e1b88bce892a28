package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls the emulator's console API: the CLI and the tests use it.
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// APIError is a refusal by the console, with its status and reason.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("emulator answered %d: %s", e.Status, e.Message)
}

// Buy places an order.
func (c *Client) Buy(ctx context.Context, req BuyRequest) (Bought, error) {
	var out Bought
	err := c.do(ctx, http.MethodPost, "/emulator/purchases", req, &out)
	return out, err
}

// Purchases lists the purchases, newest first.
func (c *Client) Purchases(ctx context.Context) ([]Purchase, error) {
	var out struct {
		Purchases []Purchase `json:"purchases"`
	}
	err := c.do(ctx, http.MethodGet, "/emulator/purchases", nil, &out)
	return out.Purchases, err
}

// Purchase returns everything the consoles show of a purchase.
func (c *Client) Purchase(ctx context.Context, id string) (PurchaseView, error) {
	var out PurchaseView
	err := c.do(ctx, http.MethodGet, "/emulator/purchases/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Act takes a buyer's or console action on a purchase.
func (c *Client) Act(ctx context.Context, purchaseID string, a Action) error {
	kind := a.Kind
	a.Kind = ""
	return c.do(ctx, http.MethodPost, "/emulator/purchases/"+url.PathEscape(purchaseID)+"/actions/"+url.PathEscape(kind), a, nil)
}

// Messages lists failed production-interface calls ("" for all).
func (c *Client) Messages(ctx context.Context, status string) ([]Message, error) {
	var out struct {
		Messages []Message `json:"messages"`
	}
	path := "/emulator/messages"
	if status != "" {
		path += "?status=" + url.QueryEscape(status)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Messages, err
}

// Restart sends a failed call again (重新启动).
func (c *Client) Restart(ctx context.Context, messageID string) error {
	return c.do(ctx, http.MethodPost, "/emulator/messages/"+url.PathEscape(messageID)+"/restart", nil, nil)
}

// Usage lists the usage records the marketplace received for an instance,
// with their totals (the seller console's 话单管理).
func (c *Client) Usage(ctx context.Context, instanceID string) (UsageView, error) {
	var out UsageView
	err := c.do(ctx, http.MethodGet, "/emulator/usage?instanceId="+url.QueryEscape(instanceID), nil, &out)
	return out, err
}

// PurchaseUsage lists the usage records of a purchase's instance.
func (c *Client) PurchaseUsage(ctx context.Context, purchaseID string) (UsageView, error) {
	var out UsageView
	err := c.do(ctx, http.MethodGet, "/emulator/usage?purchaseId="+url.QueryEscape(purchaseID), nil, &out)
	return out, err
}

// UsagePushes lists the latest usage pushes the open API accepted, newest
// first; limit 0 leaves the console's default (50).
func (c *Client) UsagePushes(ctx context.Context, limit int) ([]ReceivedPush, error) {
	path := "/emulator/usage/pushes"
	if limit != 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out UsagePushes
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Pushes, err
}

// UsagePush returns one accepted usage push and the records it delivered.
func (c *Client) UsagePush(ctx context.Context, pushID string) (UsagePushView, error) {
	var out UsagePushView
	err := c.do(ctx, http.MethodGet, "/emulator/usage/pushes/"+url.PathEscape(pushID), nil, &out)
	return out, err
}

// FailUsage makes the open API refuse the next f.Count usage pushes, and
// returns what was armed (with the defaults filled in).
func (c *Client) FailUsage(ctx context.Context, f UsageFailures) (UsageFailures, error) {
	var out UsageFailures
	err := c.do(ctx, http.MethodPost, "/emulator/usage/failures", f, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// ProbeKit plays the seller's kit credential probe: the kit's calls with
// empty instanceId, and what the merchant answered to each.
func (c *Client) ProbeKit(ctx context.Context) (KitProbe, error) {
	var out KitProbe
	err := c.do(ctx, http.MethodPost, "/emulator/kit/probe", nil, &out)
	return out, err
}
