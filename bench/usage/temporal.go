package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/worker"
	"github.com/fulfillment-server/fulfillment/workflows"
)

const (
	temporalTaskQueue = "benchusage"
	// temporalPatience is how long after the close fell due the benchmark
	// waits for every period to be pushed before it reports how far the
	// close got.
	temporalPatience = 10 * time.Minute
	// pollInterval is the resolution of the end-to-end figures.
	pollInterval = 200 * time.Millisecond
)

// temporalRun is one hourly close of every instance by its metering
// workflow, on a Temporal dev server with the server's worker.
type temporalRun struct {
	Instances int
	// Starting is how long starting every metering workflow took.
	Starting time.Duration
	// Closed and Pushed are the periods closed and pushed when the
	// benchmark stopped waiting; Finished says whether all were pushed.
	Closed, Pushed int
	Finished       bool
	// AllClosed and AllPushed are the times from the moment the close fell
	// due until every period was closed, and pushed.
	AllClosed, AllPushed time.Duration
}

// rate is the instances closed and pushed a second.
func (r temporalRun) rate() float64 { return float64(r.Instances) / r.AllPushed.Seconds() }

func (r temporalRun) String() string {
	if !r.Finished {
		return fmt.Sprintf("not finished within %s: %d of %d periods closed, %d pushed",
			temporalPatience, r.Closed, r.Instances, r.Pushed)
	}
	return fmt.Sprintf("%d workflows started in %s; all periods closed after %s, pushed after %s (%.0f instances/s)",
		r.Instances, r.Starting.Round(time.Millisecond), r.AllClosed.Round(time.Millisecond),
		r.AllPushed.Round(time.Millisecond), r.rate())
}

// measureTemporal starts a metering workflow for each of the first n
// instances, with the production period of an hour, and times their close
// of the hour from the moment it falls due until every period is pushed.
// The workflows meter from the start of the workload's hour; their push
// delay puts the close lead after the first start, once all have started.
func measureTemporal(ctx context.Context, dbURL, cli string, load *workload, n int, lead time.Duration) (temporalRun, error) {
	ids := load.instances[:n]
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		return temporalRun{}, err
	}
	defer db.Close()
	mkt, err := newMarketplace()
	if err != nil {
		return temporalRun{}, err
	}
	defer mkt.close()
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: cli, ClientOptions: &client.Options{Logger: quiet}, LogLevel: "error",
		// Its banner would mix with the report; errors still show.
		Stdout: io.Discard, Stderr: os.Stderr,
	})
	if err != nil {
		return temporalRun{}, fmt.Errorf("start the Temporal dev server: %w", err)
	}
	defer srv.Stop()
	tc := srv.Client()
	// The worker as the server runs it: default options.
	w := worker.New(tc, temporalTaskQueue, &activities.Activities{Store: db, Usage: mkt.pusher}, worker.Options())
	if err := w.Start(); err != nil {
		return temporalRun{}, err
	}
	defer w.Stop()

	start := time.Now()
	due := start.Add(lead)
	in := workflows.MeteringInput{Period: time.Hour, PushDelay: due.Sub(load.hour.Add(time.Hour)), From: load.hour}
	err = benchenv.Parallel(ctx, len(ids), 16, func(ctx context.Context, i int) error {
		in := in
		in.InstanceID = ids[i]
		_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: workflows.MeteringWorkflowID(in.InstanceID), TaskQueue: temporalTaskQueue,
		}, workflows.MeteringWorkflowName, in)
		return err
	})
	if err != nil {
		return temporalRun{}, fmt.Errorf("start metering workflows: %w", err)
	}
	r := temporalRun{Instances: len(ids), Starting: time.Since(start)}
	if time.Now().After(due) {
		return temporalRun{}, fmt.Errorf("starting %d workflows took %s, longer than -temporal-lead %s", r.Instances, r.Starting, lead)
	}
	if err := waitForPush(ctx, dbURL, due, load.withUsage(ids), &r); err != nil {
		return temporalRun{}, err
	}
	if r.Finished {
		return r, mkt.check(load, ids)
	}
	return r, nil
}

// waitForPush polls the usage periods until every metered instance's
// period is closed and every one with usage pushed, or temporalPatience has
// passed since the close fell due.
func waitForPush(ctx context.Context, dbURL string, due time.Time, withUsage int, r *temporalRun) error {
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		if err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'pushed') FROM usage_periods`).
			Scan(&r.Closed, &r.Pushed); err != nil {
			return fmt.Errorf("count usage periods: %w", err)
		}
		now := time.Now()
		if r.Closed == r.Instances && r.AllClosed == 0 {
			r.AllClosed = now.Sub(due)
		}
		if r.Closed == r.Instances && r.Pushed == withUsage {
			r.AllPushed, r.Finished = now.Sub(due), true
			return nil
		}
		if now.Sub(due) > temporalPatience {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}
