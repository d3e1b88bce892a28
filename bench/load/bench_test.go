package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/bench/loadgen"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
)

// TestBenchmarkSmall runs every measurement of make bench at a small size,
// against the built server, real Postgres and a Temporal dev server, so
// that the benchmark keeps working; the checks are the ones the full run's
// figures rely on: every life applied, nothing lost or applied twice,
// every storm FREEZE answered and every tenant frozen.
func TestBenchmarkSmall(t *testing.T) {
	cfg := config{
		DatabaseURL: testenv.AdminURL(), Temporal: "dev", TemporalCLI: testenv.TemporalCLI(t),
		SustainedRate: 20, SustainedFor: 2 * time.Second, Mix: 6, Concurrency: 4, Redeliver: 0.5, Rounds: 2,
		Storm: 8, StormIdle: 3, StormLead: 12 * time.Second, StormPatience: 5 * time.Minute, Patience: 5 * time.Minute, Command: "go run ./bench/load (test)",
	}
	rep, err := benchmark(t.Context(), cfg, io.Discard)
	require.NoError(t, err)

	for name, r := range map[string]loadgen.MixResult{"latency run": rep.sustained, "flat-out run": rep.flatOut} {
		require.Positive(t, r.Applied, "%s: every life applied", name)
		require.Zero(t, r.Lost, name)
		require.Zero(t, r.Duplicated, name)
		for code := range r.Codes {
			require.Contains(t, []string{"000000", "000004"}, code, "%s: only success, or queryInstance before the tenant exists", name)
		}
	}
	require.Equal(t, 4, rep.sustainedInstances, "20 callbacks/s for 2 s, 9.5 callbacks a life")
	require.Len(t, rep.rounds, 2)
	for _, rd := range rep.rounds {
		require.Equal(t, 6, rd.flatOut.Checked)
		require.Zero(t, rd.flatOut.Lost)
		require.Zero(t, rd.flatOut.Duplicated)
		require.Positive(t, rd.ratio(6), "both the server's and the ceiling's runs finished")
		require.Positive(t, rd.flatOutCPU.Server, "the server worked on the flat-out run")
		require.Positive(t, rd.flatOutCPU.Temporal, "so did Temporal")
		require.Positive(t, rd.ceilingCPU.Temporal, "and on the ceiling")
		require.GreaterOrEqual(t, rd.flatOutCPU.Postgres, time.Duration(0))
		require.Len(t, rd.lifeEvents, 6, "every life's history counted (fewer than 20)")
		for _, n := range rd.lifeEvents {
			// At least the start, newInstance's signal and task, and the
			// release that completes it.
			require.Greater(t, n, 10)
		}
	}
	require.Equal(t, 6, rep.flatOut.Checked)
	require.Equal(t, 6*loadgen.Changes, rep.ceiling.Signals)
	require.Zero(t, rep.ceiling.Errors)
	require.Positive(t, rep.ceiling.Applied, "every ceiling workflow received its signals")

	require.NoError(t, rep.stormErr)
	require.Len(t, rep.idle.IDs, 3, "the idle purchases were bought first")
	require.NotContains(t, rep.idle.IDs, "")
	require.Equal(t, 8, rep.storm.Freeze.Codes["000000"], "every FREEZE answered 000000")
	require.Equal(t, int64(8), rep.storm.Frozen)
	require.Positive(t, rep.storm.AllFrozen)

	// The report replaces its own section and keeps the rest of the file.
	md := rep.markdown()
	require.Contains(t, md, "| **all** |")
	require.Contains(t, md, "**Ratio:** median")
	require.Contains(t, md, "| 2 | ")
	require.Contains(t, md, "### CPU per applied callback (flat-out run)")
	require.Contains(t, md, "| **total** |")
	require.Contains(t, md, "| of which the connections to the benchmark's databases |")
	require.Regexp(t, `\| Temporal \(the dev server\) \| [0-9.]+ s \| [0-9.]+ ms \| [0-9.]+ s \| [0-9.]+ ms \|`, md)
	require.Regexp(t, `History events per life:\*\* median [1-9][0-9]* \(max [1-9][0-9]*\) over 6 lives`, md)
	require.Contains(t, md, "3 idle ones open")
	require.True(t, strings.HasSuffix(md, "<!-- bench-dev: end -->\n"))
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	require.NoError(t, os.WriteFile(path, []byte("# Benchmarks\n\n## Other\n\nkept\n"), 0o644))
	begin, end := markers("dev")
	require.NoError(t, benchenv.WriteSection(path, begin, end, md))
	require.NoError(t, benchenv.WriteSection(path, begin, end, md))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "# Benchmarks\n\n## Other\n\nkept\n\n"+md, string(got))
}
