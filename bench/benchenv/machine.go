package benchenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine describes what the figures were measured on.
type Machine struct {
	Cores int
	CPU   string
	// LoadBefore and LoadAfter are the load averages (1 minute) when the
	// benchmark began and ended: other work on the machine shows there.
	LoadBefore, LoadAfter string
	Postgres              string
	// Temporal is the version the Temporal CLI reports, when one is used.
	Temporal string
}

// DescribeMachine reads the CPU, the load, the Postgres settings that
// decide write speed and, when temporalCLI is set, the CLI's version.
func DescribeMachine(ctx context.Context, pg *Cluster, temporalCLI string) (Machine, error) {
	m := Machine{Cores: runtime.NumCPU(), CPU: "unknown CPU", LoadBefore: LoadAverage()}
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(info)) {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimLeft(name, " \t:"))
				break
			}
		}
	}
	if err := pg.admin.QueryRowContext(ctx, `SELECT format('%s (fsync %s, synchronous_commit %s, shared_buffers %s, autovacuum %s)',
		current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit'),
		current_setting('shared_buffers'), current_setting('autovacuum'))`).Scan(&m.Postgres); err != nil {
		return Machine{}, fmt.Errorf("describe Postgres: %w", err)
	}
	if temporalCLI != "" {
		out, err := exec.CommandContext(ctx, temporalCLI, "--version").Output()
		if err != nil {
			return Machine{}, fmt.Errorf("run %s --version: %w", temporalCLI, err)
		}
		m.Temporal = strings.TrimSpace(string(out))
	}
	return m, nil
}

// LoadAverage is the machine's load average over the last minute.
func LoadAverage() string {
	avg, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(avg))[0]
}
