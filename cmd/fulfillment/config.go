package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/internal/config"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Config is every setting of the server, read from the environment. Each
// variable's name, default and meaning are written once, in the tags; the
// README's table is made from them (fulfillment env).
type Config struct {
	config.Common
	HTTPAddr           string        `env:"HTTP_ADDR, default=:8080" doc:"where the HTTP API listens"`
	PublicURL          string        `env:"PUBLIC_URL" doc:"where buyers reach this server (the demo tenants' pages); default http://localhost:<port of HTTP_ADDR>"`
	TaskQueue          string        `env:"TEMPORAL_TASK_QUEUE, default=fulfillment" doc:"task queue of the instance workflows"`
	AdminToken         config.Secret `env:"FULFILLMENT_ADMIN_TOKEN" doc:"bearer token of the admin API; unset disables it (401)"`
	UsageToken         config.Secret `env:"FULFILLMENT_USAGE_TOKEN" doc:"bearer token that may only report usage (POST /v1/usage), for your application; the admin token works too"`
	LicenseToken       config.Secret `env:"FULFILLMENT_LICENSE_TOKEN" doc:"bearer token with which your licensed software activates and checks license codes (/v1/licenses), and nothing else; the admin token works too"`
	APIURL             string        `env:"KOOGALLERY_API_URL, default=https://mkt.myhuaweicloud.com" doc:"the open API (international: https://mkt-intl.myhuaweicloud.com, EU: https://mkt.myhuaweicloud.eu)"`
	APIFallbackURL     string        `env:"KOOGALLERY_API_FALLBACK_URL" doc:"tried when the first host is unreachable (China: https://mkt.myhuaweicloud.cn)"`
	PackageResetScale  string        `env:"PACKAGE_RESET_TIME_SCALE, default=1" doc:"rehearsals only: the packages of PACKAGE_RESET_PRODUCTS count their months this much faster, a factor or emulated=real like EMULATOR_TIME_SCALE (make run: the emulator's); 1 in production"`
	UsageValueForm     string        `env:"USAGE_VALUE_FORM, default=number" doc:"the JSON type of usage_value in usage pushes: number (1.5) or string (\"1.5\"); Huawei's pages disagree, settle it with the seller console's debugger (docs/operations.md)"`
	Provisioner        string        `env:"PROVISIONER, default=demo" doc:"demo, or the base URL of your application's provisioning endpoint"`
	ProvisionerKey     config.Secret `env:"PROVISIONER_KEY" doc:"required with a URL: HMAC key that signs calls to your application"`
	AlertWebhookURL    string        `env:"ALERT_WEBHOOK_URL" doc:"receives a JSON POST for every alert: a parked step or callback, an overdue release, a held usage period (alerts are logged at error level either way)"`
	SpoolDir           string        `env:"FULFILLMENT_SPOOL_DIR, default=.data/spool" doc:"local directory that keeps callbacks the marketplace may send only once while Postgres is unreachable; put it on persistent storage"`
	KitPrivateKeyFiles config.List   `env:"KOOGALLERY_KIT_PRIVATE_KEY_FILE" doc:"联营 listings: comma-separated PEM files of the RSA private keys (at least 3072 bits) that decrypt the kit's clientSecret, the current key first, older ones after it while the marketplace may still use them"`
	LicenseNodeLocked  config.List   `env:"LICENSE_NODE_LOCKED_PRODUCTS" doc:"online licence products: comma-separated productIds or skuCodes (*: all) whose licences are bound to a device; a getLicenseAsync without deviceFingerprint is answered 000903"`
	NewInstanceWait    time.Duration `env:"NEWINSTANCE_WAIT, default=0s" doc:"how long newInstance waits for the tenant before answering (at most 4s, the answer budget: KooGallery times out after 5 s): a provisioning that parks is then answered 000005, so KooGallery retries (hourly for 3 h, then refunds) and each retry retries the provisioning; 0s answers at once and provisioning continues"`
	// Lifecycle is the policy new instances start from.
	Lifecycle activities.LifecycleConfig
}

// loadConfig reads and checks the configuration (getenv is os.Getenv in
// main).
func loadConfig(getenv func(string) string) (Config, error) {
	var c Config
	if err := config.Load(getenv, &c); err != nil {
		return Config{}, err
	}
	if c.PublicURL == "" {
		c.PublicURL = localURL(c.HTTPAddr)
	}
	c.Lifecycle.ReleasePolicy = strings.ToLower(c.Lifecycle.ReleasePolicy)
	if scale, err := emulator.ParseScale(c.PackageResetScale); err == nil && scale > 1 {
		c.Lifecycle.PackageResetScale = scale // a bad value is refused by problems
	}
	problems := append(c.Common.Problems(), c.problems()...)
	if len(problems) > 0 {
		return Config{}, errors.New("configuration: " + strings.Join(problems, "; "))
	}
	return c, nil
}

// problems lists what is wrong with the server's own settings.
func (c Config) problems() []string {
	var problems []string
	add := func(bad bool, problem string) {
		if bad {
			problems = append(problems, problem)
		}
	}
	p := c.Lifecycle.Policy
	for name, d := range map[string]time.Duration{
		"LIFECYCLE_FREEZE_GRACE": p.FreezeGrace, "LIFECYCLE_RETENTION": p.Retention, "SUPERVISION_SYNC_DELAY": p.SupervisionSyncDelay,
		"SUPERVISION_STALL_ALERT": p.SupervisionStallAlert,
		"DEBUG_INSTANCE_TTL":      p.DebugTTL, "NEWINSTANCE_WAIT": c.NewInstanceWait, "METERING_PUSH_DELAY": p.MeteringPushDelay,
	} {
		add(d < 0, name+" must not be negative")
	}
	add(p.TenantRetryLimit < time.Second, "PROVISIONER_RETRY_LIMIT must be at least 1s")
	add(c.NewInstanceWait > api.AnswerBudget,
		fmt.Sprintf("NEWINSTANCE_WAIT must leave time under KooGallery's 5 s timeout: at most %s", api.AnswerBudget))
	// A period must divide a day so that periods line up with the
	// marketplace's hours and days (UTC).
	add(p.MeteringPeriod < time.Second || p.MeteringPeriod > 24*time.Hour || (24*time.Hour)%p.MeteringPeriod != 0,
		"METERING_PERIOD must divide a day evenly, from 1s to 24h (1h, the marketplace's hourly billing, is the default)")
	add(p.MeteringPushDelay > 2*time.Hour || (p.MeteringPeriod > 0 && p.MeteringPushDelay >= p.MeteringPeriod && p.MeteringPeriod < 24*time.Hour),
		"METERING_PUSH_DELAY must be shorter than METERING_PERIOD and at most 2h (the marketplace collects hourly usage at :15)")
	add(c.UsageToken != "" && c.UsageToken == c.AdminToken,
		"FULFILLMENT_USAGE_TOKEN must differ from FULFILLMENT_ADMIN_TOKEN: it only reports usage")
	add(c.LicenseToken != "" && c.LicenseToken == c.AdminToken,
		"FULFILLMENT_LICENSE_TOKEN must differ from FULFILLMENT_ADMIN_TOKEN: it only activates and checks license codes")
	add(p.FreezeGrace > p.Retention, "LIFECYCLE_FREEZE_GRACE must not be longer than LIFECYCLE_RETENTION")
	add(p.ReleasePolicy != workflows.ReleasePolicyHold && p.ReleasePolicy != workflows.ReleasePolicyRelease,
		"LIFECYCLE_RELEASE_POLICY must be hold or release")
	add(c.AlertWebhookURL != "" && !config.HTTPURL(c.AlertWebhookURL), "ALERT_WEBHOOK_URL must be an http(s) URL")
	_, err := koogallery.ParseUsageValueForm(c.UsageValueForm)
	add(err != nil, "USAGE_VALUE_FORM must be number or string")
	_, scaleErr := emulator.ParseScale(c.PackageResetScale)
	add(scaleErr != nil, "PACKAGE_RESET_TIME_SCALE must be a factor of at least 1, or emulated=real such as 1d=10s")
	_, err = activities.PackageResets(c.Lifecycle.PackageResetProducts)
	add(err != nil, "PACKAGE_RESET_PRODUCTS must be a comma-separated list of productId:monthly or productId:yearly")
	add(c.Provisioner != "demo" && !config.HTTPURL(c.Provisioner),
		"PROVISIONER must be demo or the http(s) URL of the merchant's application")
	return problems
}

// require checks what the API, the worker or both need.
func (c Config) require(withAPI, withWorker bool) error {
	if withAPI {
		if err := c.requireForAPI(); err != nil {
			return err
		}
	}
	if withWorker {
		return c.requireForWorker()
	}
	return nil
}

// requireForAPI checks what serving /produce needs.
func (c Config) requireForAPI() error {
	if c.AccessKey == "" {
		return errors.New("KOOGALLERY_ACCESS_KEY is required to serve /produce: it verifies the marketplace's signatures and signs the answers")
	}
	return nil
}

// requireForWorker checks what running the instance workflows needs.
func (c Config) requireForWorker() error {
	var missing []string
	if c.AccessKey == "" {
		missing = append(missing, "KOOGALLERY_ACCESS_KEY (seals tenants' initial credentials)")
	}
	if c.AK == "" || c.SK == "" {
		missing = append(missing, "KOOGALLERY_AK and KOOGALLERY_SK (sign Query Order calls)")
	}
	if c.Provisioner != "demo" && c.ProvisionerKey == "" {
		missing = append(missing, "PROVISIONER_KEY (signs calls to the merchant's application)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the worker needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// LogValue lists the configuration with secrets hidden.
func (c Config) LogValue() slog.Value {
	p := c.Lifecycle.Policy
	return slog.GroupValue(append(c.Common.LogAttrs(),
		slog.String("http_addr", c.HTTPAddr),
		slog.Any("kit_private_key_files", []string(c.KitPrivateKeyFiles)),
		slog.String("public_url", c.PublicURL),
		slog.String("task_queue", c.TaskQueue),
		slog.String("admin_token", c.AdminToken.String()),
		slog.String("usage_token", c.UsageToken.String()),
		slog.String("license_token", c.LicenseToken.String()),
		slog.String("open_api_url", c.APIURL),
		slog.String("usage_value_form", c.UsageValueForm),
		slog.String("provisioner", config.RedactURL(c.Provisioner)),
		slog.String("provisioner_key", c.ProvisionerKey.String()),
		slog.String("alert_webhook", config.RedactURL(c.AlertWebhookURL)),
		slog.String("spool_dir", c.SpoolDir),
		slog.String("freeze_grace", p.FreezeGrace.String()),
		slog.String("retention", p.Retention.String()),
		slog.String("release_policy", p.ReleasePolicy),
		slog.String("supervision_sync_delay", p.SupervisionSyncDelay.String()),
		slog.Any("supervised_products", c.Lifecycle.SupervisedProducts),
		slog.String("supervision_stall_alert", p.SupervisionStallAlert.String()),
		slog.Any("supervision_reviewed_products", c.Lifecycle.SupervisionReviewedProducts),
		slog.Any("package_reset_products", c.Lifecycle.PackageResetProducts),
		slog.String("package_reset_time_scale", c.PackageResetScale),
		slog.String("metering_period", p.MeteringPeriod.String()),
		slog.Any("metering_daily_products", c.Lifecycle.MeteringDailyProducts),
		slog.String("metering_push_delay", p.MeteringPushDelay.String()),
	)...)
}

// localURL is the default PUBLIC_URL: this machine at the HTTP port.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// envVariables lists every variable the binary reads: the server's, then
// the emulator's own.
func envVariables() []config.Variable {
	vars := config.Variables(Config{})
	seen := map[string]bool{}
	for _, v := range vars {
		seen[v.Name] = true
	}
	for _, v := range config.Variables(emulator.Config{}) {
		if !seen[v.Name] {
			vars = append(vars, v)
		}
	}
	return vars
}

// envNames are the names of every variable the binary reads.
func envNames() []string {
	var names []string
	for _, v := range envVariables() {
		names = append(names, v.Name)
	}
	return names
}
