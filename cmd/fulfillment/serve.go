package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/config"
	"github.com/fulfillment-server/fulfillment/internal/httpserver"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/worker"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Intervals of the background loops.
const (
	relayInterval    = 2 * time.Second
	nonceSweepEvery  = time.Minute
	workerRetryPause = 3 * time.Second
	// relayDirectGrace is how long the relay leaves a fresh callback to the
	// dispatcher: long enough for the dispatcher's queue to drain during an
	// expiry storm, short enough that a callback a crash left behind is
	// delivered within the minute.
	relayDirectGrace = 30 * time.Second
)

// runServe runs the API (with the relay and the nonce sweeper), the worker,
// or both, until ctx ends. Neither waits for Temporal: the API records
// callbacks while Temporal is away, and the worker keeps trying to start.
func runServe(ctx context.Context, cfg Config, log *slog.Logger, withAPI, withWorker bool) error {
	if err := cfg.require(withAPI, withWorker); err != nil {
		return err
	}
	log.Info("Starting", "api", withAPI, "worker", withWorker, "config", cfg)
	db, err := openStore(ctx, cfg, log, withAPI && withWorker)
	if err != nil {
		return err
	}
	defer db.Close()
	demo, err := openDemo(ctx, cfg, log, db)
	if err != nil {
		return err
	}

	// The API serves /metrics. Its registry exists before the Temporal
	// client so that the SDK's own metrics (requests, workflow and activity
	// tasks, slots, of the client and the worker sharing it) are served
	// there too. A worker alone has no HTTP listener, hence no handler.
	var metrics *api.Metrics
	var sdkMetrics client.MetricsHandler
	if withAPI {
		metrics = api.NewMetrics(nil, api.Gauges{})
		handler, closer := worker.NewMetricsHandler(metrics.Registry(), log)
		defer closer.Close() // after tc.Close: deferred calls run last first
		sdkMetrics = handler
	}
	tc, err := client.NewLazyClient(client.Options{
		HostPort:       cfg.TemporalAddress,
		Namespace:      cfg.TemporalNamespace,
		Logger:         sdklog.NewStructuredLogger(log.With("component", "temporal")),
		MetricsHandler: sdkMetrics,
	})
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer tc.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if withWorker {
		acts, err := newActivities(cfg, db, demo)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); runWorker(ctx, cfg, log, tc, acts) }()
	}
	if withAPI {
		if err := startAPI(ctx, cfg, log, db, demo, tc, metrics, &wg, errs); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	cancel()
	wg.Wait()
	log.Info("Stopped")
	return runErr
}

// openStore opens the database: with migrate, it applies the pending
// migrations (fulfillment serve); without, it refuses a database that
// lacks some (fulfillment api and worker run after fulfillment migrate).
func openStore(ctx context.Context, cfg Config, log *slog.Logger, migrate bool) (*store.DB, error) {
	db, err := store.Open(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return nil, err
	}
	if migrate {
		applied, err := db.Migrate(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		if len(applied) > 0 {
			log.Info("Migrations applied", "migrations", applied)
		}
		return db, nil
	}
	pending, err := db.PendingMigrations(ctx)
	if err == nil && len(pending) > 0 {
		err = fmt.Errorf("the database lacks migrations %s: run 'fulfillment migrate' first", strings.Join(pending, ", "))
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openDemo prepares the demo provisioner's store when PROVISIONER=demo
// (nil otherwise): its tables are in a schema of their own, which its own
// migrations create or update here, after the server's.
func openDemo(ctx context.Context, cfg Config, log *slog.Logger, db *store.DB) (*provisioner.DemoStore, error) {
	if cfg.Provisioner != "demo" {
		return nil, nil
	}
	demo := provisioner.NewDemoStore(db.Pool())
	applied, err := demo.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("Demo provisioner migrations applied", "migrations", applied)
	}
	return demo, nil
}

// newActivities wires the worker's activities: the open API, the
// merchant's application, the database, the lifecycle policy, alerts.
func newActivities(cfg Config, db *store.DB, demo *provisioner.DemoStore) (*activities.Activities, error) {
	prov, err := newProvisioner(cfg, demo)
	if err != nil {
		return nil, err
	}
	orders, err := newOpenAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	valueForm, err := koogallery.ParseUsageValueForm(cfg.UsageValueForm)
	if err != nil {
		return nil, err // loadConfig refuses it first
	}
	return &activities.Activities{
		Orders: orders, Provisioner: prov, Store: db, Sealer: activities.Sealer{AccessKey: string(cfg.AccessKey)},
		UsageValueForm: valueForm,
		Lifecycle:      cfg.Lifecycle,
		Alerts:         activities.Alerter{WebhookURL: cfg.AlertWebhookURL},
		Usage:          activities.OpenAPIUsagePusher{Client: orders, AccessKey: string(cfg.AccessKey)},
		Licenses:       orders,
	}, nil
}

// newOpenAPIClient is the marketplace's open API, signed with the AK/SK.
func newOpenAPIClient(cfg Config) (*koogallery.OpenAPIClient, error) {
	return koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{
		BaseURL: cfg.APIURL, FallbackURL: cfg.APIFallbackURL, AK: string(cfg.AK), SK: string(cfg.SK),
	})
}

// startAPI starts the HTTP API and its background work (dispatcher,
// relay, spool drain, nonce sweeper); the HTTP server's end is sent to
// errs. With the demo provisioner (demo not nil) it serves the demo
// application's routes too.
func startAPI(ctx context.Context, cfg Config, log *slog.Logger, db *store.DB, demo *provisioner.DemoStore, tc client.Client,
	metrics *api.Metrics, wg *sync.WaitGroup, errs chan<- error) error {
	// The answers to the marketplace get a connection pool of their own:
	// they never queue for a connection behind deliveries or the worker's
	// activities, whose pool is db.
	answers, err := store.Open(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	spool := &inbox.Spool{Dir: cfg.SpoolDir}
	metrics.AddGauges(api.Gauges{
		RelayBacklog: db.Callbacks.UndeliveredCount, InstancesByState: db.Instances.CountByState, SpoolBacklog: spool.Backlog,
		UsagePending: db.Metering.PendingUsageCount, UsageHeld: db.Metering.HeldUsageCount, ParkedCallbacks: db.Callbacks.ParkedCount,
		Pools: map[string]*sql.DB{"answers": answers.Pool(), "background": db.Pool()},
	})
	ib := &inbox.Inbox{Store: answers.Callbacks, Background: db.Callbacks, Temporal: tc, TaskQueue: cfg.TaskQueue, Logger: log,
		DirectGrace: relayDirectGrace, Alert: activities.Alerter{WebhookURL: cfg.AlertWebhookURL}.Send,
		Spool: spool, ReadModel: answers.Instances, NewInstanceWait: cfg.NewInstanceWait}
	var routes []api.Route
	if demo != nil {
		for _, route := range provisioner.DemoRoutes(demo, log) {
			routes = append(routes, api.Route(route))
		}
	}
	kitKeys, err := loadKitKeys(cfg, log)
	if err != nil {
		return err
	}
	// License codes are activated through the open API; without the AK/SK
	// the API serves everything else and answers activations 503.
	var licenses api.LicenseAPI
	if cfg.AK != "" && cfg.SK != "" {
		client, err := newOpenAPIClient(cfg)
		if err != nil {
			return err
		}
		licenses = client
	}
	server := api.New(api.Config{
		Store: answers, Inbox: ib, Temporal: tc,
		AccessKey:         string(cfg.AccessKey),
		KitAccessKey:      string(cfg.KitAccessKey),
		LicenseAccessKey:  string(cfg.LicenseAccessKey),
		V1AccessKey:       string(cfg.V1AccessKey),
		KitKeys:           kitKeys,
		Encryption:        api.AppInfoEncryption(cfg.AppInfoEncryption),
		LicenseNodeLocked: cfg.LicenseNodeLocked,
		AdminToken:        string(cfg.AdminToken),
		UsageToken:        string(cfg.UsageToken),
		LicenseToken:      string(cfg.LicenseToken),
		Licenses:          licenses,
		Routes:            routes,
		Logger:            log,
		Metrics:           metrics,
	})
	if cfg.AdminToken == "" {
		log.Warn("FULFILLMENT_ADMIN_TOKEN is not set: the admin API answers 401 to every call")
	}
	waitDispatcher := ib.StartDispatcher(ctx, inbox.DefaultDispatchLanes)
	wg.Add(5)
	go func() { defer wg.Done(); waitDispatcher() }()
	go func() { defer wg.Done(); ib.RunRelay(ctx, relayInterval) }()
	go func() { defer wg.Done(); ib.RunSpoolDrain(ctx, spool, relayInterval) }()
	go func() { defer wg.Done(); sweepNonces(ctx, db, log) }()
	go func() {
		defer wg.Done()
		defer answers.Close()
		errs <- httpserver.Serve(ctx, cfg.HTTPAddr, server.Handler(), log)
	}()
	return nil
}

// runWorker starts the worker, retrying while Temporal is unreachable, and
// stops it when ctx ends.
func runWorker(ctx context.Context, cfg Config, log *slog.Logger, tc client.Client, acts *activities.Activities) {
	for {
		err := worker.EnsureSearchAttributes(ctx, tc, cfg.TemporalNamespace)
		if err == nil {
			w := worker.New(tc, cfg.TaskQueue, acts, worker.Options())
			if err = w.Start(); err == nil {
				log.Info("Worker started", "task_queue", cfg.TaskQueue)
				go ensureUsageCollector(ctx, cfg, log, tc)
				<-ctx.Done()
				w.Stop()
				return
			}
		}
		log.Warn("Worker not started; retrying", "error", err, "temporal_address", cfg.TemporalAddress)
		select {
		case <-ctx.Done():
			return
		case <-time.After(workerRetryPause):
		}
	}
}

// ensureUsageCollector starts the usage collector, retrying while Temporal
// refuses: without it no pay-per-use usage is pushed.
func ensureUsageCollector(ctx context.Context, cfg Config, log *slog.Logger, tc client.Client) {
	p := cfg.Lifecycle.Policy
	in := workflows.UsageCollectorInput{Period: p.MeteringPeriod, PushDelay: p.MeteringPushDelay}
	for {
		err := worker.EnsureUsageCollector(ctx, tc, cfg.TaskQueue, in)
		if err == nil {
			return
		}
		log.Error("Usage collector not started: pay-per-use usage is not pushed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(workerRetryPause):
		}
	}
}

func newProvisioner(cfg Config, demo *provisioner.DemoStore) (provisioner.Provisioner, error) {
	if demo != nil {
		return &provisioner.Demo{Store: demo, PublicURL: cfg.PublicURL}, nil
	}
	return provisioner.NewHTTP(cfg.Provisioner, string(cfg.ProvisionerKey), nil)
}

// sweepNonces forgets expired nonces, once a minute.
func sweepNonces(ctx context.Context, db *store.DB, log *slog.Logger) {
	t := time.NewTicker(nonceSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := db.Nonces.DeleteExpiredNonces(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("Nonce sweep failed", "error", err)
			}
		}
	}
}

func runMigrate(ctx context.Context, cfg Config, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	createDB := fs.Bool("create-db", false, "create the database first when it does not exist")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *createDB {
		created, err := store.CreateDatabase(ctx, string(cfg.DatabaseURL))
		if err != nil {
			return err
		}
		if created {
			log.Info("Database created", "database", config.RedactURL(string(cfg.DatabaseURL)))
		}
	}
	db, err := store.Open(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	log.Info("Migrations applied", "count", len(applied), "migrations", applied)
	return nil
}

// loadKitKeys reads the private keys that decrypt the 联营 kit's
// clientSecret. A server without them still answers the kit's other calls.
func loadKitKeys(cfg Config, log *slog.Logger) (*koogallery.KitKeys, error) {
	if len(cfg.KitPrivateKeyFiles) == 0 {
		if cfg.KitAccessKey != "" {
			log.Warn("KOOGALLERY_KIT_ACCESS_KEY is set but KOOGALLERY_KIT_PRIVATE_KEY_FILE is not: the kit's applicationSync calls will be refused (000005)")
		}
		return nil, nil
	}
	keys, err := koogallery.LoadKitKeys(cfg.KitPrivateKeyFiles)
	if err != nil {
		return nil, fmt.Errorf("KOOGALLERY_KIT_PRIVATE_KEY_FILE: %w", err)
	}
	return keys, nil
}
