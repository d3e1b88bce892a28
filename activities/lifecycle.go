package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/fulfillment-server/fulfillment/internal/config"
)

// LifecycleConfig is the worker's lifecycle configuration: the policy
// every new instance starts from (its fields read from the environment),
// and which products need supervision or are billed daily. Each instance
// takes its policy from it once and keeps it.
type LifecycleConfig struct {
	Policy
	// SupervisedProducts lists the productIds or skuCodes that need
	// service supervision; "*" means every product.
	SupervisedProducts config.List `env:"SUPERVISED_PRODUCTS" doc:"comma-separated productIds or skuCodes that need service supervision (*: all)"`
	// SupervisionReviewedProducts lists the supervised products whose
	// deliveries Huawei Cloud reviews (华为云复核: 赋能云 and 基地云
	// orders); "*" means every supervised product.
	SupervisionReviewedProducts config.List `env:"SUPERVISION_REVIEWED_PRODUCTS" doc:"comma-separated productIds or skuCodes of supervised products whose deliveries Huawei Cloud reviews before the buyer accepts (赋能云/基地云; *: all)"`
	// MeteringDailyProducts lists the productIds or skuCodes ("*" for all)
	// billed daily instead of every MeteringPeriod.
	MeteringDailyProducts config.List `env:"METERING_DAILY_PRODUCTS" doc:"comma-separated productIds or skuCodes billed daily (*: all): their periods are UTC days"`
	// PackageResetProducts declares the packages whose content resets
	// (按月/按年重置): Query Order does not say it (contract §6.4), the
	// listing does, so the merchant declares it here.
	PackageResetProducts config.List `env:"PACKAGE_RESET_PRODUCTS" doc:"packages (套餐包) whose quota resets: comma-separated productId:monthly or productId:yearly (a skuCode instead of a productId works too); the quota comes back each month or year from the package's start (contract §6.4)"`
}

// PackageResets reads PACKAGE_RESET_PRODUCTS: productId (or skuCode) →
// PackageResetMonthly or PackageResetYearly.
func PackageResets(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range list {
		id, reset, ok := strings.Cut(item, ":")
		id, reset = strings.TrimSpace(id), strings.ToLower(strings.TrimSpace(reset))
		if !ok || id == "" || (reset != PackageResetMonthly && reset != PackageResetYearly) {
			return nil, fmt.Errorf("package reset %q is not productId:monthly or productId:yearly", item)
		}
		out[id] = reset
	}
	return out, nil
}

// packageReset is how the order's package resets, or "" (the productId's
// declaration before the skuCode's).
func packageReset(list []string, order Order) string {
	resets, err := PackageResets(list)
	if err != nil || order.ChargingMode != "ON_DEMAND_PKG" {
		return "" // the configuration is checked at startup
	}
	if r, ok := resets[order.ProductID]; ok && order.ProductID != "" {
		return r
	}
	if r, ok := resets[order.SkuCode]; ok && order.SkuCode != "" {
		return r
	}
	return ""
}

// matchesProduct reports whether a list of productIds or skuCodes ("*"
// for every product) names the order's product.
func matchesProduct(list []string, order Order) bool {
	return slices.Contains(list, "*") ||
		(order.ProductID != "" && slices.Contains(list, order.ProductID)) ||
		(order.SkuCode != "" && slices.Contains(list, order.SkuCode))
}

// Policy settles the lifecycle policy of a new instance from the
// configuration and its order.
func (a *Activities) Policy(_ context.Context, in PolicyInput) (Policy, error) {
	p := a.Lifecycle.Policy
	if p.MeteringPeriod <= 0 {
		p.MeteringPeriod = time.Hour
	}
	if matchesProduct(a.Lifecycle.MeteringDailyProducts, in.Order) {
		p.MeteringPeriod = 24 * time.Hour
	}
	p.Supervised = matchesProduct(a.Lifecycle.SupervisedProducts, in.Order)
	p.SupervisionReviewed = p.Supervised && matchesProduct(a.Lifecycle.SupervisionReviewedProducts, in.Order)
	p.PackageReset = packageReset(a.Lifecycle.PackageResetProducts, in.Order)
	if p.PackageReset == "" || p.PackageResetScale <= 1 {
		p.PackageResetScale = 0 // the calendar's own pace
	}
	return p, nil
}

// Alerter tells operators about instances that need them.
type Alerter struct {
	// WebhookURL, when set, receives every alert as a JSON POST:
	// {"instanceId","kind","message","at"}.
	WebhookURL string
	Client     *http.Client
}

// Alert logs the alert at error level and posts it to the webhook if one
// is configured. A webhook that refuses the alert makes the activity retry.
func (a *Activities) Alert(ctx context.Context, in AlertInput) error {
	activity.GetLogger(ctx).Error("Instance needs an operator",
		"alert", in.Kind, "instanceId", in.InstanceID, "message", in.Message)
	return a.Alerts.Send(ctx, in.InstanceID, in.Kind, in.Message)
}

// Send posts an alert to the webhook, if one is configured, and reports
// whether the webhook took it (a 2xx answer).
func (a Alerter) Send(ctx context.Context, instanceID, kind, message string) error {
	if a.WebhookURL == "" {
		return nil
	}
	body, err := json.Marshal(map[string]any{
		"instanceId": instanceID, "kind": kind, "message": message, "at": time.Now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("alert webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("alert webhook answered %d", resp.StatusCode)
	}
	return nil
}
