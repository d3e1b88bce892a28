package worker

import (
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// metricsReportInterval is how often the SDK's counters, gauges and timers
// are copied into the Prometheus collectors; a scrape sees values at most
// this old.
const metricsReportInterval = time.Second

// metricsBuckets are the histogram buckets of the SDK's timers (request,
// poll, schedule-to-start and execution latencies), in seconds: from a
// millisecond to the minute a long poll lasts.
var metricsBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// sanitizeOptions keep metric and label names to what Prometheus allows,
// as the SDK's PrometheusSanitizeOptions do, but leave label values as they
// are: Prometheus takes any UTF-8 there, and the SDK's options would turn
// the task queue "koogallery-emulator" into "koogallery_emulator". Only
// what is not UTF-8 (it reads as U+FFFD) is replaced, since the Prometheus
// client panics on it.
var sanitizeOptions = tally.SanitizeOptions{
	NameCharacters: sdktally.PrometheusSanitizeOptions.NameCharacters,
	KeyCharacters:  sdktally.PrometheusSanitizeOptions.KeyCharacters,
	ValueCharacters: tally.ValidCharacters{Ranges: []tally.SanitizeRange{
		{0, utf8.RuneError - 1}, {utf8.RuneError + 1, unicode.MaxRune},
	}},
	ReplacementCharacter: tally.DefaultReplacementCharacter,
}

// NewMetricsHandler returns the metrics handler to give the Temporal
// client (client.Options.MetricsHandler): the SDK's own metrics of the
// client and of every worker built on it (temporal_request_total,
// temporal_workflow_completed_total, temporal_activity_execution_latency_seconds,
// temporal_worker_task_slots_available, …, labelled with namespace,
// task_queue, workflow_type and activity_type) are registered in registry,
// so that the server's /metrics serves them beside its own.
//
// It is the SDK's tally contrib with tally's Prometheus reporter bound to
// registry, as in the Temporal samples, with Prometheus names (counters end
// in _total, timers are histograms in seconds). Close the returned closer
// after the client: it stops the reporting loop and reports a last time.
//
// A Prometheus registry refuses a second metric of the same name with
// other labels, which some SDK versions emit; that one series is then
// dropped and the refusal logged once, instead of the reporter's default
// panic.
func NewMetricsHandler(registry prometheus.Registerer, log *slog.Logger) (client.MetricsHandler, io.Closer) {
	var refused sync.Map
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              registry,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: metricsBuckets,
		OnRegisterError: func(err error) {
			if _, seen := refused.LoadOrStore(err.Error(), true); !seen {
				log.Warn("Temporal SDK metric not exported", "error", err)
			}
		},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sanitizeOptions,
		// tally's own series count its scopes; nobody alerts on them.
		OmitCardinalityMetrics: true,
	}, metricsReportInterval)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), closer
}
