package loadgen

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
)

// Ceiling is the raw rate of the Temporal server under the fulfillment
// server: bare SignalWithStart calls, the same number and shape as a Mix
// delivers (Changes signals to each of Instances workflows, one instance's
// in order), at the same concurrency, to a workflow that does nothing but
// receive them. No callback can be applied faster than this.
type Ceiling struct {
	Instances   int
	Concurrency int
	// TaskQueue is the ceiling workflow's own queue; a worker for it runs
	// in this process while the measurement runs.
	TaskQueue string
	Patience  time.Duration
}

// CeilingResult is what a Ceiling run measured.
type CeilingResult struct {
	Signals int
	// Sent is how long the SignalWithStart calls took; Applied how long
	// from the first call until every workflow had received all its
	// signals and completed (zero: not within Patience).
	Sent, Applied time.Duration
	Latency       Latency
	Errors        int
}

// SentRate and AppliedRate are signals a second.
func (r CeilingResult) SentRate() float64 { return float64(r.Signals) / r.Sent.Seconds() }
func (r CeilingResult) AppliedRate() float64 {
	if r.Applied <= 0 {
		return 0
	}
	return float64(r.Signals) / r.Applied.Seconds()
}

const ceilingSignal = "callback"

// ceilingWorkerOptions are the settings of the raw ceiling's worker in the
// benchmarks: autoscaling pollers, so that the ceiling measures Temporal's
// rate rather than that of two pollers.
func ceilingWorkerOptions() sdkworker.Options {
	return sdkworker.Options{
		WorkflowTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
	}
}

// ceilingWorkflow receives a number of signals and completes.
func ceilingWorkflow(ctx workflow.Context, signals int) error {
	ch := workflow.GetSignalChannel(ctx, ceilingSignal)
	for range signals {
		ch.Receive(ctx, nil)
	}
	return nil
}

// RunCeiling measures the ceiling on the Temporal server tc talks to.
func RunCeiling(ctx context.Context, tc client.Client, c Ceiling) (CeilingResult, error) {
	if err := validate(c.Instances, c.Concurrency, 0); err != nil {
		return CeilingResult{}, err
	}
	w := sdkworker.New(tc, c.TaskQueue, ceilingWorkerOptions())
	w.RegisterWorkflowWithOptions(ceilingWorkflow, workflow.RegisterOptions{Name: "LoadgenCeiling"})
	if err := w.Start(); err != nil {
		return CeilingResult{}, fmt.Errorf("start the ceiling worker: %w", err)
	}
	defer w.Stop()

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	stats := &Stats{}
	var errs atomic.Int64
	start := time.Now()
	_ = benchenv.Parallel(ctx, c.Instances, c.Concurrency, func(ctx context.Context, n int) error {
		id := "loadgen-ceiling-" + run + "-" + strconv.Itoa(n)
		for range Changes {
			due := time.Now()
			_, err := tc.SignalWithStartWorkflow(ctx, id, ceilingSignal, nil, client.StartWorkflowOptions{
				ID: id, TaskQueue: c.TaskQueue,
			}, "LoadgenCeiling", Changes)
			code := "ok"
			if err != nil {
				errs.Add(1)
				code = "error"
			}
			stats.add(Answer{Kind: "SignalWithStart", Code: code, Latency: time.Since(due)}, due)
		}
		return nil
	})
	if err := ctx.Err(); err != nil {
		return CeilingResult{}, err
	}
	sum := stats.Summary()
	res := CeilingResult{Signals: sum.Answers, Sent: time.Since(start), Latency: sum.ByKind["SignalWithStart"], Errors: int(errs.Load())}
	// Every workflow completes once it has its signals; wait for the last.
	deadline := start.Add(c.Patience)
	err := benchenv.Parallel(ctx, c.Instances, c.Concurrency, func(ctx context.Context, n int) error {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return tc.GetWorkflow(wctx, "loadgen-ceiling-"+run+"-"+strconv.Itoa(n), "").Get(wctx, nil)
	})
	if err == nil {
		res.Applied = time.Since(start)
	}
	return res, nil
}
