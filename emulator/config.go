package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/internal/config"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Config is the emulator's configuration, read from the environment
// (config.Load): what it shares with the server (the same database,
// Temporal, keys), and its own settings.
type Config struct {
	config.Common
	Addr               string        `env:"EMULATOR_ADDR, default=:8090" doc:"where fulfillment emulator serve listens (its consoles and the open API)"`
	URL                string        `env:"EMULATOR_URL, default=http://127.0.0.1:8090" doc:"the emulator the fulfillment emulator commands talk to"`
	ProductionURL      string        `env:"EMULATOR_PRODUCTION_URL, default=http://127.0.0.1:8080/produce" doc:"the production interface the emulator calls"`
	TimeScale          string        `env:"EMULATOR_TIME_SCALE, default=1" doc:"how much faster the emulated clock runs: a factor (8640) or 1d=10s"`
	TaskQueue          string        `env:"EMULATOR_TASK_QUEUE, default=koogallery-emulator" doc:"the emulator workflows' task queue"`
	SignatureForm      string        `env:"EMULATOR_SIGNATURE_FORM, default=canonical" doc:"what the emulator's signatures cover: canonical (the body with its members sorted, as Huawei's sample project verifies; the emulator sends its members unsorted) or raw (the bytes sent). The server accepts both"`
	Retention          time.Duration `env:"EMULATOR_RETENTION, default=360h" doc:"emulated time from expiry to the marketplace's release"`
	SupervisionDelay   time.Duration `env:"EMULATOR_SUPERVISION_DELAY, default=3h" doc:"emulated time from a supervised order's acceptance to its completion"`
	MerchantAdminURL   string        `env:"EMULATOR_MERCHANT_ADMIN_URL" doc:"the merchant server's admin API: when set, the emulator tells it the supervision steps taken in its consoles, and watch -merchant reads the merchant's side there"`
	MerchantAdminToken config.Secret `env:"EMULATOR_MERCHANT_ADMIN_TOKEN" doc:"the admin token of EMULATOR_MERCHANT_ADMIN_URL"`
	KitPublicKeyFile   string        `env:"EMULATOR_KIT_PUBLIC_KEY_FILE" doc:"联营 kit: the merchant's public key (PEM), with which the emulated marketplace encrypts the app credentials' client secrets; the public half of KOOGALLERY_KIT_PRIVATE_KEY_FILE's first key"`
}

// LoadConfig reads and checks the emulator's configuration.
func LoadConfig(getenv func(string) string) (Config, error) {
	var c Config
	if err := config.Load(getenv, &c); err != nil {
		return Config{}, err
	}
	problems := c.Common.Problems()
	c.SignatureForm = strings.ToLower(c.SignatureForm)
	if f := koogallery.SignedForm(c.SignatureForm); f != koogallery.FormCanonical && f != koogallery.FormRaw {
		problems = append(problems, "EMULATOR_SIGNATURE_FORM must be canonical (sign the sorted body, as Huawei's sample verifies) or raw (sign the bytes sent)")
	}
	if _, err := ParseScale(c.TimeScale); err != nil {
		problems = append(problems, "EMULATOR_TIME_SCALE must be a factor of at least 1 or emulated=real such as 1d=10s")
	}
	if c.Retention < 0 || c.SupervisionDelay < 0 {
		problems = append(problems, "EMULATOR_RETENTION and EMULATOR_SUPERVISION_DELAY must not be negative")
	}
	if len(problems) > 0 {
		return Config{}, errors.New("configuration: " + strings.Join(problems, "; "))
	}
	return c, nil
}

// RequireForServe checks what serving the emulator needs.
func (c Config) RequireForServe() error {
	if c.AccessKey == "" {
		return errors.New("KOOGALLERY_ACCESS_KEY is required: the emulator signs its calls and checks the answers with it")
	}
	if c.AK == "" || c.SK == "" {
		return errors.New("KOOGALLERY_AK and KOOGALLERY_SK are required: the emulator checks the merchant's open-API signatures with them")
	}
	return nil
}

// LogValue lists the configuration with secrets hidden.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.Common.LogAttrs(),
		slog.String("addr", c.Addr),
		slog.String("production_url", c.ProductionURL),
		slog.String("time_scale", c.TimeScale),
		slog.String("task_queue", c.TaskQueue),
		slog.String("signature_form", c.SignatureForm),
		slog.String("merchant_admin_url", config.RedactURL(c.MerchantAdminURL)),
		slog.String("merchant_admin_token", c.MerchantAdminToken.String()),
		slog.String("retention", fmt.Sprint(c.Retention)),
		slog.String("kit_public_key_file", c.KitPublicKeyFile),
	)...)
}
