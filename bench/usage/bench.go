package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/store"
)

// benchmark runs every measurement of cfg, logging progress to log.
//
// Each measurement starts from a copy of a prepared database, so that runs
// do not disturb each other: intake runs from a database with the
// instances and no usage, close runs from one holding the whole hour of
// usage as the intake left it, the collector's from one holding its own
// instances, metered, and their hour of usage.
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
	loaded, err := rep.measureIntakes(ctx, pg, load, empty, log)
	if err != nil {
		return nil, err
	}
	// Autovacuum would have visited the table during the hour; this server
	// may have it off, so do its work before the close is timed.
	if err := pg.Vacuum(ctx, loaded); err != nil {
		return nil, err
	}
	if err := rep.measureCloses(ctx, pg, load, loaded, log); err != nil {
		return nil, err
	}
	// The collector's databases are ten times larger: the disk need not
	// hold these as well.
	for _, db := range []string{empty, loaded} {
		if err := pg.Drop(ctx, db); err != nil {
			return nil, err
		}
	}
	if err := rep.measureCollector(ctx, pg, log); err != nil {
		return nil, err
	}
	rep.machine.LoadAfter = benchenv.LoadAverage()
	return rep, nil
}

// measureIntakes takes in the workload cfg.Runs times with each number of
// clients, each time into a fresh copy of the database empty, and returns
// the database the last intake filled (the others are dropped).
func (r *report) measureIntakes(ctx context.Context, pg *benchenv.Cluster, load *workload, empty string, log io.Writer) (string, error) {
	var loaded string
	for run := 1; run <= r.cfg.Runs; run++ {
		for _, clients := range r.cfg.Clients {
			db, err := pg.Create(ctx, empty)
			if err != nil {
				return "", err
			}
			m, err := measureIntake(ctx, pg.URL(db), load, clients, r.cfg.Resend)
			if err != nil {
				return "", fmt.Errorf("intake with %d clients: %w", clients, err)
			}
			fmt.Fprintf(log, "Intake run %d, %d clients: %s\n", run, clients, m)
			r.intake[clients] = append(r.intake[clients], m)
			if loaded != "" {
				if err := pg.Drop(ctx, loaded); err != nil {
					return "", err
				}
			}
			loaded = db
		}
	}
	return loaded, nil
}

// measureCloses closes the hour by calling the activities, cfg.Runs times
// with each number of workers, each time on a fresh copy of the database
// loaded.
func (r *report) measureCloses(ctx context.Context, pg *benchenv.Cluster, load *workload, loaded string, log io.Writer) error {
	for run := 1; run <= r.cfg.Runs; run++ {
		for _, workers := range r.cfg.Workers {
			db, err := pg.Create(ctx, loaded)
			if err != nil {
				return err
			}
			m, err := measureClose(ctx, pg.URL(db), load, workers)
			if err != nil {
				return fmt.Errorf("close with %d workers: %w", workers, err)
			}
			fmt.Fprintf(log, "Close run %d, %d workers: %s\n", run, workers, m)
			r.close[workers] = append(r.close[workers], m)
			if err := pg.Drop(ctx, db); err != nil {
				return err
			}
		}
	}
	return nil
}

// measureCollector prepares cfg.BatchedInstances metered instances and
// their hour of usage, then has the usage collector close and push the
// hour: cfg.Runs times by calling CollectUsage directly, then
// cfg.TemporalRuns times through Temporal (none without a Temporal CLI),
// each time on a fresh copy of the prepared database.
func (r *report) measureCollector(ctx context.Context, pg *benchenv.Cluster, log io.Writer) error {
	if r.cfg.BatchedInstances == 0 {
		return nil
	}
	load := newUsage(r.cfg.BatchedInstances, r.cfg.BatchedRecords, batchedHour(time.Now().UTC()))
	fmt.Fprintf(log, "Preparing %d metered instances and %d usage records\n", r.cfg.BatchedInstances, r.cfg.BatchedRecords)
	metered, err := prepareMetered(ctx, pg, load)
	if err != nil {
		return err
	}
	r.batchedWithUsage = load.withUsage(load.instances)
	type measure struct {
		name string
		runs int
		fn   func(ctx context.Context, dbURL string, load *workload) (collectRun, error)
		out  *[]collectRun
	}
	measures := []measure{{"Collector (activities)", r.cfg.Runs, measureCollect, &r.collect}}
	if r.cfg.TemporalCLI != "" {
		measures = append(measures, measure{"Collector through Temporal", r.cfg.TemporalRuns,
			func(ctx context.Context, dbURL string, load *workload) (collectRun, error) {
				return measureCollectorTemporal(ctx, dbURL, r.cfg.TemporalCLI, load)
			}, &r.collectTemporal})
	}
	for _, m := range measures {
		for run := 1; run <= m.runs; run++ {
			db, err := pg.Create(ctx, metered)
			if err != nil {
				return err
			}
			c, err := m.fn(ctx, pg.URL(db), load)
			if err != nil {
				return fmt.Errorf("%s: %w", strings.ToLower(m.name[:1])+m.name[1:], err)
			}
			fmt.Fprintf(log, "%s, run %d: %s\n", m.name, run, c)
			*m.out = append(*m.out, c)
			if err := pg.Drop(ctx, db); err != nil {
				return err
			}
		}
	}
	return pg.Drop(ctx, metered)
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
		if _, err := db.Callbacks.RecordNewInstance(ctx, id, store.NewCallback{
			DedupKey: "newInstance:" + order + ":" + line, Activity: "newInstance",
			OrderID: order, OrderLineID: line, Body: []byte(`{"activity":"newInstance"}`),
		}); err != nil {
			return err
		}
		_, err := db.Instances.SaveInstance(ctx, store.Instance{
			InstanceID: id, OrderID: order, OrderLineID: line, State: "active",
			ChargingMode: "ON_DEMAND", OrderType: "NEW", SkuCode: "bench-sku", ProductID: "bench-product",
			CustomerID: "customer-" + id, CustomerName: "bench", Revision: 1,
		}, nil)
		return err
	})
}
