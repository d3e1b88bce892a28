package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/store"
)

// benchmark runs every measurement of cfg, logging progress to log.
//
// Each measurement starts from a copy of a prepared database, so that runs
// do not disturb each other: intake runs from a database with the
// instances and no usage, close runs from one holding the whole hour of
// usage as the intake left it.
func benchmark(ctx context.Context, cfg config, log io.Writer) (*report, error) {
	pg, err := benchenv.OpenCluster(ctx, cfg.DatabaseURL, "benchusage")
	if err != nil {
		return nil, err
	}
	defer pg.Close()
	rep := &report{cfg: cfg, date: time.Now().UTC(), intake: map[int][]intakeRun{}, close: map[int][]closeRun{}}
	if rep.machine, err = benchenv.DescribeMachine(ctx, pg, cfg.TemporalCLI); err != nil {
		return nil, err
	}

	// The usage falls in the last full hour: over, so that it can be
	// closed, and recent enough for the intake's 21-day limit.
	hour := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	load, err := newWorkload(cfg.Instances, cfg.Records, cfg.BatchSize, hour)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "Preparing %d pay-per-use instances\n", cfg.Instances)
	empty, err := prepareInstances(ctx, pg, load.instances)
	if err != nil {
		return nil, err
	}

	var loaded string // the database the last intake filled
	for run := 1; run <= cfg.Runs; run++ {
		for _, clients := range cfg.Clients {
			db, err := pg.Create(ctx, empty)
			if err != nil {
				return nil, err
			}
			r, err := measureIntake(ctx, pg.URL(db), load, clients, cfg.Resend)
			if err != nil {
				return nil, fmt.Errorf("intake with %d clients: %w", clients, err)
			}
			fmt.Fprintf(log, "Intake run %d, %d clients: %s\n", run, clients, r)
			rep.intake[clients] = append(rep.intake[clients], r)
			if loaded != "" {
				if err := pg.Drop(ctx, loaded); err != nil {
					return nil, err
				}
			}
			loaded = db
		}
	}
	// Autovacuum would have visited the table during the hour; this server
	// may have it off, so do its work before the close is timed.
	if err := pg.Vacuum(ctx, loaded); err != nil {
		return nil, err
	}

	for run := 1; run <= cfg.Runs; run++ {
		for _, workers := range cfg.Workers {
			db, err := pg.Create(ctx, loaded)
			if err != nil {
				return nil, err
			}
			r, err := measureClose(ctx, pg.URL(db), load, workers)
			if err != nil {
				return nil, fmt.Errorf("close with %d workers: %w", workers, err)
			}
			fmt.Fprintf(log, "Close run %d, %d workers: %s\n", run, workers, r)
			rep.close[workers] = append(rep.close[workers], r)
			if err := pg.Drop(ctx, db); err != nil {
				return nil, err
			}
		}
	}

	for run := 1; cfg.TemporalCLI != "" && run <= cfg.TemporalRuns; run++ {
		db, err := pg.Create(ctx, loaded)
		if err != nil {
			return nil, err
		}
		r, err := measureTemporal(ctx, pg.URL(db), cfg.TemporalCLI, load, cfg.TemporalInstances, cfg.TemporalLead)
		if err != nil {
			return nil, fmt.Errorf("close through Temporal: %w", err)
		}
		fmt.Fprintf(log, "Close through Temporal, run %d: %s\n", run, r)
		rep.temporal = append(rep.temporal, r)
		if err := pg.Drop(ctx, db); err != nil {
			return nil, err
		}
	}
	rep.machine.LoadAfter = benchenv.LoadAverage()
	return rep, nil
}

// prepareInstances creates a migrated database holding the instances, active
// and pay-per-use in the read model, and returns its name.
func prepareInstances(ctx context.Context, pg *benchenv.Cluster, ids []string) (string, error) {
	name, err := pg.Create(ctx, "")
	if err != nil {
		return "", err
	}
	if err := addInstances(ctx, pg.URL(name), ids); err != nil {
		return "", fmt.Errorf("create instances: %w", err)
	}
	return name, pg.Vacuum(ctx, name)
}

// addInstances migrates the database and records the instances as the API
// and the workflow do: the newInstance callback allocates the instanceId,
// the workflow saves the read model. The connections are closed on return,
// as a database must be unused to be copied.
func addInstances(ctx context.Context, url string, ids []string) error {
	db, err := store.Open(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	return benchenv.Parallel(ctx, len(ids), 8, func(ctx context.Context, i int) error {
		id, order := ids[i], "CS-"+ids[i]
		line := order + "-000001"
		if _, err := db.RecordNewInstance(ctx, id, store.NewCallback{
			DedupKey: "newInstance:" + order + ":" + line, Activity: "newInstance",
			OrderID: order, OrderLineID: line, Body: []byte(`{"activity":"newInstance"}`),
		}); err != nil {
			return err
		}
		_, err := db.SaveInstance(ctx, store.Instance{
			InstanceID: id, OrderID: order, OrderLineID: line, State: "active",
			ChargingMode: "ON_DEMAND", OrderType: "NEW", SkuCode: "bench-sku", ProductID: "bench-product",
			CustomerID: "customer-" + id, CustomerName: "bench", Revision: 1,
		}, nil)
		return err
	})
}
