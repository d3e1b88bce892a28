package emulator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/fulfillment-server/fulfillment/internal/httpserver"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// workerRetryPause is how long the emulator waits before trying to start
// its worker again while Temporal is unreachable.
const workerRetryPause = 3 * time.Second

// Serve runs the emulator until ctx ends: its workflows' worker, and the
// HTTP server of its consoles and the open API.
func Serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.RequireForServe(); err != nil {
		return err
	}
	scale, err := ParseScale(cfg.TimeScale)
	if err != nil {
		return err
	}
	log.Info("Starting the KooGallery emulator", "config", cfg)
	db, err := OpenStore(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		log.Info("Emulator migrations applied", "migrations", applied)
	}
	tc, err := client.NewLazyClient(client.Options{
		HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Logger: sdklog.NewStructuredLogger(log.With("component", "temporal")),
	})
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer tc.Close()

	acts := &Activities{
		Store: db, ProductionURL: cfg.ProductionURL, AccessKey: string(cfg.AccessKey),
		KitAccessKey:     string(cfg.KitAccessKey),
		LicenseAccessKey: string(cfg.LicenseAccessKey),
		V1AccessKey:      string(cfg.V1AccessKey),
		SignatureForm:    koogallery.SignedForm(cfg.SignatureForm),
		MerchantAdminURL: cfg.MerchantAdminURL, MerchantAdminToken: string(cfg.MerchantAdminToken),
	}
	if cfg.KitPublicKeyFile != "" {
		if acts.KitPublicKey, err = koogallery.LoadKitPublicKey(cfg.KitPublicKeyFile); err != nil {
			return fmt.Errorf("EMULATOR_KIT_PUBLIC_KEY_FILE: %w", err)
		}
	}
	console := NewConsole(ConsoleConfig{
		Store: db, Temporal: tc, TaskQueue: cfg.TaskQueue, Scale: scale,
		Retention: cfg.Retention, SupervisionDelay: cfg.SupervisionDelay,
		AccessKey: string(cfg.AccessKey), V1AccessKey: string(cfg.V1AccessKey), Encryption: cfg.AppInfoEncryption,
		OpenAPI: NewOpenAPI(db, string(cfg.AK), string(cfg.SK), string(cfg.AccessKey), log),
		Calls:   acts,
		Logger:  log,
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runWorker(ctx, tc, cfg.TaskQueue, acts, log)
	}()
	err = httpserver.Serve(ctx, cfg.Addr, console.Handler(), log)
	cancel()
	wg.Wait()
	return err
}

// runWorker starts the emulator's worker, retrying while Temporal is
// unreachable, and stops it when ctx ends.
func runWorker(ctx context.Context, tc client.Client, taskQueue string, acts *Activities, log *slog.Logger) {
	for {
		w := sdkworker.New(tc, taskQueue, sdkworker.Options{})
		Register(w, acts)
		err := w.Start()
		if err == nil {
			log.Info("Emulator worker started", "task_queue", taskQueue)
			<-ctx.Done()
			w.Stop()
			return
		}
		log.Warn("Emulator worker not started; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(workerRetryPause):
		}
	}
}
