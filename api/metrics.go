package api

import (
	"context"
	"database/sql"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Metrics are the server's Prometheus metrics.
type Metrics struct {
	registry   *prometheus.Registry
	callbacks  *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	signatures *prometheus.CounterVec
}

// Gauges are read at scrape time from these sources; any may be nil.
type Gauges struct {
	// RelayBacklog counts the callbacks recorded but not yet delivered.
	RelayBacklog func(ctx context.Context) (int64, error)
	// InstancesByState counts instances per lifecycle state, so that
	// alerts can fire on parked and release_overdue instances.
	InstancesByState func(ctx context.Context) (map[string]int64, error)
	// SpoolBacklog counts the callbacks waiting on local disk for the
	// database.
	SpoolBacklog func() (int, error)
	// UsagePending counts the closed usage periods the marketplace has
	// not accepted yet: a number that grows means pushes are failing.
	UsagePending func(ctx context.Context) (int64, error)
	// UsageHeld counts the usage periods held for an operator: their
	// usage cannot be pushed as it is (split them or write them off).
	UsageHeld func(ctx context.Context) (int64, error)
	// ParkedCallbacks counts the callbacks that could never be delivered
	// to their workflow and wait for an operator (retry or discard).
	ParkedCallbacks func(ctx context.Context) (int64, error)
	// Pools are the database connection pools by name; their statistics
	// (go_sql_*{db_name}) show whether work waits for a connection.
	Pools map[string]*sql.DB
}

// NewMetrics creates the metrics on a registry of their own (nil: a new
// one), with the Go and process collectors and the given gauges.
func NewMetrics(registry *prometheus.Registry, g Gauges) *Metrics {
	if registry == nil {
		registry = prometheus.NewRegistry()
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &Metrics{
		registry: registry,
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fulfillment_callbacks_total",
			Help: "Production-interface calls answered, by activity and result code.",
		}, []string{"activity", "result_code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fulfillment_callback_duration_seconds",
			Help: "Time to answer a production-interface call, by activity.",
			// The marketplace times out after about 20 s; the interesting
			// range is well below a second.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"activity"}),
	}
	m.signatures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fulfillment_signature_checks_total",
		Help: "Request signatures checked, by interface and by the form of the body the signature matched (raw, canonical or none): what the marketplace really signs.",
	}, []string{"interface", "form"})
	registry.MustRegister(m.callbacks, m.latency, m.signatures)
	m.AddGauges(g)
	return m
}

// AddGauges registers the gauges given (a nil source is left out): the
// server adds them once its database pools exist.
func (m *Metrics) AddGauges(g Gauges) {
	for name, pool := range g.Pools {
		m.registry.MustRegister(collectors.NewDBStatsCollector(pool, name))
	}
	if g.RelayBacklog != nil {
		m.registry.MustRegister(countGauge("fulfillment_relay_backlog",
			"Callbacks recorded but not yet delivered to their workflow (-1 when unknown).", g.RelayBacklog))
	}
	if g.UsagePending != nil {
		m.registry.MustRegister(countGauge("fulfillment_usage_periods_pending",
			"Closed pay-per-use usage periods not yet accepted by the marketplace (-1 when unknown).", g.UsagePending))
	}
	if g.UsageHeld != nil {
		m.registry.MustRegister(countGauge("fulfillment_usage_periods_held",
			"Usage periods held for an operator because their usage cannot be pushed as it is (-1 when unknown).", g.UsageHeld))
	}
	if g.ParkedCallbacks != nil {
		m.registry.MustRegister(countGauge("fulfillment_callbacks_parked",
			"Callbacks that could never be delivered to their workflow, waiting for an operator (-1 when unknown).", g.ParkedCallbacks))
	}
	if g.SpoolBacklog != nil {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fulfillment_spool_backlog",
			Help: "Callbacks kept on local disk while the database was unreachable, not yet recorded (-1 when unknown).",
		}, func() float64 {
			n, err := g.SpoolBacklog()
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	if g.InstancesByState != nil {
		m.registry.MustRegister(&instancesCollector{count: g.InstancesByState})
	}
}

// countGauge reports a count read from the database at scrape time, or -1
// when the database does not answer.
func countGauge(name, help string, count func(ctx context.Context) (int64, error)) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
}

// instancesCollector reports fulfillment_instances{state} at scrape time.
type instancesCollector struct {
	count func(ctx context.Context) (map[string]int64, error)
}

var instancesDesc = prometheus.NewDesc("fulfillment_instances",
	"Instances by lifecycle state (alert on parked and release_overdue).", []string{"state"}, nil)

func (c *instancesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- instancesDesc }

func (c *instancesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(instancesDesc, err)
		return
	}
	for _, st := range workflows.States {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(counts[string(st)]), string(st))
	}
}

// Registry is where other components (the Temporal SDK) add their metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// observeSignature counts one signature check of an interface ("basic")
// by the form it matched.
func (m *Metrics) observeSignature(iface string, form koogallery.SignedForm) {
	m.signatures.WithLabelValues(iface, string(form)).Inc()
}

func (m *Metrics) observeCallback(activity, code string, d time.Duration) {
	m.callbacks.WithLabelValues(activity, code).Inc()
	m.latency.WithLabelValues(activity).Observe(d.Seconds())
}
