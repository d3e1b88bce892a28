// Package config reads settings from environment variables into structs
// whose fields declare, once, each variable's name and default (env tag,
// read by github.com/sethvargo/go-envconfig) and what it means (doc tag).
// The server's and the emulator's settings embed Common, what both need.
package config

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// Load fills target, a pointer to a struct with env tags, from getenv
// (os.Getenv in main). A variable that is unset, empty or blank takes its
// default.
func Load(getenv func(string) string, target any) error {
	lookup := envconfig.LookuperFunc(func(key string) (string, bool) {
		v := strings.TrimSpace(getenv(key))
		return v, v != ""
	})
	if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: target, Lookuper: lookup}); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// Common are the settings the server and the emulator share: the same
// database, Temporal, marketplace keys and logging.
type Common struct {
	DatabaseURL       Secret `env:"DATABASE_URL, default=postgres://postgres@127.0.0.1:5432/fulfillment?sslmode=disable" doc:"PostgreSQL"`
	TemporalAddress   string `env:"TEMPORAL_ADDRESS, default=127.0.0.1:7233" doc:"Temporal frontend"`
	TemporalNamespace string `env:"TEMPORAL_NAMESPACE, default=default" doc:"Temporal namespace"`
	AccessKey         Secret `env:"KOOGALLERY_ACCESS_KEY" doc:"**required**: the key of the 基础接口 type from 卖家中心 > 应用工具 > 密钥管理: verifies requests, signs answers, encrypts appInfo fields and seals stored credentials"`
	KitAccessKey      Secret `env:"KOOGALLERY_KIT_ACCESS_KEY" doc:"the key of the 联营SaaS同步接口 type from 卖家中心 > 应用工具 > 密钥管理, for listings integrated with the 联营 kit: verifies the kit's sync calls (x-sign); unset when the kit is not used"`
	LicenseAccessKey  Secret `env:"KOOGALLERY_LICENSE_ACCESS_KEY" doc:"the key of the License授权码交付接口 type from 卖家中心 > 应用工具 > 密钥管理, for license-code products: verifies refreshLicenseCode, updateLicenseCodeStatus and releaseLicenseCode and signs their answers; unset when no license codes are sold"`
	V1AccessKey       Secret `env:"KOOGALLERY_V1_ACCESS_KEY" doc:"the V1 key from 卖家中心 > 服务商管理 > 服务商信息, for listings still on the withdrawn V1.0 interface (contract §1.12, §2.5): the server serves V1 calls on GET /produce and the V1 kit's syncs (contract §12.10) with it, and 'fulfillment sign -v1' signs with it; unset, every V1 call is refused 000001"`
	AppInfoEncryption string `env:"KOOGALLERY_APPINFO_ENCRYPTION, default=aes256" doc:"how appInfo.userName/password are sent: aes256, aes128 or none"`
	AK                Secret `env:"KOOGALLERY_AK" doc:"**required by the worker**: the AK that signs open-API calls (Query Order, usage push)"`
	SK                Secret `env:"KOOGALLERY_SK" doc:"**required by the worker**: the SK that signs open-API calls"`
	LogLevel          string `env:"LOG_LEVEL, default=info" doc:"debug, info, warn or error"`
	LogFormat         string `env:"LOG_FORMAT, default=json" doc:"json or text"`
}

// Problems lists what is wrong with the common settings.
func (c *Common) Problems() []string {
	c.AppInfoEncryption = strings.ToLower(c.AppInfoEncryption)
	c.LogLevel, c.LogFormat = strings.ToLower(c.LogLevel), strings.ToLower(c.LogFormat)
	var problems []string
	switch c.AppInfoEncryption {
	case "aes256", "aes128", "none":
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
	return problems
}

// Logger is the process's logger, on standard error.
func (c Common) Logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel)) // checked by Problems
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		// Text is for people at a terminal (make run): the time of day is
		// enough, and a short one leaves room for the message.
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
				return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
			}
			return a
		}
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// LogAttrs describe the common settings for the startup log, secrets
// hidden.
func (c Common) LogAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("database", RedactURL(string(c.DatabaseURL))),
		slog.String("temporal_address", c.TemporalAddress),
		slog.String("temporal_namespace", c.TemporalNamespace),
		slog.String("access_key", c.AccessKey.String()),
		slog.String("kit_access_key", c.KitAccessKey.String()),
		slog.String("license_access_key", c.LicenseAccessKey.String()),
		slog.String("v1_access_key", c.V1AccessKey.String()),
		slog.String("appinfo_encryption", c.AppInfoEncryption),
		slog.String("open_api_ak", c.AK.String()),
		slog.String("open_api_sk", c.SK.String()),
		slog.String("log_level", c.LogLevel),
	}
}

// Secret is a setting that must never be printed: its String and LogValue
// say only whether it is set.
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

// List is a comma-separated list; blanks around items and empty items are
// dropped.
type List []string

// EnvDecode implements envconfig.Decoder.
func (l *List) EnvDecode(v string) error {
	*l = nil
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// RedactURL hides a password in a URL; a value that is not a URL is shown.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return raw
	}
	return u.Redacted()
}

// HTTPURL reports whether raw is an absolute http(s) URL.
func HTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// Variable is one environment variable a settings struct reads.
type Variable struct {
	Name    string
	Default string
	Doc     string
}

// Variables lists the variables of a settings struct (a pointer or a
// value), embedded and nested structs included, in declaration order.
func Variables(settings any) []Variable {
	var out []Variable
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup("env")
			if !ok {
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type)
				}
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			v := Variable{Name: strings.TrimSpace(name), Doc: f.Tag.Get("doc")}
			if _, def, ok := strings.Cut(opts, "default="); ok {
				v.Default = def
			}
			out = append(out, v)
		}
	}
	walk(reflect.TypeOf(settings))
	return out
}

// Names are the names of a settings struct's variables.
func Names(settings any) []string {
	var names []string
	for _, v := range Variables(settings) {
		names = append(names, v.Name)
	}
	return names
}

// Markdown renders variables as the README's table: name, default,
// meaning.
func Markdown(vars []Variable) string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, v := range vars {
		def := "—"
		if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, def, v.Doc)
	}
	return b.String()
}
