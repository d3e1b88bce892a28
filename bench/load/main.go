// Command load is "make bench": it brings up a fulfillment server as
// it runs in production (the built binary, a database of its own, a
// Temporal server, a mock of the marketplace's open API) and measures it
// with package loadgen — answer latency at a sustained 200 callbacks a
// second, throughput flat out against the raw SignalWithStart ceiling of
// the same Temporal server (with the CPU time the server, Postgres and
// Temporal spend on each, read from /proc, and the history length of a
// life's instance workflow), and the expiry storm — then prints the
// figures as Markdown (-write puts them into docs/benchmarks.md).
//
//	make bench                              # dev server, about 25 minutes on 2 cores
//	go run ./bench/load -storm 500 -mix 100 # a quick look
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
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
		fmt.Fprintln(os.Stderr, "bench/load:", err)
		os.Exit(1)
	}
}

// config is what one benchmark run measures.
type config struct {
	DatabaseURL string
	// Temporal is "dev" (the CLI's dev server) or "postgres" (the Temporal
	// server on a Postgres database of its own).
	Temporal       string
	TemporalCLI    string
	TemporalServer string
	TemporalSQL    string
	// SustainedRate and SustainedFor shape the latency run.
	SustainedRate float64
	SustainedFor  time.Duration
	// Mix is the instances of the flat-out run and of the ceiling.
	Mix         int
	Concurrency int
	// Rounds is how many times the flat-out run and the ceiling are
	// measured, one after the other.
	Rounds    int
	Redeliver float64
	// Storm is the instances of the expiry storm (0 skips it); StormLead
	// is from the storm's first purchase to their common expiry.
	Storm     int
	StormLead time.Duration
	// StormIdle is the purchases bought before the storm that stay open
	// and untouched through it, as a merchant's other customers do.
	StormIdle int
	// StormPatience bounds each wait of the storm (all active, all frozen).
	StormPatience time.Duration
	// Patience bounds the wait for every life of a run to be applied.
	Patience time.Duration
	Write    string
	Command  string
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench/load", flag.ContinueOnError)
	cfg := config{Command: strings.TrimSpace("go run ./bench/load " + strings.Join(args, " "))}
	fs.StringVar(&cfg.DatabaseURL, "database", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"a Postgres server where the benchmark may create (and drops) its databases")
	fs.StringVar(&cfg.Temporal, "temporal", "dev", `the Temporal server: "dev" (the CLI's dev server) or "postgres" (the server on Postgres)`)
	fs.StringVar(&cfg.TemporalCLI, "temporal-cli", "bin/temporal", "the Temporal CLI (its dev server)")
	fs.StringVar(&cfg.TemporalServer, "temporal-server", "bin/server", "the Temporal server binary (go.temporal.io/server/cmd/server), for -temporal postgres")
	fs.StringVar(&cfg.TemporalSQL, "temporal-sql-tool", "bin/sql", "the Temporal SQL tool (go.temporal.io/server/cmd/tools/sql), for -temporal postgres")
	fs.Float64Var(&cfg.SustainedRate, "rate", 200, "callbacks a second offered in the latency run")
	fs.DurationVar(&cfg.SustainedFor, "for", time.Minute, "how long the latency run offers them")
	fs.IntVar(&cfg.Mix, "mix", 1000, "instances whose whole life is played flat out, and signalled bare for the ceiling")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds of the flat-out run and the ceiling; the round with the median ratio is reported in detail")
	fs.IntVar(&cfg.Concurrency, "concurrency", 32, "concurrent clients of the flat-out run and the ceiling")
	fs.Float64Var(&cfg.Redeliver, "redeliver", 0.2, "share of the changing callbacks KooGallery sends twice")
	fs.IntVar(&cfg.Storm, "storm", 10000, "instances expiring in the same minute (0 skips the storm)")
	fs.DurationVar(&cfg.StormLead, "storm-lead", 0, "from buying the storm's instances to their expiry (0: 1 minute plus 80 ms an instance)")
	fs.IntVar(&cfg.StormIdle, "storm-idle", 0, "purchases bought before the storm that stay open, idle, through it")
	fs.DurationVar(&cfg.StormPatience, "storm-patience", 30*time.Minute, "how long the storm waits for all instances active, and for all frozen")
	fs.DurationVar(&cfg.Patience, "patience", 15*time.Minute, "how long a run waits for every life to be applied")
	fs.StringVar(&cfg.Write, "write", "", "a Markdown file to put the figures in (its section for this Temporal server is replaced)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case cfg.Temporal != "dev" && cfg.Temporal != "postgres":
		return config{}, fmt.Errorf(`-temporal must be "dev" or "postgres", not %q`, cfg.Temporal)
	case cfg.SustainedRate <= 0 || cfg.SustainedFor <= 0:
		return config{}, errors.New("-rate and -for must be positive")
	case cfg.Mix < 1 || cfg.Concurrency < 1 || cfg.Rounds < 1 || cfg.Storm < 0 || cfg.StormIdle < 0:
		return config{}, errors.New("-mix, -concurrency and -rounds must be positive, -storm and -storm-idle not negative")
	case cfg.Redeliver < 0 || cfg.Redeliver > 1:
		return config{}, errors.New("-redeliver must be between 0 and 1")
	}
	if cfg.StormLead == 0 {
		cfg.StormLead = time.Minute + time.Duration(cfg.Storm)*80*time.Millisecond
	}
	return cfg, nil
}
