package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/worker"
)

// TestMetricsHandlerExportsTheSDKMetrics: a client given the handler, once
// a worker on it has run a workflow with an activity, makes the server's
// /metrics serve the Temporal SDK's series with the namespace, task queue
// and workflow and activity types as labels.
func TestMetricsHandlerExportsTheSDKMetrics(t *testing.T) {
	srv := testenv.StartTemporal(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := api.NewMetrics(nil, api.Gauges{})
	handler, closer := worker.NewMetricsHandler(metrics.Registry(), quiet)
	c, err := client.Dial(client.Options{
		HostPort: srv.Address(), Namespace: "default", MetricsHandler: handler, Logger: sdklog.NewStructuredLogger(quiet),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		require.NoError(t, closer.Close())
	})

	const queue = "metrics-test"
	w := sdkworker.New(c, queue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, name string) (string, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
		var greeting string
		err := workflow.ExecuteActivity(ctx, "greet", name).Get(ctx, &greeting)
		return greeting, err
	}, workflow.RegisterOptions{Name: "hello"})
	w.RegisterActivityWithOptions(func(_ context.Context, name string) (string, error) {
		return "hello " + name, nil
	}, activity.RegisterOptions{Name: "greet"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	run, err := c.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: "metrics-hello", TaskQueue: queue}, "hello", "world")
	require.NoError(t, err)
	var greeting string
	require.NoError(t, run.Get(t.Context(), &greeting))
	require.Equal(t, "hello world", greeting)

	// The SDK's values reach Prometheus on the reporting interval.
	wants := []struct {
		family string
		labels map[string]string
	}{
		{"temporal_request_total", map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"}},
		{"temporal_workflow_completed_total", map[string]string{"namespace": "default", "task_queue": queue, "workflow_type": "hello"}},
		{"temporal_activity_execution_latency_seconds", map[string]string{"namespace": "default", "task_queue": queue, "activity_type": "greet"}},
		{"temporal_workflow_task_execution_latency_seconds", map[string]string{"namespace": "default", "task_queue": queue, "workflow_type": "hello"}},
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		families, err := metrics.Registry().Gather()
		require.NoError(c, err)
		for _, want := range wants {
			require.True(c, observed(families, want.family, want.labels), "no %s%v with a value", want.family, want.labels)
		}
	}, 10*time.Second, 100*time.Millisecond)

	// And the server's /metrics serves them beside its own.
	rec := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	lines := strings.Split(rec.Body.String(), "\n")
	for _, want := range []string{
		"# TYPE temporal_workflow_completed_total counter",
		"# TYPE temporal_activity_execution_latency_seconds histogram",
		"# TYPE go_goroutines gauge", // the server's own registry
	} {
		require.True(t, slices.Contains(lines, want), "/metrics lacks %q", want)
	}
	completed := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "temporal_workflow_completed_total{") })
	require.GreaterOrEqual(t, completed, 0)
	require.Contains(t, lines[completed], `task_queue="`+queue+`"`, "label values are kept as they are")
	require.Contains(t, lines[completed], `workflow_type="hello"`)
}

// observed reports whether a family has a series with the labels (among
// others) whose counter or histogram count is positive.
func observed(families []*dto.MetricFamily, name string, labels map[string]string) bool {
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range labels {
				match = match && have[k] == v
			}
			if match && (m.GetCounter().GetValue() > 0 || m.GetHistogram().GetSampleCount() > 0) {
				return true
			}
		}
	}
	return false
}

// TestMetricsHandlerSurvivesARefusedMetric: a Prometheus registry refuses
// a metric whose name it holds with other labels. The tally reporter's
// default is to panic, which would take the server down from inside the
// SDK; the handler drops that series and logs it once instead.
func TestMetricsHandlerSurvivesARefusedMetric(t *testing.T) {
	var logs testenv.SyncBuffer
	metrics := api.NewMetrics(nil, api.Gauges{})
	taken := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "temporal_request_total", Help: "taken"}, []string{"other"})
	metrics.Registry().MustRegister(taken)
	handler, closer := worker.NewMetricsHandler(metrics.Registry(), slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { require.NoError(t, closer.Close()) })

	require.NotPanics(t, func() {
		for _, ns := range []string{"a", "b", "c"} { // three allocations, three refusals
			handler.WithTags(map[string]string{"namespace": ns}).Counter("temporal_request").Inc(1)
		}
		handler.WithTags(map[string]string{"namespace": "default"}).Counter("temporal_workflow_completed").Inc(1)
	})

	require.Equal(t, 1, strings.Count(logs.String(), "Temporal SDK metric not exported"), "logged once: %s", logs.String())
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		families, err := metrics.Registry().Gather()
		require.NoError(c, err)
		require.True(c, observed(families, "temporal_workflow_completed_total", map[string]string{"namespace": "default"}),
			"the other metrics are exported")
	}, 5*time.Second, 50*time.Millisecond)
}
