package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/config"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/workflows"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(nil))
	require.NoError(t, err)
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, "http://localhost:8080", c.PublicURL)
	require.Equal(t, "127.0.0.1:7233", c.TemporalAddress)
	require.Equal(t, "default", c.TemporalNamespace)
	require.Equal(t, "fulfillment", c.TaskQueue)
	require.Equal(t, "aes256", c.AppInfoEncryption)
	require.Equal(t, "https://mkt.myhuaweicloud.com", c.APIURL)
	require.Equal(t, "demo", c.Provisioner)
	require.Equal(t, workflows.DefaultTaskQueue, c.TaskQueue)
	require.Equal(t, activities.Policy{
		FreezeGrace: 24 * time.Hour, Retention: 360 * time.Hour, ReleasePolicy: "hold", SupervisionSyncDelay: 3 * time.Hour,
		SupervisionStallAlert: 5 * 24 * time.Hour,
		DebugTTL:              72 * time.Hour, MeteringPeriod: time.Hour, MeteringPushDelay: 5 * time.Minute, TenantRetryLimit: time.Hour,
	}, c.Lifecycle.Policy)
	// Every variable is declared once.
	names := envNames()
	require.Len(t, names, len(slices.Compact(slices.Sorted(slices.Values(names)))))
}

func TestConfigRejectsBadValues(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"encryption":                               {"KOOGALLERY_APPINFO_ENCRYPTION": "rot13"},
		"log level":                                {"LOG_LEVEL": "loud"},
		"log format":                               {"LOG_FORMAT": "xml"},
		"provisioner":                              {"PROVISIONER": "ftp://app"},
		"metering period not dividing a day":       {"METERING_PERIOD": "7h"},
		"metering period longer than a day":        {"METERING_PERIOD": "48h"},
		"metering period zero":                     {"METERING_PERIOD": "0s"},
		"push delay as long as the period":         {"METERING_PERIOD": "10s", "METERING_PUSH_DELAY": "10s"},
		"push delay past the collection":           {"METERING_PUSH_DELAY": "3h", "METERING_PERIOD": "24h"},
		"usage token equal to the admin token":     {"FULFILLMENT_USAGE_TOKEN": "t", "FULFILLMENT_ADMIN_TOKEN": "t"},
		"no retries of the application":            {"PROVISIONER_RETRY_LIMIT": "0s"},
		"usage value neither number nor string":    {"USAGE_VALUE_FORM": "float"},
		"package reset neither monthly nor yearly": {"PACKAGE_RESET_PRODUCTS": "prod-a:monthly,prod-b:weekly"},
		"package reset clock slower than real":     {"PACKAGE_RESET_TIME_SCALE": "0.5"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(env(vars))
			require.Error(t, err)
		})
	}
}

func TestConfigMetering(t *testing.T) {
	c, err := loadConfig(env(nil))
	require.NoError(t, err)
	require.Equal(t, time.Hour, c.Lifecycle.MeteringPeriod)
	require.Equal(t, 5*time.Minute, c.Lifecycle.MeteringPushDelay)
	require.Empty(t, c.Lifecycle.MeteringDailyProducts)

	c, err = loadConfig(env(map[string]string{
		"METERING_PERIOD": "2s", "METERING_PUSH_DELAY": "500ms", "METERING_DAILY_PRODUCTS": " sku-sms, ,prod-mms ",
	}))
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, c.Lifecycle.MeteringPeriod)
	require.Equal(t, 500*time.Millisecond, c.Lifecycle.MeteringPushDelay)
	require.Equal(t, config.List{"sku-sms", "prod-mms"}, c.Lifecycle.MeteringDailyProducts)
	require.Equal(t, "number", c.UsageValueForm, "the default")
	require.Zero(t, c.Lifecycle.PackageResetScale, "packages reset on the calendar's own pace")

	c, err = loadConfig(env(map[string]string{"PACKAGE_RESET_TIME_SCALE": "1d=10s"}))
	require.NoError(t, err)
	require.Equal(t, 8640.0, c.Lifecycle.PackageResetScale)

	c, err = loadConfig(env(map[string]string{"USAGE_VALUE_FORM": "String", "PROVISIONER": "http://app.example", "PROVISIONER_KEY": "k",
		"KOOGALLERY_AK": "ak", "KOOGALLERY_SK": "sk"}))
	require.NoError(t, err)
	a, err := newActivities(c, nil, nil)
	require.NoError(t, err)
	require.Equal(t, koogallery.UsageValueString, a.UsageValueForm, "the setting reaches the activities")
}

func TestConfigRequirements(t *testing.T) {
	c, err := loadConfig(env(nil))
	require.NoError(t, err)
	require.ErrorContains(t, c.requireForAPI(), "KOOGALLERY_ACCESS_KEY")
	err = c.requireForWorker()
	require.ErrorContains(t, err, "KOOGALLERY_ACCESS_KEY")
	require.ErrorContains(t, err, "KOOGALLERY_AK and KOOGALLERY_SK")

	c, err = loadConfig(env(map[string]string{
		"KOOGALLERY_ACCESS_KEY": "k", "KOOGALLERY_AK": "a", "KOOGALLERY_SK": "s", "PROVISIONER": "https://app.example.com/kg",
	}))
	require.NoError(t, err)
	require.NoError(t, c.requireForAPI())
	require.ErrorContains(t, c.requireForWorker(), "PROVISIONER_KEY")
}

func TestServeRefusesToStartWithoutAccessKey(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve"}, env(map[string]string{"LOG_LEVEL": "error"}), nil, &out)
	require.ErrorContains(t, err, "KOOGALLERY_ACCESS_KEY is required")
}

func TestConfigLogValueHidesSecrets(t *testing.T) {
	c, err := loadConfig(env(map[string]string{
		"KOOGALLERY_ACCESS_KEY": "access-secret-1", "FULFILLMENT_ADMIN_TOKEN": "admin-secret-2", "FULFILLMENT_USAGE_TOKEN": "usage-secret-8",
		"KOOGALLERY_AK": "ak-secret-3", "KOOGALLERY_SK": "sk-secret-4", "PROVISIONER_KEY": "prov-secret-5",
		"DATABASE_URL": "postgres://user:db-secret-6@db:5432/x", "PROVISIONER": "https://u:prov-url-secret-7@app.example.com/kg",
	}))
	require.NoError(t, err)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	for _, secret := range []string{"access-secret-1", "admin-secret-2", "ak-secret-3", "sk-secret-4", "prov-secret-5", "db-secret-6", "prov-url-secret-7", "usage-secret-8"} {
		require.NotContains(t, buf.String(), secret)
	}
	require.Contains(t, buf.String(), `"access_key":"(set)"`)
}

func TestSignProducesAVerifiableQuery(t *testing.T) {
	body := `{"activity":"newInstance","orderId":"O","orderLineId":"O-1","businessId":"b"}`
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"sign", "-key", "abcde", "-body", body}, env(nil), nil, &out))
	query, err := url.ParseQuery(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	v := &koogallery.Verifier{AccessKey: "abcde", Nonces: freshNonces{}}
	form, err := v.Verify(context.Background(), query, []byte(body))
	require.NoError(t, err)
	require.Equal(t, koogallery.FormCanonical, form, "the canonical form is signed by default")

	// From standard input, with the key from the environment, over the raw body.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"sign", "-form", "raw"}, env(map[string]string{"KOOGALLERY_ACCESS_KEY": "abcde"}),
		strings.NewReader(body), &out))
	query, err = url.ParseQuery(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	form, err = v.Verify(context.Background(), query, []byte(body))
	require.NoError(t, err)
	require.Equal(t, koogallery.FormRaw, form)

	// A license-code callback, with the license key from the environment.
	out.Reset()
	code := `{"activity":"updateLicenseCodeStatus","license":"PL1","status":"FREEZE"}`
	require.NoError(t, run(context.Background(), []string{"sign", "-license", "-body", code},
		env(map[string]string{"KOOGALLERY_ACCESS_KEY": "abcde", "KOOGALLERY_LICENSE_ACCESS_KEY": "lic"}), nil, &out))
	query, err = url.ParseQuery(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	_, err = (&koogallery.Verifier{AccessKey: "lic", Nonces: freshNonces{}}).Verify(context.Background(), query, []byte(code))
	require.NoError(t, err)
	require.ErrorContains(t, run(context.Background(), []string{"sign", "-license", "-body", code}, env(nil), nil, &out),
		"set KOOGALLERY_LICENSE_ACCESS_KEY")
	require.ErrorContains(t, run(context.Background(), []string{"sign", "-license", "-kit", "-key", "k", "-body", code}, env(nil), nil, &out),
		"choose one")

	require.ErrorContains(t, run(context.Background(), []string{"sign", "-body", body}, env(nil), nil, &out), "no access key")
	require.ErrorContains(t, run(context.Background(), []string{"sign", "-key", "k", "-body", "[1]"}, env(nil), nil, &out), "no canonical form")
	require.ErrorContains(t, run(context.Background(), []string{"sign", "-key", "k", "-form", "sorted", "-body", body}, env(nil), nil, &out), "unknown signature form")
}

func TestDecryptReadsWhatQueryInstanceSends(t *testing.T) {
	for _, size := range []koogallery.KeySize{koogallery.AES256, koogallery.AES128} {
		enc, err := koogallery.EncryptField("abcde", size, "初始密码-Pa55")
		require.NoError(t, err)
		args := []string{"decrypt", "-key", "abcde", enc}
		if size == koogallery.AES128 {
			args = []string{"decrypt", "-key", "abcde", "-aes128", enc}
		}
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), args, env(nil), nil, &out))
		require.Equal(t, "初始密码-Pa55\n", out.String())
	}
	var out bytes.Buffer
	require.Error(t, run(context.Background(), []string{"decrypt", "-key", "abcde", "A1b2C3d4E5f6G7h8garbage"}, env(nil), nil, &out))
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	require.ErrorIs(t, run(context.Background(), []string{"launch"}, env(nil), nil, &out), errUsage)
	require.ErrorIs(t, run(context.Background(), nil, env(nil), nil, &out), errUsage)
	require.Contains(t, out.String(), "Usage: fulfillment <command>")
}

// TestBenchIsTheLoadGenerator: "fulfillment bench" hands its flags to the
// load generator's command line, which bench/loadgen tests in full.
func TestBenchIsTheLoadGenerator(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"bench", "-h"}, env(nil), nil, &out))
	require.Contains(t, out.String(), "Usage: fulfillment bench [flags]")
	require.Contains(t, out.String(), "-orders string")
	require.ErrorContains(t, run(context.Background(), []string{"bench"}, env(nil), nil, &out),
		"bench: set KOOGALLERY_ACCESS_KEY and FULFILLMENT_ADMIN_TOKEN")
}

// freshNonces accepts every nonce.
type freshNonces struct{}

func (freshNonces) Claim(context.Context, string, time.Time) (bool, error) { return true, nil }

// TestREADMEDocumentsEveryVariable keeps the README's configuration table
// true: it is the one the settings' declarations make (make readme-env).
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), config.Markdown(envVariables()),
		"README.md's table of variables is not the one their declarations make: run make readme-env")
	for _, name := range envNames() {
		require.Contains(t, string(readme), "`"+name+"`", "README.md does not document %s", name)
	}
}
