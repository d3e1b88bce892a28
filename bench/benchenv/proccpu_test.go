// The benchmarks read /proc: they, and these tests, run on Linux only, and
// fail elsewhere rather than measure nothing.

package benchenv

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClockTicks(t *testing.T) {
	// USER_HZ is 100 on every Linux architecture Go runs on.
	require.Equal(t, int64(100), ClockTicks())
}

// TestProcsSelfCPUGrows burns CPU and reads its own process again: the
// figures move, by about what was burnt.
func TestProcsSelfCPUGrows(t *testing.T) {
	before, err := ReadProcs()
	require.NoError(t, err)
	self := os.Getpid()
	require.Contains(t, before, self)
	require.Equal(t, os.Getppid(), before[self].PPID)

	x := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		for i := range 1000 {
			x += i
		}
	}
	_ = x
	after, err := ReadProcs()
	require.NoError(t, err)
	// A shared machine may give the loop less than its 300 ms of wall
	// time, but not nothing.
	require.Greater(t, after.TreeCPU(self)-before.TreeCPU(self), 20*time.Millisecond)
}

// TestProcsTreeFindsChild spawns a process and finds it under this one.
func TestProcsTreeFindsChild(t *testing.T) {
	sleep := exec.Command("sleep", "30")
	require.NoError(t, sleep.Start())
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })

	procs, err := ReadProcs()
	require.NoError(t, err)
	child := sleep.Process.Pid
	require.Contains(t, procs.Tree(os.Getpid()), child)
	require.Contains(t, procs.Children(os.Getpid()), child)
	require.Equal(t, "sleep", procs[child].Comm)
	require.Equal(t, "sleep 30", Cmdline(child))
	require.Equal(t, []int{child}, procs.Tree(child))
	require.Nil(t, procs.Tree(-1), "a process that is not there has no tree")
	require.Positive(t, procs.CommCPU(procs[os.Getpid()].Comm), "this test's own name")
}

func TestParseStat(t *testing.T) {
	// comm may hold spaces and parentheses.
	line := "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 3 2 20 0 1 0 1 1 1\n"
	p, err := parseStat([]byte(line), 10*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, Proc{PID: 42, PPID: 7, Comm: "a (b) c", CPU: 3050 * time.Millisecond}, p)
	_, err = parseStat([]byte("42 (x) S 7"), 10*time.Millisecond)
	require.Error(t, err)
}
