package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/fulfillment-server/fulfillment/worker"
	"github.com/fulfillment-server/fulfillment/workflows"
)

const (
	temporalTaskQueue = "benchusage"
	// temporalPatience is how long the benchmark waits for the collector's
	// pass to push every record before it gives up.
	temporalPatience = 20 * time.Minute
	// pollInterval is the resolution of the end-to-end figures.
	pollInterval = 200 * time.Millisecond
)

// measureCollectorTemporal runs the usage collector as the server does: a
// Temporal dev server, the server's worker (default options) with the real
// activities on the database and the mock marketplace, and
// UsageCollectorWorkflow started as the server starts it, with the
// production period and push delay. The hour's close is due already, so
// the collector's first pass, which it runs at once, closes and pushes it:
// timed from the start until the marketplace holds every record. The
// pass's Temporal actions are then counted from the workflow's history.
func measureCollectorTemporal(ctx context.Context, dbURL, cli string, load *workload) (collectRun, error) {
	acts, mkt, done, err := openActivities(ctx, dbURL)
	if err != nil {
		return collectRun{}, err
	}
	defer done()
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: cli, ClientOptions: &client.Options{Logger: quiet}, LogLevel: "error",
		// Its banner would mix with the report; errors still show.
		Stdout: io.Discard, Stderr: os.Stderr,
	})
	if err != nil {
		return collectRun{}, fmt.Errorf("start the Temporal dev server: %w", err)
	}
	defer srv.Stop()
	tc := srv.Client()
	w := worker.New(tc, temporalTaskQueue, acts, worker.Options())
	if err := w.Start(); err != nil {
		return collectRun{}, err
	}
	defer w.Stop()

	r := collectRun{Temporal: true, WithUsage: load.withUsage(load.instances)}
	start := time.Now()
	if due := load.hour.Add(collectorPeriod + collectorDelay); start.Before(due) {
		// The collector would sleep until then instead of passing at once.
		return collectRun{}, fmt.Errorf("the hour from %s is not due before %s", load.hour, due)
	}
	if err := worker.EnsureUsageCollector(ctx, tc, temporalTaskQueue,
		workflows.UsageCollectorInput{Period: collectorPeriod, PushDelay: collectorDelay}); err != nil {
		return collectRun{}, err
	}
	// Whatever happens, the collector must not outlive the dev server's
	// client; stopping the server ends it anyway.
	defer func() {
		_ = tc.TerminateWorkflow(context.WithoutCancel(ctx), workflows.UsageCollectorWorkflowID(temporalTaskQueue), "", "benchmark over")
	}()
	for len(mkt.ledger.Records()) < r.WithUsage {
		if time.Since(start) > temporalPatience {
			return collectRun{}, fmt.Errorf("the collector pushed %d of %d records within %s",
				len(mkt.ledger.Records()), r.WithUsage, temporalPatience)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return collectRun{}, err
		}
	}
	r.Elapsed = time.Since(start)

	// The pass is over once the collector sleeps until the next one: its
	// first timer.
	var (
		actions int
		asleep  bool
	)
	for !asleep {
		if actions, asleep, err = passActions(ctx, tc); err != nil {
			return collectRun{}, err
		}
		if time.Since(start) > temporalPatience {
			return collectRun{}, fmt.Errorf("the collector's first pass did not end within %s", temporalPatience)
		}
		if !asleep {
			if err := sleep(ctx, pollInterval); err != nil {
				return collectRun{}, err
			}
		}
	}
	r.Actions = actions
	q, err := tc.QueryWorkflow(ctx, workflows.UsageCollectorWorkflowID(temporalTaskQueue), "", workflows.UsageCollectorQuery)
	if err != nil {
		return collectRun{}, fmt.Errorf("query the collector: %w", err)
	}
	var st workflows.CollectorState
	if err := q.Get(&st); err != nil {
		return collectRun{}, err
	}
	if st.Passes != 1 {
		return collectRun{}, fmt.Errorf("the collector made %d passes, want 1", st.Passes)
	}
	res := st.Last
	r.Instances, r.Periods, r.Pushed, r.Calls = res.Instances, res.Periods, res.Pushed, res.Calls
	return r, r.check(res, mkt, load)
}

// passActions counts the Temporal actions (what Temporal Cloud bills) of
// the collector's first pass: its start, the activities scheduled and
// their retries, timers, markers (side effects, versions), signals to and
// children of other workflows, and search attribute updates, up to and
// including the first timer, which ends the pass. asleep says whether
// that timer has started.
func passActions(ctx context.Context, tc client.Client) (actions int, asleep bool, err error) {
	iter := tc.GetWorkflowHistory(ctx, workflows.UsageCollectorWorkflowID(temporalTaskQueue), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			return 0, false, fmt.Errorf("read the collector's history: %w", err)
		}
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
			enumspb.EVENT_TYPE_MARKER_RECORDED, enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			actions++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			// Only the last attempt is written; each retry was an action.
			actions += int(e.GetActivityTaskStartedEventAttributes().GetAttempt()) - 1
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			return actions + 1, true, nil
		}
	}
	return actions, false, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
