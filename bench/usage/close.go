package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// The keys the marketplace emulation and the pusher share.
const (
	benchAK        = "bench-ak"
	benchSK        = "bench-sk"
	benchAccessKey = "bench-access-key"
)

// marketplace is KooGallery's usage endpoint: the mock open API, which
// checks both signatures and every record, served over TLS and HTTP/2 as
// the real one is reached, with the usage it accepted kept in memory.
type marketplace struct {
	srv    *httptest.Server
	ledger *mockapi.MemoryUsage
	pusher activities.UsagePusher
}

func newMarketplace() (*marketplace, error) {
	ledger := mockapi.NewMemoryUsage()
	srv := httptest.NewUnstartedServer(mockapi.New(mockapi.Config{
		AK: benchAK, SK: benchSK, AccessKey: benchAccessKey, Usage: ledger,
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	client, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{
		BaseURL: srv.URL, AK: benchAK, SK: benchSK, HTTPClient: srv.Client(),
	})
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &marketplace{srv: srv, ledger: ledger, pusher: activities.OpenAPIUsagePusher{Client: client, AccessKey: benchAccessKey}}, nil
}

func (m *marketplace) close() { m.srv.Close() }

// openActivities opens the benchmark's database and the mock marketplace,
// and returns the activities on both and what closes them.
func openActivities(ctx context.Context, dbURL string) (*activities.Activities, *marketplace, func(), error) {
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		return nil, nil, nil, err
	}
	mkt, err := newMarketplace()
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return &activities.Activities{Store: db, Usage: mkt.pusher}, mkt, func() { mkt.close(); db.Close() }, nil
}

// check verifies that the marketplace received one record for each of the
// instances with usage, carrying exactly that instance's usage of the hour.
func (m *marketplace) check(load *workload, ids []string) error {
	if got, want := len(m.ledger.Records()), load.withUsage(ids); got != want {
		return fmt.Errorf("the marketplace received %d usage records, want one for each of %d instances", got, want)
	}
	totals := m.ledger.Totals()
	for _, id := range ids {
		if load.units[id] == 0 {
			continue
		}
		v, err := koogallery.ParseUsageValue(totals[id])
		if err != nil {
			return fmt.Errorf("the marketplace's total of %s: %w", id, err)
		}
		units, err := v.Units()
		if err != nil {
			return err
		}
		if units != load.units[id] {
			return fmt.Errorf("the marketplace billed %s for %s, want %s", totals[id], id, koogallery.UsageValueFromUnits(load.units[id]))
		}
	}
	return nil
}

// closeRun is one measured hourly close of every instance.
type closeRun struct {
	Workers        int
	Closed, Pushed int
	Elapsed        time.Duration
	P50, P95       time.Duration // of one instance's close and push
}

func (r closeRun) rate() float64 { return float64(r.Closed) / r.Elapsed.Seconds() }

func (r closeRun) String() string {
	return fmt.Sprintf("%d periods closed, %d pushed in %s (%.0f instances/s), per instance p50 %s p95 %s",
		r.Closed, r.Pushed, r.Elapsed.Round(time.Millisecond), r.rate(), ms(r.P50), ms(r.P95))
}

// measureClose closes the hour of every instance as its metering workflow
// does at the period's end: the CloseUsagePeriods activity, then the
// PushUsage activity, the given number of instances at a time, like a
// worker's concurrent activity slots.
func measureClose(ctx context.Context, dbURL string, load *workload, workers int) (closeRun, error) {
	acts, mkt, done, err := openActivities(ctx, dbURL)
	if err != nil {
		return closeRun{}, err
	}
	defer done()
	period := []workflows.Span{{Start: load.hour, End: load.hour.Add(time.Hour)}}

	var closed, pushed atomic.Int64
	latencies := make([]time.Duration, len(load.instances))
	start := time.Now()
	err = benchenv.Parallel(ctx, len(load.instances), workers, func(ctx context.Context, i int) error {
		t := time.Now()
		c, err := acts.CloseUsagePeriods(ctx, activities.ClosePeriodsInput{
			InstanceID: load.instances[i], Periods: period, Billable: true, At: t,
		})
		if err != nil {
			return err
		}
		p, err := acts.PushUsage(ctx, activities.PushUsageInput{InstanceID: load.instances[i], Now: time.Now()})
		if err != nil {
			return err
		}
		if p.Error != "" {
			// The marketplace refused the push: a bug, not a figure.
			return fmt.Errorf("push usage of %s: %s", load.instances[i], p.Error)
		}
		latencies[i] = time.Since(t)
		closed.Add(int64(c.Closed))
		pushed.Add(int64(p.Pushed))
		return nil
	})
	if err != nil {
		return closeRun{}, err
	}
	r := closeRun{Workers: workers, Closed: int(closed.Load()), Pushed: int(pushed.Load()), Elapsed: time.Since(start)}
	if want := load.withUsage(load.instances); r.Closed != len(load.instances) || r.Pushed != want {
		return closeRun{}, fmt.Errorf("%d periods closed and %d pushed, want %d and %d", r.Closed, r.Pushed, len(load.instances), want)
	}
	if err := mkt.check(load, load.instances); err != nil {
		return closeRun{}, err
	}
	slices.Sort(latencies)
	r.P50, r.P95 = benchenv.Percentile(latencies, 50), benchenv.Percentile(latencies, 95)
	return r, nil
}
