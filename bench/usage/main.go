// Command usage measures pay-per-use metering at scale (make
// bench-usage): the intake of usage records through POST /v1/usage, and
// the hourly close (CloseUsagePeriods, then PushUsage) of every pay-per-use
// instance, first by calling the activities directly and then through a
// real Temporal dev server and worker. It works on databases of its own,
// created on the given Postgres server and dropped at the end, checks that
// every record was stored, closed and pushed exactly once, and prints the
// figures as Markdown (-write puts them into docs/benchmarks.md).
//
//	make bench-usage   # the full run, 12 to 15 minutes on 2 cores
//	go run ./bench/usage -records 20000 -instances 200 -runs 1 -temporal ""   # a quick look
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/usage:", err)
		os.Exit(1)
	}
}

// config is what one benchmark run measures.
type config struct {
	// DatabaseURL names a Postgres server on which the benchmark may create
	// and drop databases (the database in it is only used to connect).
	DatabaseURL string
	Instances   int
	Records     int
	BatchSize   int
	// Clients are the numbers of concurrent HTTP clients of the intake.
	Clients []int
	// Resend is how many stored batches are sent again (all duplicates).
	Resend int
	// Workers are the numbers of instances closed concurrently.
	Workers []int
	Runs    int
	// TemporalCLI is the Temporal CLI whose dev server the end-to-end close
	// runs on; empty skips it.
	TemporalCLI string
	// TemporalInstances are the first instances metered through Temporal.
	TemporalInstances int
	TemporalRuns      int
	// TemporalLead is how long after the first workflow starts the hourly
	// close falls due; zero picks one from the number of instances.
	TemporalLead time.Duration
	// Write is the Markdown file whose pay-per-use section is replaced.
	Write string
	// Command is the command line shown in the report.
	Command string
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench/usage", flag.ContinueOnError)
	cfg := config{Command: "go run ./bench/usage " + strings.Join(args, " ")}
	fs.StringVar(&cfg.DatabaseURL, "database", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"a Postgres server where the benchmark may create (and drops) its databases")
	fs.IntVar(&cfg.Instances, "instances", 10000, "pay-per-use instances")
	fs.IntVar(&cfg.Records, "records", 1000000, "usage records taken in by each intake run")
	fs.IntVar(&cfg.BatchSize, "batch", 1000, "records per POST /v1/usage")
	clients := fs.String("clients", "1,4", "concurrent HTTP clients of the intake, comma-separated")
	fs.IntVar(&cfg.Resend, "resend", 100, "stored batches sent again, to time all-duplicate batches")
	workers := fs.String("workers", "8,32", "instances closed concurrently, comma-separated")
	fs.IntVar(&cfg.Runs, "runs", 3, "repetitions of each intake and close measurement (medians are reported)")
	fs.StringVar(&cfg.TemporalCLI, "temporal", "bin/temporal", `the Temporal CLI for the end-to-end close ("" skips it)`)
	fs.IntVar(&cfg.TemporalInstances, "temporal-instances", 1000,
		"instances metered end to end through Temporal (the dev server is slower than the activities)")
	fs.IntVar(&cfg.TemporalRuns, "temporal-runs", 1, "repetitions of the end-to-end close")
	fs.DurationVar(&cfg.TemporalLead, "temporal-lead", 0,
		"time from starting the metering workflows to their close (0: 30s plus 15ms per workflow)")
	fs.StringVar(&cfg.Write, "write", "", "a Markdown file to put the figures in (its pay-per-use section is replaced)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var err error
	if cfg.Clients, err = parseCounts(*clients); err != nil {
		return config{}, fmt.Errorf("-clients: %w", err)
	}
	if cfg.Workers, err = parseCounts(*workers); err != nil {
		return config{}, fmt.Errorf("-workers: %w", err)
	}
	if cfg.Instances < 1 || cfg.Records < 1 || cfg.BatchSize < 1 || cfg.Runs < 1 || cfg.Resend < 0 ||
		cfg.TemporalInstances < 1 || cfg.TemporalRuns < 1 {
		return config{}, errors.New("-instances, -records, -batch, -runs, -temporal-instances and -temporal-runs must be positive, -resend not negative")
	}
	cfg.TemporalInstances = min(cfg.TemporalInstances, cfg.Instances)
	if cfg.TemporalLead == 0 {
		// Starting a workflow takes about 8 ms on a busy 2-core machine; the
		// close must not fall due before the last one has started.
		cfg.TemporalLead = 30*time.Second + time.Duration(cfg.TemporalInstances)*15*time.Millisecond
	}
	return cfg, nil
}

// parseCounts reads "1,4" as [1 4].
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// run measures, prints the report and writes it into cfg.Write.
func run(ctx context.Context, cfg config) error {
	rep, err := benchmark(ctx, cfg, os.Stderr)
	if err != nil {
		return err
	}
	section := rep.markdown()
	fmt.Print(section)
	if cfg.Write == "" {
		return nil
	}
	if err := writeSection(cfg.Write, section); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "Wrote", cfg.Write)
	return nil
}
