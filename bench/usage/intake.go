package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// usageToken is the bearer token the benchmark's application reports with.
const usageToken = "bench-usage-token"

// workload is one hour of usage of the instances, as the merchant's
// application reports it: records of random instances and quantities, in
// time order over the hour, each under its own idempotency key. The
// request bodies are encoded in advance: the server is measured, and the
// client's JSON encoding would take its CPU on a small machine.
type workload struct {
	hour      time.Time
	instances []string
	records   int
	batchSize int
	bodies    [][]byte
	// units is the expected usage of each instance that has any, in
	// units of 0.0001 (koogallery.UsageValueScale).
	units map[string]int64
}

func newWorkload(instances, records, batchSize int, hour time.Time) (*workload, error) {
	w := newUsage(instances, records, hour)
	w.batchSize = batchSize
	var in api.UsageIntake
	err := w.generate(func(k int, id string, units int64, at time.Time) error {
		in.Records = append(in.Records, api.UsageIn{
			InstanceID:     id,
			Meter:          "api_calls",
			Quantity:       json.RawMessage(koogallery.UsageValueFromUnits(units).String()),
			Time:           at.Format(time.RFC3339Nano),
			IdempotencyKey: usageKey(k),
		})
		if len(in.Records) < batchSize && k < records-1 {
			return nil
		}
		body, err := json.Marshal(in)
		if err != nil {
			return err
		}
		w.bodies = append(w.bodies, body)
		in.Records = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// newUsage is a workload of the instances and hour whose records are not
// generated yet (generate makes them).
func newUsage(instances, records int, hour time.Time) *workload {
	w := &workload{hour: hour, records: records, units: map[string]int64{}}
	for i := range instances {
		w.instances = append(w.instances, fmt.Sprintf("bench-%06d", i))
	}
	return w
}

// generate makes the hour's records, in time order, adds up each
// instance's units and hands each record to add: the k-th record, of
// instance id, units (of 0.0001) at the time at.
func (w *workload) generate(add func(k int, id string, units int64, at time.Time) error) error {
	// A fixed seed: every run reports the same usage.
	rng := rand.New(rand.NewPCG(1, 2))
	w.units = map[string]int64{}
	step := time.Hour / time.Duration(w.records)
	for k := range w.records {
		id := w.instances[rng.IntN(len(w.instances))]
		units := 1 + rng.Int64N(5*koogallery.UsageValueScale) // 0.0001 to 5
		w.units[id] += units
		if err := add(k, id, units, w.hour.Add(time.Duration(k)*step)); err != nil {
			return err
		}
	}
	return nil
}

// usageKey is the idempotency key of the workload's k-th record.
func usageKey(k int) string { return fmt.Sprintf("bench-%09d", k) }

// withUsage counts the instances among ids that have usage: the others'
// periods are empty, and not pushed.
func (w *workload) withUsage(ids []string) int {
	n := 0
	for _, id := range ids {
		if w.units[id] > 0 {
			n++
		}
	}
	return n
}

// batchRecords is how many records the first n batches hold.
func (w *workload) batchRecords(n int) int { return min(n*w.batchSize, w.records) }

// intakeRun is one measured intake: every batch of the workload sent once,
// then the first batches sent again.
type intakeRun struct {
	Clients  int
	Stored   int
	Elapsed  time.Duration
	P50, P95 time.Duration // of a batch's POST
	// Resent records, all duplicates, took ResendElapsed.
	Resent        int
	ResendElapsed time.Duration
}

func (r intakeRun) rate() float64 { return float64(r.Stored) / r.Elapsed.Seconds() }

func (r intakeRun) resendRate() float64 { return float64(r.Resent) / r.ResendElapsed.Seconds() }

func (r intakeRun) String() string {
	return fmt.Sprintf("%d records in %s (%.0f/s), batch p50 %s p95 %s; %d duplicates at %.0f/s",
		r.Stored, r.Elapsed.Round(time.Millisecond), r.rate(), ms(r.P50), ms(r.P95), r.Resent, r.resendRate())
}

// measureIntake serves the API on a TCP port, as in production, and posts
// the workload to it from the given number of concurrent clients.
func measureIntake(ctx context.Context, dbURL string, load *workload, clients, resend int) (intakeRun, error) {
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		return intakeRun{}, err
	}
	defer db.Close()
	server := api.New(api.Config{
		Store: db, UsageToken: usageToken,
		// Every request is logged, as in production, but to nowhere.
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return intakeRun{}, err
	}
	hs := &http.Server{Handler: server.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	c := &usageClient{
		url: "http://" + ln.Addr().String() + "/v1/usage",
		// One kept-alive connection per client, as an application would.
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute},
	}
	r := intakeRun{Clients: clients}
	first, err := c.postAll(ctx, load.bodies, clients)
	if err != nil {
		return intakeRun{}, err
	}
	if first.accepted != load.records || first.duplicates != 0 {
		return intakeRun{}, fmt.Errorf("%d records sent, %d accepted and %d duplicates", load.records, first.accepted, first.duplicates)
	}
	r.Stored, r.Elapsed, r.P50, r.P95 = first.accepted, first.elapsed, benchenv.Percentile(first.latencies, 50), benchenv.Percentile(first.latencies, 95)

	n := min(resend, len(load.bodies))
	again, err := c.postAll(ctx, load.bodies[:n], clients)
	if err != nil {
		return intakeRun{}, err
	}
	if again.accepted != 0 || again.duplicates != load.batchRecords(n) {
		return intakeRun{}, fmt.Errorf("%d stored records sent again, %d accepted and %d duplicates", load.batchRecords(n), again.accepted, again.duplicates)
	}
	r.Resent, r.ResendElapsed = again.duplicates, again.elapsed
	return r, nil
}

// usageClient is the merchant's application reporting usage.
type usageClient struct {
	url string
	hc  *http.Client
}

// posted is what sending some batches gave.
type posted struct {
	accepted, duplicates int
	elapsed              time.Duration
	latencies            []time.Duration // sorted
}

func (c *usageClient) postAll(ctx context.Context, bodies [][]byte, clients int) (posted, error) {
	answers := make([]usageAnswer, len(bodies))
	latencies := make([]time.Duration, len(bodies))
	start := time.Now()
	err := benchenv.Parallel(ctx, len(bodies), clients, func(ctx context.Context, i int) error {
		t := time.Now()
		a, err := c.post(ctx, bodies[i])
		latencies[i], answers[i] = time.Since(t), a
		return err
	})
	if err != nil {
		return posted{}, err
	}
	p := posted{elapsed: time.Since(start), latencies: latencies}
	slices.Sort(p.latencies)
	for _, a := range answers {
		p.accepted += a.Accepted
		p.duplicates += a.Duplicates
	}
	return p, nil
}

// usageAnswer is the answer to POST /v1/usage.
type usageAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

func (c *usageClient) post(ctx context.Context, body []byte) (usageAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return usageAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+usageToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return usageAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return usageAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return usageAnswer{}, fmt.Errorf("POST /v1/usage: %s: %.500s", resp.Status, raw)
	}
	var a usageAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return usageAnswer{}, fmt.Errorf("POST /v1/usage: answer %.200q: %w", raw, err)
	}
	return a, nil
}

// ms writes a duration in milliseconds, with one decimal below 10 ms.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}
