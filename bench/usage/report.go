package main

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
)

// report holds every measurement of a benchmark run.
type report struct {
	cfg     config
	date    time.Time
	machine benchenv.Machine
	// intake and close are keyed by clients and workers.
	intake   map[int][]intakeRun
	close    map[int][]closeRun
	temporal []temporalRun
}

// The markers around the section this program owns in the Markdown file.
const (
	sectionBegin = "<!-- bench-usage: begin (written by make bench-usage; edits inside are overwritten) -->"
	sectionEnd   = "<!-- bench-usage: end -->"
)

// writeSection replaces the pay-per-use section of the Markdown file.
func writeSection(path, section string) error {
	return benchenv.WriteSection(path, sectionBegin, sectionEnd, section)
}

// markdown is the report as the section of docs/benchmarks.md.
func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cfg := r.cfg
	p("%s\n## Pay-per-use: usage intake and the hourly close\n\n", sectionBegin)
	p("Measured %s with `%s`; `make bench-usage` measures again and rewrites this section.\n\n",
		r.date.Format("2006-01-02 15:04 MST"), strings.TrimSpace(cfg.Command))
	p("**Machine:** %d cores (%s), %s/%s, load average %s when the run began and %s when it ended: a shared "+
		"machine, busy with other work, so the runs differ; %s; PostgreSQL %s on the same machine", r.machine.Cores,
		r.machine.CPU, runtime.GOOS, runtime.GOARCH, r.machine.LoadBefore, r.machine.LoadAfter, runtime.Version(),
		r.machine.Postgres)
	if r.machine.Temporal != "" {
		p("; Temporal dev server `%s` (SQLite in memory)", r.machine.Temporal)
	}
	p(".\n\n")
	p("**Workload:** %s pay-per-use instances (ON_DEMAND, active) in the read model, and one hour of their usage: "+
		"%s records of random instances (about %s each) and quantities (0.0001 to 5), in time order, each under its own "+
		"idempotency key, posted in batches of %s to `POST /v1/usage`: the real handler on a TCP port, JSON bodies "+
		"over kept-alive HTTP/1.1 connections, one per client. Each intake starts with no usage stored; each close "+
		"starts from the database an intake left (vacuumed and analysed, as autovacuum would have). The pushes go over "+
		"TLS and HTTP/2 to the mock open API (`koogallery/mockapi`), which checks both signatures and every record. "+
		"Every run checks that each record was stored once and that each instance's period was closed and pushed once "+
		"with its exact sum. Figures are medians of %d runs, except where a run is shown alone.\n\n",
		thousands(cfg.Instances), thousands(cfg.Records), thousands(cfg.Records/cfg.Instances), thousands(cfg.BatchSize), cfg.Runs)

	p("### Intake\n\n| clients | records/s | batch p50 | batch p95 | resent records/s (all duplicates) | records/s of each run |\n|---:|---:|---:|---:|---:|---|\n")
	for _, clients := range cfg.Clients {
		runs := r.intake[clients]
		p("| %d | %s | %s | %s | %s | %s |\n", clients,
			thousands(int(benchenv.Median(runs, intakeRun.rate))),
			ms(time.Duration(benchenv.Median(runs, func(x intakeRun) float64 { return float64(x.P50) }))),
			ms(time.Duration(benchenv.Median(runs, func(x intakeRun) float64 { return float64(x.P95) }))),
			thousands(int(benchenv.Median(runs, intakeRun.resendRate))),
			each(runs, func(x intakeRun) string { return thousands(int(x.rate())) }))
	}
	p("\nThe resent records are the first %s batches sent again once all were stored.\n\n",
		thousands(min(cfg.Resend, (cfg.Records+cfg.BatchSize-1)/cfg.BatchSize)))

	p("### Hourly close of %s instances\n\n", thousands(cfg.Instances))
	p("Each instance's hour closed as its metering workflow closes it, by the `CloseUsagePeriods` activity and then " +
		"the `PushUsage` activity, here called directly, so many instances at a time:\n\n")
	p("| concurrent | all instances | instances/s | per instance p50 | per instance p95 | time of each run |\n|---:|---:|---:|---:|---:|---|\n")
	for _, workers := range cfg.Workers {
		runs := r.close[workers]
		p("| %d | %s | %s | %s | %s | %s |\n", workers,
			seconds(time.Duration(benchenv.Median(runs, func(x closeRun) float64 { return float64(x.Elapsed) }))),
			thousands(int(benchenv.Median(runs, closeRun.rate))),
			ms(time.Duration(benchenv.Median(runs, func(x closeRun) float64 { return float64(x.P50) }))),
			ms(time.Duration(benchenv.Median(runs, func(x closeRun) float64 { return float64(x.P95) }))),
			each(runs, func(x closeRun) string { return seconds(x.Elapsed) }))
	}
	if len(r.temporal) > 0 {
		p("\n**Through Temporal:** a `MeteringWorkflow` for each of the first %s instances, with the production "+
			"period of one hour, on the dev server, run by the server's worker (`worker.New`, default options) against a "+
			"copy of the same database; timed from the moment the close fell due until every period was closed, and "+
			"pushed.", thousands(cfg.TemporalInstances))
		if cfg.TemporalInstances < cfg.Instances {
			p(" Not all %s instances: at the rate the dev server manages on this machine that alone would take %s.",
				thousands(cfg.Instances), r.temporalTime(cfg.Instances))
		}
		p("\n\n")
		p("| run | workflows | starting them | all periods closed | all periods pushed | instances/s |\n|---:|---:|---:|---:|---:|---:|\n")
		for i, t := range r.temporal {
			if !t.Finished {
				p("| %d | %s | %s | %s closed after %s | %s pushed | |\n", i+1, thousands(t.Instances), seconds(t.Starting),
					thousands(t.Closed), temporalPatience, thousands(t.Pushed))
				continue
			}
			p("| %d | %s | %s | %s | %s | %s |\n", i+1, thousands(t.Instances), seconds(t.Starting), seconds(t.AllClosed),
				seconds(t.AllPushed), thousands(int(t.rate())))
		}
	}
	p("\n### Reading\n\n%s\n%s\n", r.reading(), sectionEnd)
	return b.String()
}

// temporalRate is the median rate of the end-to-end closes that finished,
// zero without any.
func (r *report) temporalRate() float64 {
	finished := slices.DeleteFunc(slices.Clone(r.temporal), func(t temporalRun) bool { return !t.Finished })
	return benchenv.Median(finished, temporalRun.rate)
}

// temporalTime is how long closing n instances through Temporal takes at
// the measured rate.
func (r *report) temporalTime(n int) string {
	rate := r.temporalRate()
	if rate == 0 {
		return "more than " + temporalPatience.String()
	}
	d := time.Duration(float64(n) / rate * float64(time.Second))
	if d < 2*time.Minute {
		return seconds(d)
	}
	return fmt.Sprintf("about %.0f minutes", d.Minutes())
}

// reading is the paragraph that says what the figures mean for operating
// the server.
func (r *report) reading() string {
	cfg := r.cfg
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	intake := 0.0
	for _, clients := range cfg.Clients {
		intake = max(intake, benchenv.Median(r.intake[clients], intakeRun.rate))
	}
	p("Intake is far from a limit: one server stores about %s records a second, %s million an hour, so the hour of "+
		"usage above is taken in within %s. ", thousands(int(intake)), strconv.FormatFloat(intake*3600/1e6, 'f', 0, 64),
		seconds(time.Duration(float64(cfg.Records)/intake*float64(time.Second))))
	closing, best := 0.0, 0
	for _, workers := range cfg.Workers {
		if rate := benchenv.Median(r.close[workers], closeRun.rate); rate > closing {
			closing, best = rate, workers
		}
	}
	// Usage is best reported in the first quarter of the next hour, when
	// the marketplace collects it (contract §6.2); the close starts at
	// METERING_PUSH_DELAY past.
	const window = 10 * time.Minute
	p("The hourly close has ten minutes, from five past (METERING_PUSH_DELAY) to a quarter past, when the marketplace "+
		"collects (contract §6.2). The activities close and push %s instances a second (%d at a time), so they would "+
		"meter about %s instances with half that window to spare. ", thousands(int(closing)), best, thousands(int(closing*window.Seconds()/2)))
	fewest, most := slices.Min(cfg.Workers), slices.Max(cfg.Workers)
	if most > fewest && benchenv.Median(r.close[most], closeRun.rate) < 1.1*benchenv.Median(r.close[fewest], closeRun.rate) {
		p("%d at a time are not meaningfully faster than %d, each instance's close only takes longer: the database, which "+
			"commits twice per instance (the close, then the push), sets the pace, not the activity slots. ", most, fewest)
	}
	if rate := r.temporalRate(); rate > 0 {
		all := time.Duration(float64(cfg.Instances) / rate * float64(time.Second))
		fits := "within the ten minutes"
		switch {
		case all > 2*time.Hour-5*time.Minute:
			fits = "beyond the marketplace's two-hour limit"
		case all > window:
			fits = "past the quarter hour, though within the marketplace's two-hour limit"
		}
		p("Through Temporal the close ran at %s instances a second, 1/%.0f of that", thousands(int(rate)), closing/rate)
		if closing > 2*rate {
			p(" (the dev server, SQLite on the same two cores, is the bottleneck)")
		}
		p(", so on this machine one worker meters about %s instances with half the window to spare; the %s instances above "+
			"would take %s, %s. A Temporal cluster on machines of its own should be measured before more instances "+
			"than that are metered. ",
			thousands(int(rate*window.Seconds()/2)), thousands(cfg.Instances),
			r.temporalTime(cfg.Instances), fits)
	}
	p("The mock answers a push in about a millisecond, where the marketplace takes a network round trip, once per " +
		"instance and hour: that time adds to every instance's close but not to the database's work.\n")
	return b.String()
}

// each lists a figure of every run.
func each[T any](runs []T, f func(T) string) string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return strings.Join(out, " · ")
}

// thousands writes n with comma separators: 1,000,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
