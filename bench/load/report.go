package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/bench/loadgen"
)

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
	begin, end := markers(cfg.Temporal)
	if err := benchenv.WriteSection(cfg.Write, begin, end, section); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "Wrote", cfg.Write)
	return nil
}

// markers delimit the section a run owns: one per Temporal server.
func markers(temporal string) (begin, end string) {
	return "<!-- bench-" + temporal + ": begin (written by make bench; edits inside are overwritten) -->",
		"<!-- bench-" + temporal + ": end -->"
}

var kinds = []string{"newInstance", "queryInstance", "refreshInstance", "FREEZE", "UNFREEZE", "releaseInstance", "all"}

// markdown is the report as this Temporal server's section of
// docs/benchmarks.md.
func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	begin, end := markers(r.cfg.Temporal)
	p("%s\n", begin)
	r.writeIntro(p)
	r.writeLatency(p)
	r.writeThroughput(p)
	r.writeCPU(p)
	if r.cfg.Storm > 0 && r.storm != nil {
		r.writeStorm(p)
	}
	p("%s\n", end)
	return b.String()
}

// writeIntro writes the section's title and what was measured on what.
func (r *report) writeIntro(p func(string, ...any)) {
	cfg := r.cfg
	title := map[string]string{"dev": "the Temporal dev server", "postgres": "the Temporal server on Postgres"}[cfg.Temporal]
	p("## Production interface under load: %s\n\n", title)
	p("Measured %s with `%s`; `make bench` (dev server) or `make bench-postgres` measures again and rewrites this section.\n\n",
		r.date.Format("2006-01-02 15:04 MST"), cfg.Command)
	p("**Machine:** %d cores (%s), %s/%s, load average %s when the run began and %s when it ended (a shared machine); %s; "+
		"PostgreSQL %s; Temporal %s. Everything — the load generator, `fulfillment serve` (API and worker in one process, "+
		"default settings, demo provisioner), Postgres, Temporal and the mock open API — runs on this one machine.\n\n",
		r.machine.Cores, r.machine.CPU, runtime.GOOS, runtime.GOARCH, r.machine.LoadBefore, r.machine.LoadAfter,
		runtime.Version(), r.machine.Postgres, r.temporal)
	p("**Workload:** whole purchase lives, each instance's callbacks in order — newInstance, queryInstance, refreshInstance "+
		"(RENEWAL), FREEZE, UNFREEZE, queryInstance, releaseInstance — many instances side by side; %.0f %% of the callbacks "+
		"that change something (and of the newInstance calls, with a new businessId) are sent twice, as KooGallery does when "+
		"it misses an answer. Each call is signed (contract §2.2) and each answer's Body-Sign checked. Latency runs from the "+
		"moment a call was due, so a server that falls behind cannot hide its queue. *Applied* means the instance workflow "+
		"has carried out the callback and written the read model: the run waits until every instance is released, then "+
		"reads every timeline and counts callbacks lost (answered `000000`, never applied) and applied twice.\n\n",
		cfg.Redeliver*100)
}

// writeLatency writes the figures of the latency run.
func (r *report) writeLatency(p func(string, ...any)) {
	cfg := r.cfg
	p("### Answer latency at %.0f callbacks/s sustained\n\n", cfg.SustainedRate)
	p("%d lives, %d callbacks offered at %.0f a second for %s (open loop, up to 256 in flight); answered at %.0f/s.\n\n",
		r.sustainedInstances, r.sustained.Answers, cfg.SustainedRate, cfg.SustainedFor, r.sustained.Rate())
	latencyTable(p, r.sustained.Summary)
	p("Result codes: %s. %s\n\n", codes(r.sustained.Codes), appliedSentence(r.sustained))
}

// writeThroughput writes every round's ratio, then the median round in
// detail.
func (r *report) writeThroughput(p func(string, ...any)) {
	cfg := r.cfg
	applied := r.flatOut.AppliedRate(cfg.Mix)
	p("### Throughput flat out, against the raw Temporal ceiling\n\n")
	p("%d lives sent by %d clients as fast as they are answered; then, on the same Temporal server, %d bare "+
		"`SignalWithStart` calls (%d to each of %d workflows that only receive them, the same shape as the lives' %d changing "+
		"callbacks) from %d clients. Measured in %d rounds, one after the other:\n\n", cfg.Mix, cfg.Concurrency, r.ceiling.Signals,
		loadgen.Changes, cfg.Mix, cfg.Mix*loadgen.Changes, cfg.Concurrency, len(r.rounds))
	p("| round | server: all applied after | server: changing callbacks applied/s | ceiling: all applied after | ceiling: signals applied/s | ratio |\n")
	p("|---:|---:|---:|---:|---:|---:|\n")
	ratios := make([]float64, 0, len(r.rounds))
	for i, rd := range r.rounds {
		ratios = append(ratios, rd.ratio(cfg.Mix))
		p("| %d | %s | %.0f | %s | %.0f | %.0f %% |\n", i+1, seconds(rd.flatOut.Applied), rd.flatOut.AppliedRate(cfg.Mix),
			seconds(rd.ceiling.Applied), rd.ceiling.AppliedRate(), rd.ratio(cfg.Mix)*100)
	}
	slices.Sort(ratios)
	p("\n**Ratio:** median %.0f %% (target ≥ 60 %% on the dev server; rounds from %.0f %% to %.0f %%). The round with the median ratio, in detail:\n\n",
		ratios[len(ratios)/2]*100, ratios[0]*100, ratios[len(ratios)-1]*100)
	p("| | calls | answered/s | p50 | p99 | max | all applied after | applied/s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	all := r.flatOut.ByKind["all"]
	p("| fulfillment server (`/produce`) | %d | %.0f | %s | %s | %s | %s | %.0f changing callbacks/s |\n",
		r.flatOut.Answers, r.flatOut.Rate(), ms(all.P50), ms(all.P99), ms(all.Max), seconds(r.flatOut.Applied), applied)
	p("| bare SignalWithStart (ceiling) | %d | %.0f | %s | %s | %s | %s | %.0f signals/s |\n\n",
		r.ceiling.Signals, r.ceiling.SentRate(), ms(r.ceiling.Latency.P50), ms(r.ceiling.Latency.P99), ms(r.ceiling.Latency.Max),
		seconds(r.ceiling.Applied), r.ceiling.AppliedRate())
	p("Result codes: %s. %s Ceiling errors: %d.\n\n", codes(r.flatOut.Codes), appliedSentence(r.flatOut), r.ceiling.Errors)
	p("Per callback type, flat out:\n\n")
	latencyTable(p, r.flatOut.Summary)
}

// writeCPU writes what each part of the stack spent on the median round's
// runs, and how long a life's history is.
func (r *report) writeCPU(p func(string, ...any)) {
	cfg := r.cfg
	applied, signals := float64(cfg.Mix*loadgen.Changes), float64(r.ceiling.Signals)
	p("### CPU per applied callback (flat-out run)\n\n")
	p("In the round with the median ratio, where the server applied its changing callbacks at %.0f %% of the rate of the "+
		"ceiling's bare signals on the same Temporal server, each part of the stack spent this much processor time (user "+
		"plus system, read from /proc before and after each run; a process's figure includes every process under it). "+
		"The flat-out run's is divided among its %d changing callbacks (%d a life; the lives' queryInstance calls and "+
		"redeliveries cost CPU too but are not counted), and includes the wait for every life to be applied and the "+
		"check of every timeline; the ceiling's is divided among its %d bare signals.\n\n",
		r.ratioOf(r.flatOut, r.ceiling)*100, cfg.Mix*loadgen.Changes, loadgen.Changes, r.ceiling.Signals)
	postgres := "PostgreSQL (the whole server: postmaster and every process under it)"
	if r.postgresAll {
		postgres = "PostgreSQL (every process named `postgres`: the postmaster is not among this machine's processes)"
	}
	if cfg.Temporal == "postgres" {
		postgres += ", the Temporal server's databases included"
	}
	p("| process | flat out: CPU | ms per applied callback | ceiling: CPU | ms per bare signal |\n|---|---:|---:|---:|---:|\n")
	row := func(name string, flat, ceiling time.Duration) {
		p("| %s | %s | %s | %s | %s |\n", name, cpuSeconds(flat), perCall(flat, applied), cpuSeconds(ceiling), perCall(ceiling, signals))
	}
	row("fulfillment server (`fulfillment serve`)", r.flatOutCPU.Server, r.ceilingCPU.Server)
	row(postgres, r.flatOutCPU.Postgres, r.ceilingCPU.Postgres)
	row("of which the connections to the benchmark's databases", r.flatOutCPU.PostgresOwn, r.ceilingCPU.PostgresOwn)
	row("Temporal ("+map[string]string{"dev": "the dev server", "postgres": "the server"}[cfg.Temporal]+")",
		r.flatOutCPU.Temporal, r.ceilingCPU.Temporal)
	p("| **total** | %s | %s | %s | %s |\n\n", cpuSeconds(r.flatOutCPU.total()), perCall(r.flatOutCPU.total(), applied),
		cpuSeconds(r.ceilingCPU.total()), perCall(r.ceilingCPU.total(), signals))
	p("The total counts PostgreSQL once, as the whole server. On a shared machine the whole server's figure also holds " +
		"whatever else it served meanwhile, while the connections to the benchmark's databases leave out its own " +
		"processes (WAL writer, checkpointer, autovacuum): the benchmark's share of PostgreSQL lies between the two. " +
		"The load generator's own CPU, and that of the ceiling's worker (which runs in it), are not counted.\n\n")
	if len(r.lifeEvents) > 0 {
		ev := slices.Sorted(slices.Values(r.lifeEvents))
		p("**History events per life:** median %d (max %d) over %d lives of that flat-out run: every event of the instance "+
			"workflow (`instance/<instanceId>`, all its runs), none of the workflows it starts. A life is newInstance, "+
			"queryInstance, refreshInstance (RENEWAL), FREEZE, UNFREEZE, queryInstance, releaseInstance: 7 callbacks, the "+
			"%d that change the instance each sent a second time at %.0f %%.\n\n",
			ev[(len(ev)-1)/2], ev[len(ev)-1], len(ev), loadgen.Changes, cfg.Redeliver*100)
	}
}

// ratioOf is the ratio of a flat-out run and its ceiling.
func (r *report) ratioOf(flatOut loadgen.MixResult, ceiling loadgen.CeilingResult) float64 {
	return round{flatOut: flatOut, ceiling: ceiling}.ratio(r.cfg.Mix)
}

// perCall is CPU time in milliseconds per call.
func perCall(d time.Duration, calls float64) string {
	if calls <= 0 {
		return "–"
	}
	per := float64(d) / float64(time.Millisecond) / calls
	if per < 10 {
		return fmt.Sprintf("%.2f ms", per)
	}
	return fmt.Sprintf("%.1f ms", per)
}

func cpuSeconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// writeStorm writes the figures of the expiry storm.
func (r *report) writeStorm(p func(string, ...any)) {
	cfg, st := r.cfg, r.storm
	if r.idle != nil {
		p("### Expiry storm: %d instances expiring in the same minute, %d idle ones open\n\n", cfg.Storm, len(r.idle.IDs))
	} else {
		p("### Expiry storm: %d instances expiring in the same minute\n\n", cfg.Storm)
	}
	p("%d monthly purchases (newInstance from %d clients) whose orders all expire at the same minute; at that minute "+
		"the instance workflows' expiry timers fire together and KooGallery's FREEZE for every one of them arrives, "+
		"evenly spread over 50 s.\n\n", cfg.Storm, cfg.Concurrency)
	if r.idle != nil {
		p("Before it, %d other purchases were bought (all active after %s, newInstance answered at %.0f/s) and stayed open "+
			"and idle through it: their workflows wait on timers a month away, as a merchant's other customers' do.\n\n",
			len(r.idle.IDs), seconds(r.idle.AllActive), r.idle.Create.Rate())
	}
	fr := st.Freeze.ByKind["FREEZE"]
	p("| step | figure |\n|---|---|\n")
	p("| buying: all %d active after | %s (%d newInstance answered at %.0f/s, p99 %s) |\n", cfg.Storm, seconds(st.AllActive),
		st.Create.Answers, st.Create.Rate(), ms(st.Create.ByKind["newInstance"].P99))
	p("| FREEZE answers | %d: %s |\n", fr.Count, codes(st.Freeze.Codes))
	p("| FREEZE answer p50 / p99 / max | %s / %s / %s |\n", ms(fr.P50), ms(fr.P99), ms(fr.Max))
	p("| FREEZE answered over 1 s | %d (target 0) |\n", fr.OverOneSecond)
	p("| all tenants frozen after the first FREEZE | %s (%d frozen; target ≤ 5 min) |\n\n", seconds(st.AllFrozen), st.Frozen)
	if r.stormErr != nil {
		p("The storm did not finish: %v.\n\n", r.stormErr)
	}
}

func latencyTable(p func(string, ...any), s loadgen.Summary) {
	p("| callback | answers | p50 | p99 | max | over 50 ms |\n|---|---:|---:|---:|---:|---:|\n")
	for _, k := range kinds {
		l, ok := s.ByKind[k]
		if !ok {
			continue
		}
		name := "`" + k + "`"
		if k == "all" {
			name = "**all**"
		}
		p("| %s | %d | %s | %s | %s | %d |\n", name, l.Count, ms(l.P50), ms(l.P99), ms(l.Max), l.OverFiftyMilli)
	}
	p("\n")
}

// codes lists the answers by result code, most frequent first.
func codes(c map[string]int) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return c[b] - c[a] })
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("`%s` × %d", k, c[k])
	}
	return strings.Join(out, ", ")
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func seconds(d time.Duration) string {
	if d <= 0 {
		return "not within the patience"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// appliedSentence says whether every life was applied and what the check
// of the timelines found.
func appliedSentence(r loadgen.MixResult) string {
	if r.Applied <= 0 {
		return fmt.Sprintf("%d instances were not yet released when the benchmark stopped waiting, so the timelines were not checked.", r.Unfinished)
	}
	return fmt.Sprintf("All applied %s after the first call; %d instances' timelines checked: %d callbacks lost, %d applied twice.",
		seconds(r.Applied), r.Checked, r.Lost, r.Duplicated)
}
