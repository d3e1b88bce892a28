package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
)

// TestBenchmarkSmall runs every measurement of make bench-usage at a small
// size, against real Postgres and a Temporal dev server, so that the
// benchmark keeps working; the counts it checks are the ones the full run
// relies on.
func TestBenchmarkSmall(t *testing.T) {
	cfg := config{
		DatabaseURL: testenv.AdminURL(),
		Instances:   50, Records: 2000, BatchSize: 100, Clients: []int{1, 4}, Resend: 3,
		Workers: []int{8}, Runs: 1,
		// Enough records for two push calls, and a few instances without
		// usage: their empty periods are closed, not pushed.
		BatchedInstances: 1300, BatchedRecords: 6000,
		TemporalCLI: testenv.TemporalCLI(t), TemporalRuns: 1,
		Command: "go run ./bench/usage (test)",
	}
	rep, err := benchmark(t.Context(), cfg, io.Discard)
	require.NoError(t, err)

	for _, clients := range cfg.Clients {
		require.Len(t, rep.intake[clients], 1)
		r := rep.intake[clients][0]
		require.Equal(t, 2000, r.Stored, "records stored by %d clients", clients)
		require.Equal(t, 300, r.Resent, "duplicates among 3 resent batches of 100")
	}
	require.Len(t, rep.close[8], 1)
	c := rep.close[8][0]
	// About 40 records per instance: every one has usage to push.
	require.Equal(t, 50, c.Closed)
	require.Equal(t, 50, c.Pushed)

	// The collector, called directly and through Temporal, closed every
	// instance and pushed one record per instance with usage in the fewest
	// calls (checked against the marketplace's records by the benchmark).
	withUsage := rep.batchedWithUsage
	require.Greater(t, withUsage, 1000, "more records than one call carries")
	require.Less(t, withUsage, 1300, "some instances have no usage")
	require.Len(t, rep.collect, 1)
	require.Len(t, rep.collectTemporal, 1)
	for _, c := range append(rep.collect, rep.collectTemporal...) {
		require.Equal(t, 1300, c.Instances, "instances closed: %s", c)
		require.Equal(t, withUsage, c.Periods, "periods with usage: %s", c)
		require.Equal(t, withUsage, c.Pushed, "records accepted: %s", c)
		require.Equal(t, 2, c.Calls, "calls: %s", c)
		require.Equal(t, (c.Pushed+999)/1000, c.Calls)
		require.Positive(t, c.Elapsed)
	}
	// Its start, one activity and the timer to the next pass.
	tr := rep.collectTemporal[0]
	require.Equal(t, 3, tr.Actions, "Temporal actions of the pass: %s", tr)
	require.Contains(t, rep.markdown(), "### Hourly close and push of 1,300 instances (usage collector)")

	// The report replaces its own section and keeps the rest of the file.
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	require.NoError(t, os.WriteFile(path, []byte("# Benchmarks\n\n## Other\n\nkept\n"), 0o644))
	require.NoError(t, writeSection(path, rep.markdown()))
	require.NoError(t, writeSection(path, rep.markdown()))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "# Benchmarks\n\n## Other\n\nkept\n\n"+rep.markdown(), string(got))
}
