// Command usage measures pay-per-use metering at scale (make
// bench-usage): the intake of usage records through POST /v1/usage; the
// hourly close of every pay-per-use instance one instance at a time, as
// the per-instance metering workflows did (CloseUsagePeriods, then
// PushUsage, called directly); and the hourly close and push of 100,000
// instances by the usage collector, which replaces them (CollectUsage,
// called directly and then run by UsageCollectorWorkflow on a real Temporal
// dev server and worker). It works on databases of its own, created on the
// given Postgres server and dropped at the end, checks that every record
// was stored, closed and pushed exactly once, and prints the figures as
// Markdown (-write puts them into docs/benchmarks.md).
//
//	make bench-usage   # the full run, 17 to 20 minutes on 2 cores
//	go run ./bench/usage -records 20000 -instances 200 -batched-instances 2000 -runs 1 -temporal ""   # a quick look
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
	// BatchedInstances are the instances the usage collector closes (none
	// skips it), with BatchedRecords records in their hour.
	BatchedInstances, BatchedRecords int
	// TemporalCLI is the Temporal CLI whose dev server the collector runs
	// on; empty skips it.
	TemporalCLI  string
	TemporalRuns int
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
	fs.IntVar(&cfg.Instances, "instances", 10000, "pay-per-use instances of the intake and the per-instance close")
	fs.IntVar(&cfg.Records, "records", 1000000, "usage records taken in by each intake run")
	fs.IntVar(&cfg.BatchSize, "batch", 1000, "records per POST /v1/usage")
	clients := fs.String("clients", "1,4", "concurrent HTTP clients of the intake, comma-separated")
	fs.IntVar(&cfg.Resend, "resend", 100, "stored batches sent again, to time all-duplicate batches")
	workers := fs.String("workers", "8,32", "instances closed concurrently, comma-separated")
	fs.IntVar(&cfg.Runs, "runs", 3, "repetitions of each intake and close measurement (medians are reported)")
	fs.IntVar(&cfg.BatchedInstances, "batched-instances", 100000,
		"pay-per-use instances closed and pushed by the usage collector (0 skips it)")
	fs.IntVar(&cfg.BatchedRecords, "batched-records", 0,
		"usage records in the hour of the collector's instances (0: three per instance, so that about 95 % have usage)")
	fs.StringVar(&cfg.TemporalCLI, "temporal", "bin/temporal", `the Temporal CLI for the collector's end-to-end close ("" skips it)`)
	fs.IntVar(&cfg.TemporalRuns, "temporal-runs", 1, "repetitions of the collector's end-to-end close")
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
		cfg.TemporalRuns < 1 || cfg.BatchedInstances < 0 || cfg.BatchedRecords < 0 {
		return config{}, errors.New("-instances, -records, -batch, -runs and -temporal-runs must be positive, " +
			"-resend, -batched-instances and -batched-records not negative")
	}
	if cfg.BatchedRecords == 0 {
		cfg.BatchedRecords = 3 * cfg.BatchedInstances
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
