package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Secret is a configuration value that must never be printed.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return "(unset)"
	}
	return "(set)"
}

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Config is every setting of the server, read from the environment. The
// defaults are here and nowhere else; README.md documents each variable.
type Config struct {
	HTTPAddr          string // HTTP_ADDR
	PublicURL         string // PUBLIC_URL: where buyers reach this server (demo tenant pages)
	DatabaseURL       Secret // DATABASE_URL (may hold a password)
	TemporalAddress   string // TEMPORAL_ADDRESS
	TemporalNamespace string // TEMPORAL_NAMESPACE
	TaskQueue         string // TEMPORAL_TASK_QUEUE
	AccessKey         Secret // KOOGALLERY_ACCESS_KEY
	AppInfoEncryption string // KOOGALLERY_APPINFO_ENCRYPTION
	AdminToken        Secret // FULFILLMENT_ADMIN_TOKEN
	APIURL            string // KOOGALLERY_API_URL
	APIFallbackURL    string // KOOGALLERY_API_FALLBACK_URL
	AK                Secret // KOOGALLERY_AK
	SK                Secret // KOOGALLERY_SK
	Provisioner       string // PROVISIONER: "demo" or the application's URL
	ProvisionerKey    Secret // PROVISIONER_KEY
	LogLevel          string // LOG_LEVEL
	LogFormat         string // LOG_FORMAT

	FreezeGrace          time.Duration // LIFECYCLE_FREEZE_GRACE
	Retention            time.Duration // LIFECYCLE_RETENTION
	ReleasePolicy        string        // LIFECYCLE_RELEASE_POLICY
	SupervisionSyncDelay time.Duration // SUPERVISION_SYNC_DELAY
	SupervisedProducts   []string      // SUPERVISED_PRODUCTS
	DebugTTL             time.Duration // DEBUG_INSTANCE_TTL
	AlertWebhookURL      string        // ALERT_WEBHOOK_URL
	SpoolDir             string        // FULFILLMENT_SPOOL_DIR
	NewInstanceWait      time.Duration // NEWINSTANCE_WAIT
	TenantRetryLimit     time.Duration // PROVISIONER_RETRY_LIMIT

	// Pay-per-use.
	UsageToken            Secret        // FULFILLMENT_USAGE_TOKEN
	MeteringPeriod        time.Duration // METERING_PERIOD
	MeteringDailyProducts []string      // METERING_DAILY_PRODUCTS
	MeteringPushDelay     time.Duration // METERING_PUSH_DELAY

	// The emulator (fulfillment emulator).
	EmulatorAddr             string        // EMULATOR_ADDR
	EmulatorURL              string        // EMULATOR_URL (for the CLI)
	ProductionURL            string        // EMULATOR_PRODUCTION_URL
	EmulatorScale            string        // EMULATOR_TIME_SCALE
	EmulatorTaskQueue        string        // EMULATOR_TASK_QUEUE
	EmulatorSignatureForm    string        // EMULATOR_SIGNATURE_FORM
	EmulatorRetention        time.Duration // EMULATOR_RETENTION
	EmulatorSupervisionDelay time.Duration // EMULATOR_SUPERVISION_DELAY
	MerchantAdminURL         string        // EMULATOR_MERCHANT_ADMIN_URL
	MerchantAdminToken       Secret        // EMULATOR_MERCHANT_ADMIN_TOKEN
}

// defaults are the values used when a variable is unset or empty.
var defaults = map[string]string{
	"HTTP_ADDR":                     ":8080",
	"DATABASE_URL":                  "postgres://postgres@127.0.0.1:5432/fulfillment?sslmode=disable",
	"TEMPORAL_ADDRESS":              "127.0.0.1:7233",
	"TEMPORAL_NAMESPACE":            "default",
	"TEMPORAL_TASK_QUEUE":           workflows.DefaultTaskQueue,
	"KOOGALLERY_APPINFO_ENCRYPTION": string(api.EncryptAES256),
	"KOOGALLERY_API_URL":            "https://mkt.myhuaweicloud.com",
	"PROVISIONER":                   "demo",
	"PROVISIONER_RETRY_LIMIT":       "1h",
	"LOG_LEVEL":                     "info",
	"LOG_FORMAT":                    "json",
	"EMULATOR_ADDR":                 ":8090",
	"EMULATOR_URL":                  "http://127.0.0.1:8090",
	"EMULATOR_PRODUCTION_URL":       "http://127.0.0.1:8080/produce",
	"EMULATOR_TIME_SCALE":           "1",
	"EMULATOR_TASK_QUEUE":           "koogallery-emulator",
	"EMULATOR_SIGNATURE_FORM":       string(koogallery.FormCanonical),
	"EMULATOR_RETENTION":            "360h",
	"EMULATOR_SUPERVISION_DELAY":    "3h",
	"LIFECYCLE_FREEZE_GRACE":        "24h",
	"LIFECYCLE_RETENTION":           "360h", // the 15 days of SPEC §5.1
	"LIFECYCLE_RELEASE_POLICY":      workflows.ReleasePolicyHold,
	"SUPERVISION_SYNC_DELAY":        "3h",
	"DEBUG_INSTANCE_TTL":            "72h",
	"FULFILLMENT_SPOOL_DIR":         ".data/spool",
	"NEWINSTANCE_WAIT":              "0s",
	"METERING_PERIOD":               "1h",
	"METERING_PUSH_DELAY":           "5m",
}

// EnvVars lists every variable the binary reads.
var EnvVars = []string{
	"HTTP_ADDR", "PUBLIC_URL", "DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE",
	"TEMPORAL_TASK_QUEUE", "KOOGALLERY_ACCESS_KEY", "KOOGALLERY_APPINFO_ENCRYPTION",
	"FULFILLMENT_ADMIN_TOKEN", "KOOGALLERY_API_URL", "KOOGALLERY_API_FALLBACK_URL",
	"KOOGALLERY_AK", "KOOGALLERY_SK", "PROVISIONER", "PROVISIONER_KEY", "PROVISIONER_RETRY_LIMIT", "LOG_LEVEL",
	"LOG_FORMAT", "LIFECYCLE_FREEZE_GRACE", "LIFECYCLE_RETENTION",
	"LIFECYCLE_RELEASE_POLICY", "SUPERVISION_SYNC_DELAY", "SUPERVISED_PRODUCTS", "DEBUG_INSTANCE_TTL",
	"ALERT_WEBHOOK_URL", "FULFILLMENT_SPOOL_DIR", "NEWINSTANCE_WAIT",
	"FULFILLMENT_USAGE_TOKEN", "METERING_PERIOD", "METERING_DAILY_PRODUCTS", "METERING_PUSH_DELAY", "EMULATOR_ADDR", "EMULATOR_URL", "EMULATOR_PRODUCTION_URL",
	"EMULATOR_TIME_SCALE", "EMULATOR_TASK_QUEUE", "EMULATOR_SIGNATURE_FORM", "EMULATOR_RETENTION", "EMULATOR_SUPERVISION_DELAY",
	"EMULATOR_MERCHANT_ADMIN_URL", "EMULATOR_MERCHANT_ADMIN_TOKEN",
}

// loadConfig reads the configuration from getenv (os.Getenv in main).
func loadConfig(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return defaults[name]
	}
	c := Config{
		HTTPAddr:              get("HTTP_ADDR"),
		PublicURL:             get("PUBLIC_URL"),
		DatabaseURL:           Secret(get("DATABASE_URL")),
		TemporalAddress:       get("TEMPORAL_ADDRESS"),
		TemporalNamespace:     get("TEMPORAL_NAMESPACE"),
		TaskQueue:             get("TEMPORAL_TASK_QUEUE"),
		AccessKey:             Secret(getenv("KOOGALLERY_ACCESS_KEY")),
		AppInfoEncryption:     strings.ToLower(get("KOOGALLERY_APPINFO_ENCRYPTION")),
		AdminToken:            Secret(getenv("FULFILLMENT_ADMIN_TOKEN")),
		APIURL:                get("KOOGALLERY_API_URL"),
		APIFallbackURL:        get("KOOGALLERY_API_FALLBACK_URL"),
		AK:                    Secret(getenv("KOOGALLERY_AK")),
		SK:                    Secret(getenv("KOOGALLERY_SK")),
		Provisioner:           get("PROVISIONER"),
		ProvisionerKey:        Secret(getenv("PROVISIONER_KEY")),
		LogLevel:              strings.ToLower(get("LOG_LEVEL")),
		LogFormat:             strings.ToLower(get("LOG_FORMAT")),
		EmulatorAddr:          get("EMULATOR_ADDR"),
		EmulatorURL:           get("EMULATOR_URL"),
		ProductionURL:         get("EMULATOR_PRODUCTION_URL"),
		EmulatorScale:         get("EMULATOR_TIME_SCALE"),
		EmulatorTaskQueue:     get("EMULATOR_TASK_QUEUE"),
		EmulatorSignatureForm: strings.ToLower(get("EMULATOR_SIGNATURE_FORM")),
		MerchantAdminURL:      get("EMULATOR_MERCHANT_ADMIN_URL"),
		MerchantAdminToken:    Secret(getenv("EMULATOR_MERCHANT_ADMIN_TOKEN")),
		ReleasePolicy:         strings.ToLower(get("LIFECYCLE_RELEASE_POLICY")),
		AlertWebhookURL:       get("ALERT_WEBHOOK_URL"),
		SpoolDir:              get("FULFILLMENT_SPOOL_DIR"),
		UsageToken:            Secret(getenv("FULFILLMENT_USAGE_TOKEN")),
	}
	c.SupervisedProducts = splitList(get("SUPERVISED_PRODUCTS"))
	c.MeteringDailyProducts = splitList(get("METERING_DAILY_PRODUCTS"))
	if c.PublicURL == "" {
		c.PublicURL = localURL(c.HTTPAddr)
	}
	var problems []string
	for name, into := range map[string]*time.Duration{
		"LIFECYCLE_FREEZE_GRACE": &c.FreezeGrace, "LIFECYCLE_RETENTION": &c.Retention,
		"SUPERVISION_SYNC_DELAY": &c.SupervisionSyncDelay, "DEBUG_INSTANCE_TTL": &c.DebugTTL,
		"EMULATOR_RETENTION": &c.EmulatorRetention, "EMULATOR_SUPERVISION_DELAY": &c.EmulatorSupervisionDelay,
		"NEWINSTANCE_WAIT": &c.NewInstanceWait, "METERING_PERIOD": &c.MeteringPeriod,
		"METERING_PUSH_DELAY": &c.MeteringPushDelay, "PROVISIONER_RETRY_LIMIT": &c.TenantRetryLimit,
	} {
		d, err := time.ParseDuration(get(name))
		if err != nil || d < 0 {
			problems = append(problems, name+" must be a Go duration such as 24h, 90m or 5s")
			continue
		}
		*into = d
	}
	if c.TenantRetryLimit < time.Second {
		problems = append(problems, "PROVISIONER_RETRY_LIMIT must be at least 1s")
	}
	if c.NewInstanceWait > api.AnswerBudget {
		problems = append(problems, fmt.Sprintf("NEWINSTANCE_WAIT must leave time under KooGallery's 5 s timeout: at most %s", api.AnswerBudget))
	}
	// A period must divide a day so that periods line up with the
	// marketplace's hours and days (UTC).
	if c.MeteringPeriod < time.Second || c.MeteringPeriod > 24*time.Hour || (24*time.Hour)%c.MeteringPeriod != 0 {
		problems = append(problems, "METERING_PERIOD must divide a day evenly, from 1s to 24h (1h, the marketplace's hourly billing, is the default)")
	}
	if c.MeteringPushDelay > 2*time.Hour || (c.MeteringPeriod > 0 && c.MeteringPushDelay >= c.MeteringPeriod && c.MeteringPeriod < 24*time.Hour) {
		problems = append(problems, "METERING_PUSH_DELAY must be shorter than METERING_PERIOD and at most 2h (the marketplace collects hourly usage at :15)")
	}
	if c.UsageToken != "" && c.UsageToken == c.AdminToken {
		problems = append(problems, "FULFILLMENT_USAGE_TOKEN must differ from FULFILLMENT_ADMIN_TOKEN: it only reports usage")
	}
	if c.FreezeGrace > c.Retention {
		problems = append(problems, "LIFECYCLE_FREEZE_GRACE must not be longer than LIFECYCLE_RETENTION")
	}
	if c.ReleasePolicy != workflows.ReleasePolicyHold && c.ReleasePolicy != workflows.ReleasePolicyRelease {
		problems = append(problems, "LIFECYCLE_RELEASE_POLICY must be hold or release")
	}
	if f := koogallery.SignedForm(c.EmulatorSignatureForm); f != koogallery.FormCanonical && f != koogallery.FormRaw {
		problems = append(problems, "EMULATOR_SIGNATURE_FORM must be canonical (sign the sorted body, as Huawei's sample verifies) or raw (sign the bytes sent)")
	}
	if _, err := emulator.ParseScale(c.EmulatorScale); err != nil {
		problems = append(problems, "EMULATOR_TIME_SCALE must be a factor of at least 1 or emulated=real such as 1d=10s")
	}
	if c.AlertWebhookURL != "" {
		if u, err := url.Parse(c.AlertWebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, "ALERT_WEBHOOK_URL must be an http(s) URL")
		}
	}
	switch api.AppInfoEncryption(c.AppInfoEncryption) {
	case api.EncryptAES256, api.EncryptAES128, api.EncryptNone:
	default:
		problems = append(problems, "KOOGALLERY_APPINFO_ENCRYPTION must be aes256, aes128 or none")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		problems = append(problems, "LOG_LEVEL must be debug, info, warn or error")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		problems = append(problems, "LOG_FORMAT must be json or text")
	}
	if c.Provisioner != "demo" {
		if u, err := url.Parse(c.Provisioner); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, "PROVISIONER must be demo or the http(s) URL of the merchant's application")
		}
	}
	if len(problems) > 0 {
		return Config{}, errors.New("configuration: " + strings.Join(problems, "; "))
	}
	return c, nil
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
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.String("public_url", c.PublicURL),
		slog.String("database", redactURL(string(c.DatabaseURL))),
		slog.String("temporal_address", c.TemporalAddress),
		slog.String("temporal_namespace", c.TemporalNamespace),
		slog.String("task_queue", c.TaskQueue),
		slog.String("access_key", c.AccessKey.String()),
		slog.String("appinfo_encryption", c.AppInfoEncryption),
		slog.String("admin_token", c.AdminToken.String()),
		slog.String("open_api_url", c.APIURL),
		slog.String("open_api_ak", c.AK.String()),
		slog.String("open_api_sk", c.SK.String()),
		slog.String("provisioner", redactURL(c.Provisioner)),
		slog.String("freeze_grace", c.FreezeGrace.String()),
		slog.String("retention", c.Retention.String()),
		slog.String("release_policy", c.ReleasePolicy),
		slog.String("supervision_sync_delay", c.SupervisionSyncDelay.String()),
		slog.Any("supervised_products", c.SupervisedProducts),
		slog.String("alert_webhook", redactURL(c.AlertWebhookURL)),
		slog.String("spool_dir", c.SpoolDir),
		slog.String("usage_token", c.UsageToken.String()),
		slog.String("metering_period", c.MeteringPeriod.String()),
		slog.Any("metering_daily_products", c.MeteringDailyProducts),
		slog.String("metering_push_delay", c.MeteringPushDelay.String()),
	)
}

// splitList reads a comma-separated list, skipping empty items.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// redactURL hides a password in a URL; a value that is not a URL is shown.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return raw
	}
	return u.Redacted()
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

func newLogger(c Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel)) // validated in loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
