package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// The batched close: the usage collector (activities.CollectUsage, run by
// workflows.UsageCollectorWorkflow) closes the hour of every metered
// instance with set-based SQL and pushes the records 1,000 per call.

const (
	// collectorPeriod and collectorDelay are the production metering
	// settings (METERING_PERIOD, METERING_PUSH_DELAY).
	collectorPeriod = time.Hour
	collectorDelay  = 5 * time.Minute
	// collectorTarget is how long the close of 100,000 instances may take:
	// from five past to a quarter past, when the marketplace collects
	// (contract §6.2).
	collectorTarget = 10 * time.Minute
	// actionsTarget is the most Temporal actions a metered instance-hour
	// may cost.
	actionsTarget = 0.05
	// perInstanceActions is what the per-instance design cost: for each
	// instance and hour one workflow timer and two activities
	// (CloseUsagePeriods, PushUsage), as schema/migrations/0014 says.
	perInstanceActions = 3
)

// batchedHour is the hour the collector closes in the benchmark: the last
// one whose close (its end plus the push delay) has come at now, so that a
// collector started now closes it at once, and only it.
func batchedHour(now time.Time) time.Time {
	return now.Add(-collectorDelay).Truncate(collectorPeriod).Add(-collectorPeriod)
}

// collectRun is one measured pass of the usage collector over every
// metered instance.
type collectRun struct {
	Temporal bool
	// Instances had their hour closed; WithUsage of them had usage, so one
	// record each to push.
	Instances, WithUsage int
	Periods, Pushed      int
	Calls                int
	// Elapsed runs from the moment the pass fell due (the period's end plus
	// the push delay: when the collector wakes) until the marketplace had
	// accepted the last record.
	Elapsed time.Duration
	// Actions are the Temporal actions of the pass (through Temporal only).
	Actions int
}

// wantCalls is the fewest calls that push the records: 1,000 per call.
func (r collectRun) wantCalls() int {
	return (r.WithUsage + koogallery.MaxUsageRecords - 1) / koogallery.MaxUsageRecords
}

// actionsPerInstanceHour is what a metered instance-hour costs in Temporal
// actions: the pass closes one hour of every instance.
func (r collectRun) actionsPerInstanceHour() float64 {
	return float64(r.Actions) / float64(r.Instances)
}

func (r collectRun) String() string {
	s := fmt.Sprintf("%d instances closed, %d periods, %d records pushed in %d calls (fewest %d) in %s",
		r.Instances, r.Periods, r.Pushed, r.Calls, r.wantCalls(), r.Elapsed.Round(time.Millisecond))
	if r.Temporal {
		s += fmt.Sprintf("; %d Temporal actions, %.6f per instance-hour", r.Actions, r.actionsPerInstanceHour())
	}
	return s
}

// check verifies what the pass reports and what the marketplace received:
// every instance closed, one record per instance with usage, with its exact
// total, in the fewest calls.
func (r collectRun) check(res activities.CollectUsageResult, mkt *marketplace, load *workload) error {
	if res.Error != "" || len(res.Held) > 0 || len(res.Expired) > 0 {
		return fmt.Errorf("the pass did not push everything: error %q, %d held, %d expired", res.Error, len(res.Held), len(res.Expired))
	}
	if r.Instances != len(load.instances) || r.Periods != r.WithUsage || r.Pushed != r.WithUsage {
		return fmt.Errorf("%d instances closed, %d periods, %d pushed, want %d, %d and %d",
			r.Instances, r.Periods, r.Pushed, len(load.instances), r.WithUsage, r.WithUsage)
	}
	if r.Calls != r.wantCalls() {
		return fmt.Errorf("%d records pushed in %d calls, want %d", r.Pushed, r.Calls, r.wantCalls())
	}
	return mkt.check(load, load.instances)
}

// measureCollect runs one pass of the collector by calling CollectUsage
// directly, as of the moment the hour's close falls due.
func measureCollect(ctx context.Context, dbURL string, load *workload) (collectRun, error) {
	acts, mkt, done, err := openActivities(ctx, dbURL)
	if err != nil {
		return collectRun{}, err
	}
	defer done()

	start := time.Now()
	res, err := acts.CollectUsage(ctx, activities.CollectUsageInput{Now: load.hour.Add(collectorPeriod + collectorDelay)})
	elapsed := time.Since(start)
	if err != nil {
		return collectRun{}, err
	}
	r := collectRun{Instances: res.Instances, WithUsage: load.withUsage(load.instances), Periods: res.Periods,
		Pushed: res.Pushed, Calls: res.Calls, Elapsed: elapsed}
	return r, r.check(res, mkt, load)
}

// prepareMetered creates a migrated database holding the workload's
// instances, each metered by the collector from the start of the
// workload's hour, and the hour's usage, and returns its name. Bulk SQL
// writes what the API, the instance workflow and RegisterMetering would
// write one instance at a time: 100,000 instances that way would take
// longer than the measurement.
func prepareMetered(ctx context.Context, pg *benchenv.Cluster, load *workload) (string, error) {
	name, err := pg.Create(ctx, "")
	if err != nil {
		return "", err
	}
	if err := addMetered(ctx, pg.URL(name), load); err != nil {
		return "", fmt.Errorf("create metered instances: %w", err)
	}
	return name, pg.Vacuum(ctx, name)
}

func addMetered(ctx context.Context, url string, load *workload) error {
	db, err := store.Open(ctx, url)
	if err != nil {
		return err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return err
	}
	db.Close()

	conn, err := sql.Open("postgres", url)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	prefixes := make([]string, len(load.instances))
	for i, id := range load.instances {
		prefixes[i] = activities.MeteringSNPrefix(id)
	}
	first := store.PeriodBoundaryAfter(load.hour, collectorPeriod)
	for _, q := range []struct {
		what string
		sql  string
		args []any
	}{
		{"instance keys", `INSERT INTO instance_keys (instance_id, order_id, order_line_id, debug)
			SELECT id, 'CS-' || id, 'CS-' || id || '-000001', false FROM unnest($1::text[]) AS id`,
			[]any{pq.Array(load.instances)}},
		{"instances", `INSERT INTO instances (instance_id, order_id, order_line_id, state, charging_mode, order_type,
				sku_code, product_id, customer_id, customer_name, revision)
			SELECT id, 'CS-' || id, 'CS-' || id || '-000001', 'active', 'ON_DEMAND', 'NEW', 'bench-sku', 'bench-product',
				'customer-' || id, 'bench', 1 FROM unnest($1::text[]) AS id`,
			[]any{pq.Array(load.instances)}},
		// As store.Metering.RegisterMetered writes it.
		{"metered instances", `INSERT INTO metered_instances (instance_id, period_ms, delay_ms, open_since, first_boundary,
				close_at, sn_prefix)
			SELECT id, $3, $4, $5, $6, $7, prefix FROM unnest($1::text[], $2::text[]) AS t(id, prefix)`,
			[]any{pq.Array(load.instances), pq.Array(prefixes), collectorPeriod.Milliseconds(), collectorDelay.Milliseconds(),
				load.hour, first, first.Add(collectorDelay)}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("insert %s: %w", q.what, err)
		}
	}
	copyIn, err := tx.PrepareContext(ctx,
		"COPY usage_records (idempotency_key, instance_id, meter, quantity, occurred_at) FROM STDIN")
	if err != nil {
		return err
	}
	err = load.generate(func(k int, id string, units int64, at time.Time) error {
		_, err := copyIn.ExecContext(ctx, usageKey(k), id, "api_calls", koogallery.UsageValueFromUnits(units).String(), at)
		return err
	})
	if err == nil {
		_, err = copyIn.ExecContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("copy usage records: %w", err)
	}
	if err := copyIn.Close(); err != nil {
		return err
	}
	return tx.Commit()
}
