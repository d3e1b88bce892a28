package benchenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Procs is one reading of every process's CPU time from /proc (Linux), so
// that the benchmarks can say how much processor each part of the stack —
// the server, Postgres, Temporal — spent on a run: read before, read
// after, subtract.
type Procs map[int]Proc

// Proc is one process's line of /proc/<pid>/stat.
type Proc struct {
	PID, PPID int
	// Comm is the executable's name as the kernel keeps it (15 bytes at
	// most): "postgres" for every process of a Postgres server.
	Comm string
	// CPU is user plus system time, the process's own (utime, stime) and
	// that of its children it has waited for (cutime, cstime): a
	// Postgres backend that exits between two readings moves its time into
	// the postmaster's, rather than out of the sum.
	CPU time.Duration
}

// ReadProcs reads /proc/*/stat. Processes that end while it reads are
// skipped.
func ReadProcs() (Procs, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc (CPU times are read on Linux only): %w", err)
	}
	tick := time.Second / time.Duration(ClockTicks())
	procs := Procs{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		p, err := parseStat(raw, tick)
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		procs[pid] = p
	}
	return procs, nil
}

// parseStat reads pid, comm, ppid and the four times (fields 14 to 17, in
// clock ticks) of a /proc/<pid>/stat line. comm is in parentheses and may
// itself hold spaces and parentheses, so the fields after it are counted
// from the last ')'.
func parseStat(raw []byte, tick time.Duration) (Proc, error) {
	open, closing := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || closing < open {
		return Proc{}, fmt.Errorf("no (comm) in %q", raw)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw[:open])))
	if err != nil {
		return Proc{}, fmt.Errorf("pid: %w", err)
	}
	// rest[0] is field 3 (state), so field n is rest[n-3].
	rest := strings.Fields(string(raw[closing+1:]))
	if len(rest) < 15 {
		return Proc{}, fmt.Errorf("%d fields after comm, want at least 15", len(rest))
	}
	p := Proc{PID: pid, Comm: string(raw[open+1 : closing])}
	if p.PPID, err = strconv.Atoi(rest[4-3]); err != nil {
		return Proc{}, fmt.Errorf("ppid: %w", err)
	}
	for field := 14; field <= 17; field++ {
		ticks, err := strconv.ParseInt(rest[field-3], 10, 64)
		if err != nil {
			return Proc{}, fmt.Errorf("field %d: %w", field, err)
		}
		p.CPU += time.Duration(ticks) * tick
	}
	return p, nil
}

// Tree is root and every process under it, by parent pid; empty when root
// is gone.
func (ps Procs) Tree(root int) []int {
	if _, ok := ps[root]; !ok {
		return nil
	}
	children := map[int][]int{}
	for pid, p := range ps {
		children[p.PPID] = append(children[p.PPID], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// TreeCPU is the CPU time of root and every process under it, including
// what the ones that ended had spent (when a process of the tree waited
// for them, as a postmaster does for its backends).
func (ps Procs) TreeCPU(root int) time.Duration {
	var sum time.Duration
	for _, pid := range ps.Tree(root) {
		sum += ps[pid].CPU
	}
	return sum
}

// CommCPU is the CPU time of every process named comm, and of the ones
// they waited for.
func (ps Procs) CommCPU(comm string) time.Duration {
	var sum time.Duration
	for _, p := range ps {
		if p.Comm == comm {
			sum += p.CPU
		}
	}
	return sum
}

// Children are the processes whose parent is pid.
func (ps Procs) Children(pid int) []int {
	var out []int
	for child, p := range ps {
		if p.PPID == pid {
			out = append(out, child)
		}
	}
	return out
}

// ClockTicks is the unit of /proc's CPU times a second (USER_HZ). Without
// cgo there is no sysconf, but the kernel hands every process the value in
// its auxiliary vector (AT_CLKTCK); when that cannot be read it is 100,
// which USER_HZ is on every Linux architecture Go runs on.
var ClockTicks = sync.OnceValue(func() int64 {
	const atClkTck = 17
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	// Pairs of native words: type, value; a type of 0 ends it.
	word := strconv.IntSize / 8
	read := func(b []byte) uint64 {
		if word == 4 {
			return uint64(binary.NativeEndian.Uint32(b))
		}
		return binary.NativeEndian.Uint64(b)
	}
	for i := 0; i+2*word <= len(auxv); i += 2 * word {
		switch typ := read(auxv[i:]); typ {
		case 0:
			return 100
		case atClkTck:
			if hz := int64(read(auxv[i+word:])); hz > 0 {
				return hz
			}
			return 100
		}
	}
	return 100
})

// Cmdline is a process's command line, its arguments joined by spaces
// ("" when it is gone or a kernel thread).
func Cmdline(pid int) string {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(bytes.ReplaceAll(raw, []byte{0}, []byte{' '})))
}
