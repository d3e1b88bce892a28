package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

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
		TemporalCLI: testenv.TemporalCLI(t), TemporalInstances: 10, TemporalRuns: 1, TemporalLead: 5 * time.Second,
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
	require.Len(t, rep.temporal, 1)
	tr := rep.temporal[0]
	require.True(t, tr.Finished, "the metering workflows pushed every period: %s", tr)
	require.Equal(t, 10, tr.Closed)
	require.Equal(t, 10, tr.Pushed)

	// The report replaces its own section and keeps the rest of the file.
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	require.NoError(t, os.WriteFile(path, []byte("# Benchmarks\n\n## Other\n\nkept\n"), 0o644))
	require.NoError(t, writeSection(path, rep.markdown()))
	require.NoError(t, writeSection(path, rep.markdown()))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "# Benchmarks\n\n## Other\n\nkept\n\n"+rep.markdown(), string(got))
}
