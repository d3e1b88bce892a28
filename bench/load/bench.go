package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/bench/loadgen"
)

// report holds every measurement of a run.
type report struct {
	cfg       config
	date      time.Time
	machine   benchenv.Machine
	temporal  string
	sustained loadgen.MixResult
	// sustainedInstances is how many lives the latency run played.
	sustainedInstances int
	// rounds are the flat-out runs, each with the ceiling measured after
	// it; flatOut and ceiling are the round with the median ratio.
	rounds  []round
	flatOut loadgen.MixResult
	ceiling loadgen.CeilingResult
	// flatOutCPU, ceilingCPU and lifeEvents are the median round's.
	flatOutCPU, ceilingCPU cpuUse
	lifeEvents             []int
	// postgresAll is set when the postmaster was not found, and the
	// PostgreSQL figures count every process named "postgres".
	postgresAll bool
	storm       *loadgen.StormResult
	stormErr    error
	idle        *loadgen.Bought
}

// round is one flat-out run and the ceiling measured right after it.
type round struct {
	flatOut loadgen.MixResult
	ceiling loadgen.CeilingResult
	// flatOutCPU and ceilingCPU are what each part of the stack spent on
	// the two runs; lifeEvents the history lengths of a sample of the
	// flat-out run's lives.
	flatOutCPU, ceilingCPU cpuUse
	lifeEvents             []int
}

// ratio is the changing callbacks applied a second over the ceiling's
// signals applied a second (0 when either did not finish).
func (r round) ratio(instances int) float64 {
	if r.ceiling.AppliedRate() <= 0 {
		return 0
	}
	return r.flatOut.AppliedRate(instances) / r.ceiling.AppliedRate()
}

// callbacksPerLife is what one life of a Mix sends on average: seven
// callbacks, and the redelivered ones among the five that change things.
func callbacksPerLife(redeliver float64) float64 { return 7 + loadgen.Changes*redeliver }

// benchmark brings the stack up and measures.
func benchmark(ctx context.Context, cfg config, progress io.Writer) (*report, error) {
	pg, err := benchenv.OpenCluster(ctx, cfg.DatabaseURL, "benchload")
	if err != nil {
		return nil, err
	}
	defer pg.Close()
	rep := &report{cfg: cfg, date: time.Now().UTC()}
	if rep.machine, err = benchenv.DescribeMachine(ctx, pg, ""); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "benchload-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	orders := loadgen.NewOrders()
	s, err := startStack(ctx, cfg, pg, orders, work)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	rep.temporal = s.temporalVersion
	say := timestamped(progress)

	if err := rep.measureLatency(ctx, s.target, say); err != nil {
		return nil, err
	}
	probe := cpuProbe{serverPID: s.serverPID, temporalPID: s.temporalPID, databases: pg.Prefix()}
	if probe.postgresPID, err = postmasterPID(ctx, pg); err != nil {
		return nil, err
	}
	rep.postgresAll = probe.postgresPID == 0
	if err := rep.measureRounds(ctx, s, probe, say); err != nil {
		return nil, err
	}
	if cfg.Storm > 0 && cfg.StormIdle > 0 {
		if err := rep.buyIdle(ctx, s.target, say); err != nil {
			return nil, err
		}
	}
	if cfg.Storm > 0 {
		rep.measureStorm(ctx, s.target, orders, say)
	}
	rep.machine.LoadAfter = benchenv.LoadAverage()
	return rep, nil
}

// sayFunc reports what the benchmark is doing, a line at a time.
type sayFunc func(format string, args ...any)

// timestamped writes each line to w after the time of day.
func timestamped(w io.Writer) sayFunc {
	return func(format string, args ...any) {
		fmt.Fprintf(w, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
}

// measureLatency plays at cfg.SustainedRate callbacks a second for
// cfg.SustainedFor as many lives as that rate takes.
func (r *report) measureLatency(ctx context.Context, target loadgen.Target, say sayFunc) error {
	cfg := r.cfg
	r.sustainedInstances = int(cfg.SustainedRate * cfg.SustainedFor.Seconds() / callbacksPerLife(cfg.Redeliver))
	say("latency run: %d lives at %.0f callbacks/s", r.sustainedInstances, cfg.SustainedRate)
	var err error
	r.sustained, err = loadgen.RunMix(ctx, target, loadgen.Mix{
		Instances: r.sustainedInstances, Concurrency: 256, Rate: cfg.SustainedRate, Redeliver: cfg.Redeliver,
		OrderPrefix: "SUSTAINED", Patience: cfg.Patience,
	})
	if err != nil {
		return fmt.Errorf("latency run: %w", err)
	}
	say("  %s", describeMix(r.sustained))
	return nil
}

// measureRounds measures the flat-out run against the ceiling.
//
// The ratio compares two rates measured a few seconds apart on a shared
// machine, so it is measured in rounds, each a flat-out run followed by the
// ceiling, and the round with the median ratio is the one reported in
// detail. Each run is bracketed by readings of the CPU time of the server,
// Postgres and Temporal (the flat-out run's includes its wait for every
// life to be applied and the check of every timeline, a read of each
// instance); after the flat-out run, a sample of its lives' instance
// workflows have their history counted.
func (r *report) measureRounds(ctx context.Context, s *stack, probe cpuProbe, say sayFunc) error {
	cfg := r.cfg
	for i := range cfg.Rounds {
		say("round %d of %d, flat-out run: %d lives, %d clients", i+1, cfg.Rounds, cfg.Mix, cfg.Concurrency)
		var rd round
		var err error
		rd.flatOutCPU, err = probe.measure(func() (err error) {
			rd.flatOut, err = loadgen.RunMix(ctx, s.target, loadgen.Mix{
				Instances: cfg.Mix, Concurrency: cfg.Concurrency, Redeliver: cfg.Redeliver,
				OrderPrefix: fmt.Sprintf("FLATOUT%d", i+1), Patience: cfg.Patience,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("flat-out run: %w", err)
		}
		say("  %s", describeMix(rd.flatOut))
		applied := float64(cfg.Mix * loadgen.Changes)
		say("  CPU per changing callback applied: server %s, PostgreSQL %s, Temporal %s", perCall(rd.flatOutCPU.Server, applied),
			perCall(rd.flatOutCPU.Postgres, applied), perCall(rd.flatOutCPU.Temporal, applied))
		if rd.lifeEvents, err = lifeEvents(ctx, s.temporal, rd.flatOut.InstanceIDs); err != nil {
			return fmt.Errorf("flat-out run: %w", err)
		}

		say("round %d of %d, ceiling: %d bare SignalWithStart calls, %d clients", i+1, cfg.Rounds, cfg.Mix*loadgen.Changes, cfg.Concurrency)
		rd.ceilingCPU, err = probe.measure(func() (err error) {
			rd.ceiling, err = loadgen.RunCeiling(ctx, s.temporal, loadgen.Ceiling{
				Instances: cfg.Mix, Concurrency: cfg.Concurrency, TaskQueue: "loadgen-ceiling", Patience: cfg.Patience,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("ceiling: %w", err)
		}
		say("  sent %.0f/s, applied %.0f/s, %d errors; ratio %.0f %%; Temporal CPU per signal %s", rd.ceiling.SentRate(),
			rd.ceiling.AppliedRate(), rd.ceiling.Errors, rd.ratio(cfg.Mix)*100, perCall(rd.ceilingCPU.Temporal, float64(rd.ceiling.Signals)))
		r.rounds = append(r.rounds, rd)
	}
	median := slices.Clone(r.rounds)
	slices.SortFunc(median, func(a, b round) int { return cmp.Compare(a.ratio(cfg.Mix), b.ratio(cfg.Mix)) })
	m := median[len(median)/2]
	r.flatOut, r.ceiling = m.flatOut, m.ceiling
	r.flatOutCPU, r.ceilingCPU, r.lifeEvents = m.flatOutCPU, m.ceilingCPU, m.lifeEvents
	return nil
}

// buyIdle buys the purchases that stay open, untouched, through the storm.
func (r *report) buyIdle(ctx context.Context, target loadgen.Target, say sayFunc) error {
	cfg := r.cfg
	say("idle: buying %d purchases that stay open through the storm", cfg.StormIdle)
	idle, err := loadgen.Buy(ctx, target, loadgen.Purchase{
		Instances: cfg.StormIdle, Concurrency: cfg.Concurrency, OrderPrefix: "IDLE", Patience: cfg.StormPatience,
	})
	if err != nil {
		return fmt.Errorf("idle purchases: %w", err)
	}
	r.idle = &idle
	say("  all %d active after %s", cfg.StormIdle, idle.AllActive.Round(time.Second))
	return nil
}

// measureStorm runs the expiry storm. A storm that does not finish is a
// figure of the report, not an error of the benchmark.
func (r *report) measureStorm(ctx context.Context, target loadgen.Target, orders *loadgen.Orders, say sayFunc) {
	cfg := r.cfg
	expireAt := time.Now().Add(cfg.StormLead).Truncate(time.Second)
	orders.ExpireAt("STORM", expireAt)
	say("storm: %d instances expiring at %s", cfg.Storm, expireAt.Format(time.TimeOnly))
	st, err := loadgen.RunStorm(ctx, target, loadgen.Storm{
		Instances: cfg.Storm, Concurrency: cfg.Concurrency, OrderPrefix: "STORM", ExpireAt: expireAt,
		Spread: 50 * time.Second, Patience: cfg.StormPatience,
	})
	r.storm, r.stormErr = &st, err
	if err != nil {
		say("  storm: %v", err)
	} else {
		say("  all active after %s; FREEZE p99 %s max %s; all frozen after %s",
			st.AllActive.Round(time.Second), st.Freeze.ByKind["FREEZE"].P99, st.Freeze.ByKind["FREEZE"].Max, st.AllFrozen.Round(time.Second))
	}
}

func describeMix(r loadgen.MixResult) string {
	all := r.ByKind["all"]
	return fmt.Sprintf("%d answers at %.0f/s, p50 %s p99 %s max %s; codes %v; all applied after %s; %d checked, %d lost, %d duplicated",
		r.Answers, r.Rate(), all.P50, all.P99, all.Max, r.Codes, r.Applied.Round(time.Millisecond), r.Checked, r.Lost, r.Duplicated)
}
