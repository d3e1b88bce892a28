package main

import (
	"cmp"
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
	intake map[int][]intakeRun
	close  map[int][]closeRun
	// collect and collectTemporal are the collector's passes, by the
	// activity called directly and through Temporal; batchedWithUsage is
	// how many of its instances have usage.
	collect, collectTemporal []collectRun
	batchedWithUsage         int
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
	p("\n**Through Temporal**, one `MeteringWorkflow` per instance, is no longer measured: a new `MeteringWorkflow` " +
		"hands its instance to the usage collector when it starts, so no per-instance workflow closes an hour any more; " +
		"the collector below does, through Temporal. Its last measurement (1,000 workflows, 2026-11-21, on another machine) closed 31 " +
		"instances a second on the dev server, at about three Temporal actions per instance-hour (a timer and two " +
		"activities).\n")
	if len(r.collect) > 0 {
		r.collectorSection(p)
	}
	p("\n### Reading\n\n%s\n%s\n", r.reading(), sectionEnd)
	return b.String()
}

// collectMedian is the median time of the collector's passes called
// directly.
func (r *report) collectMedian() time.Duration {
	return time.Duration(benchenv.Median(r.collect, func(x collectRun) float64 { return float64(x.Elapsed) }))
}

// collectorSection is the subsection on the usage collector.
func (r *report) collectorSection(p func(format string, args ...any)) {
	cfg := r.cfg
	n := cfg.BatchedInstances
	p("\n### Hourly close and push of %s instances (usage collector)\n\n", thousands(n))
	p("%s pay-per-use instances, each metered by the usage collector (its row in `metered_instances`, as "+
		"`RegisterMetering` writes it) with the production period of an hour and push delay of five minutes, from the "+
		"start of an hour holding %s usage records of random instances and quantities (%s instances have usage; the "+
		"others' periods are recorded empty and not pushed). One pass of the collector (`CollectUsage`) closes the hour "+
		"of every instance with set-based SQL, 2,000 instances per statement, and pushes the pending periods oldest first, "+
		"1,000 records per call, to the same mock open API. Timed from the moment the pass falls due (the hour's end plus "+
		"the push delay, when the collector wakes) until the marketplace has accepted the last record; every run checks "+
		"that each instance was closed and that the marketplace received exactly one record per instance with usage, "+
		"with its exact total. Through Temporal, the server's worker (`worker.New`, default options) runs "+
		"`UsageCollectorWorkflow`, started as the server starts it on a dev server, with the hour already due, so that "+
		"its first pass closes it; the pass's Temporal actions (its start, activities scheduled and retried, timers, "+
		"markers, signals, child workflows, search attribute updates, up to the timer that ends it) are counted in its "+
		"history and divided by the instance-hours it metered. The per-instance close above, at its size, is the "+
		"before.\n\n", thousands(n), thousands(cfg.BatchedRecords), thousands(r.batchedWithUsage))
	p("| measurement | instances | records pushed | calls | ⌈records/1000⌉ | period end + delay to last record accepted | Temporal actions per instance-hour |\n")
	p("|---|---:|---:|---:|---:|---:|---:|\n")
	if workers, rate := r.bestClose(); rate > 0 {
		runs := r.close[workers]
		pushed := runs[0].Pushed
		p("| before: per-instance close, `CloseUsagePeriods` + `PushUsage` called directly, %d at a time, median of %d | "+
			"%s | %s | %s | %s | %s | about %d (a timer and two activities per instance) |\n",
			workers, len(runs), thousands(cfg.Instances), thousands(pushed), thousands(pushed),
			thousands((pushed+999)/1000),
			seconds(time.Duration(benchenv.Median(runs, func(x closeRun) float64 { return float64(x.Elapsed) }))),
			perInstanceActions)
	}
	c := r.collect[0]
	p("| collector, `CollectUsage` called directly, median of %d (%s) | %s | %s | %s | %s | %s | |\n",
		len(r.collect), each(r.collect, func(x collectRun) string { return seconds(x.Elapsed) }),
		thousands(c.Instances), thousands(c.Pushed), thousands(c.Calls), thousands(c.wantCalls()), seconds(r.collectMedian()))
	for i, t := range r.collectTemporal {
		p("| collector through Temporal, `UsageCollectorWorkflow`, run %d | %s | %s | %s | %s | %s | %.5f (%d actions) |\n",
			i+1, thousands(t.Instances), thousands(t.Pushed), thousands(t.Calls), thousands(t.wantCalls()), seconds(t.Elapsed),
			t.actionsPerInstanceHour(), t.Actions)
	}
	all := append(slices.Clone(r.collect), r.collectTemporal...)
	slowest := slices.MaxFunc(all, func(a, b collectRun) int { return cmp.Compare(a.Elapsed, b.Elapsed) })
	p("\n**Targets:**\n\n")
	size := ""
	if n != 100000 {
		size = fmt.Sprintf(" (measured with %s instances)", thousands(n))
	}
	p("- at most %s from the period's end plus the push delay to the last record accepted, for 100,000 instances%s: "+
		"%s (slowest pass %s);\n", "ten minutes", size, metOrNot(slowest.Elapsed <= collectorTarget), seconds(slowest.Elapsed))
	fewest := !slices.ContainsFunc(all, func(x collectRun) bool { return x.Calls != x.wantCalls() })
	p("- ⌈records/1000⌉ push calls: %s;\n", metOrNot(fewest))
	if len(r.collectTemporal) == 0 {
		p("- at most %.2f Temporal actions per metered instance-hour: not measured (no Temporal CLI).\n", actionsTarget)
	} else {
		most := slices.MaxFunc(r.collectTemporal, func(a, b collectRun) int {
			return cmp.Compare(a.actionsPerInstanceHour(), b.actionsPerInstanceHour())
		})
		p("- at most %.2f Temporal actions per metered instance-hour: %s (%.5f, against about %d before).\n",
			actionsTarget, metOrNot(most.actionsPerInstanceHour() <= actionsTarget), most.actionsPerInstanceHour(), perInstanceActions)
	}
	p("\nMeasured with `%s`.\n", strings.TrimSpace(cfg.Command))
}

// bestClose is the number of concurrent instances whose per-instance close
// was fastest, and its median rate.
func (r *report) bestClose() (workers int, rate float64) {
	for _, w := range r.cfg.Workers {
		if x := benchenv.Median(r.close[w], closeRun.rate); x > rate {
			workers, rate = w, x
		}
	}
	return workers, rate
}

func metOrNot(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
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
	best, closing := r.bestClose()
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
	if len(r.collect) > 0 {
		c := r.collectMedian()
		p("The usage collector closes and pushes %s instances in %s, %s instances a second, %.0f times the "+
			"per-instance close, in %s calls where that made one per instance. ", thousands(cfg.BatchedInstances),
			seconds(c), thousands(int(float64(cfg.BatchedInstances)/c.Seconds())),
			float64(cfg.BatchedInstances)/c.Seconds()/closing, thousands(r.collect[0].Calls))
	}
	p("The mock answers a push in a few milliseconds, where the marketplace takes a network round trip: once per " +
		"instance and hour for the per-instance close, once per 1,000 instances for the collector.\n")
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
