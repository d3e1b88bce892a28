package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// cpuProbe reads the CPU time of the three parts of the stack from /proc:
// the server (the "fulfillment serve" process and anything under it),
// Temporal (the dev server or the server on Postgres, and anything under
// it) and PostgreSQL (the postmaster the benchmark's databases are on and
// every process under it, so whatever else that server serves meanwhile
// counts too). Reading before and after a run and subtracting says what
// each part spent on it, which a ratio of rates alone cannot: a server
// that is slow because it burns CPU and one that is slow because it waits
// look the same there.
type cpuProbe struct {
	serverPID, temporalPID int
	// postgresPID is the postmaster; 0 when it is not on this machine's
	// /proc (say, in a container of its own), and then every process
	// named "postgres" counts instead.
	postgresPID int
	// databases begins the names of the benchmark's databases, which
	// Postgres puts in each backend's process title: "postgres: 15/main:
	// postgres <database> 127.0.0.1(…) idle".
	databases string
}

// cpuUse is CPU time, user plus system, of each part of the stack.
type cpuUse struct {
	Server, Postgres, Temporal time.Duration
	// PostgresOwn is the part of Postgres that the connections to the
	// benchmark's databases spent, which on a shared Postgres server tells
	// this benchmark's load from another's. It leaves out the server's own
	// processes (WAL writer, checkpointer, autovacuum) and the connections
	// that closed between the readings.
	PostgresOwn time.Duration
}

func (u cpuUse) total() time.Duration { return u.Server + u.Postgres + u.Temporal }

func (u cpuUse) sub(v cpuUse) cpuUse {
	return cpuUse{Server: u.Server - v.Server, Postgres: u.Postgres - v.Postgres, Temporal: u.Temporal - v.Temporal,
		PostgresOwn: u.PostgresOwn - v.PostgresOwn}
}

// read reads the three parts' CPU time so far.
func (c cpuProbe) read() (cpuUse, error) {
	procs, err := benchenv.ReadProcs()
	if err != nil {
		return cpuUse{}, err
	}
	u := cpuUse{Server: procs.TreeCPU(c.serverPID), Temporal: procs.TreeCPU(c.temporalPID)}
	if c.postgresPID != 0 {
		u.Postgres = procs.TreeCPU(c.postgresPID)
	} else {
		u.Postgres = procs.CommCPU("postgres")
	}
	for _, p := range procs {
		if p.Comm == "postgres" && c.databases != "" && strings.Contains(benchenv.Cmdline(p.PID), " "+c.databases+"_") {
			u.PostgresOwn += p.CPU
		}
	}
	switch {
	case u.Server == 0 && len(procs.Tree(c.serverPID)) == 0:
		return cpuUse{}, fmt.Errorf("the server's process %d is gone", c.serverPID)
	case u.Temporal == 0 && len(procs.Tree(c.temporalPID)) == 0:
		return cpuUse{}, fmt.Errorf("the Temporal server's process %d is gone", c.temporalPID)
	}
	return u, nil
}

// measure is the CPU each part spent while run ran.
func (c cpuProbe) measure(run func() error) (cpuUse, error) {
	before, err := c.read()
	if err != nil {
		return cpuUse{}, fmt.Errorf("read CPU times: %w", err)
	}
	if err := run(); err != nil {
		return cpuUse{}, err
	}
	after, err := c.read()
	if err != nil {
		return cpuUse{}, fmt.Errorf("read CPU times: %w", err)
	}
	return after.sub(before), nil
}

// postmasterPID is the pid of the Postgres server the cluster is on: the
// parent of the backend serving this connection. It is 0 when that
// backend is not among this machine's processes.
func postmasterPID(ctx context.Context, pg *benchenv.Cluster) (int, error) {
	var backend int
	if err := pg.Admin().QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, fmt.Errorf("ask Postgres for its backend's pid: %w", err)
	}
	procs, err := benchenv.ReadProcs()
	if err != nil {
		return 0, err
	}
	b, ok := procs[backend]
	if !ok || b.Comm != "postgres" || procs[b.PPID].Comm != "postgres" {
		return 0, nil
	}
	return b.PPID, nil
}

// devServerPID finds the dev server the SDK started for this process: a
// child running "server start-dev" on the frontend's port. (The SDK keeps
// its process to itself.)
func devServerPID(hostPort string) (int, error) {
	procs, err := benchenv.ReadProcs()
	if err != nil {
		return 0, err
	}
	port := hostPort[strings.LastIndexByte(hostPort, ':')+1:]
	for _, pid := range procs.Children(os.Getpid()) {
		args := strings.Fields(benchenv.Cmdline(pid))
		if slices.Contains(args, "start-dev") && slices.Contains(args, port) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child process runs the Temporal dev server on port %s", port)
}

// maxLivesSampled bounds the instance workflows whose history is read
// after a flat-out run.
const maxLivesSampled = 20

// lifeEvents reads the history length of up to maxLivesSampled of the
// lives' instance workflows, spread evenly over them: every event of every
// run of the instance's own workflow (runs continued as new included),
// none of the workflows it starts (metering, license codes).
func lifeEvents(ctx context.Context, tc client.Client, instanceIDs []string) ([]int, error) {
	var ids []string
	for _, id := range instanceIDs {
		if id != "" {
			ids = append(ids, id)
		}
	}
	step := max(1, len(ids)/maxLivesSampled)
	var events []int
	for i := 0; i < len(ids) && len(events) < maxLivesSampled; i += step {
		n, err := historyLength(ctx, tc, workflows.InstanceWorkflowID(ids[i]))
		if err != nil {
			return nil, err
		}
		events = append(events, n)
	}
	return events, nil
}

// historyLength counts the events of a workflow's latest run and of every
// run it continued from.
func historyLength(ctx context.Context, tc client.Client, workflowID string) (int, error) {
	total, runID := 0, ""
	for {
		iter := tc.GetWorkflowHistory(ctx, workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		previous := ""
		for iter.HasNext() {
			e, err := iter.Next()
			if err != nil {
				return 0, fmt.Errorf("read the history of %s: %w", workflowID, err)
			}
			if started := e.GetWorkflowExecutionStartedEventAttributes(); started != nil {
				previous = started.GetContinuedExecutionRunId()
			}
			total++
		}
		if previous == "" {
			return total, nil
		}
		runID = previous
	}
}
