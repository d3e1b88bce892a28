package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
)

// RepoRoot is the repository's root directory, found from the working
// directory of the test (a package directory inside the repository).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testenv: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// TemporalCLI is the path of the Temporal CLI: $TEMPORAL_CLI, or bin/temporal
// in the repository (make bin/temporal installs it).
func TemporalCLI(t testing.TB) string {
	t.Helper()
	path := os.Getenv("TEMPORAL_CLI")
	if path == "" {
		path = filepath.Join(RepoRoot(t), "bin", "temporal")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("testenv: the Temporal CLI is not at %s (%v).\n"+
			"Install it with: make bin/temporal\n"+
			"(GOBIN=$PWD/bin go install github.com/temporalio/cli/cmd/temporal@v1.5.1), or set TEMPORAL_CLI.", path, err)
	}
	return path
}

// FreePort returns a TCP port that was free a moment ago, and that the
// kernel will not hand out again for a while. Tests run side by side, and
// the Temporal dev servers they start pick their internal ports by binding
// port 0: a port merely closed could go to one of those before the process
// it was chosen for binds it. So the port is left in TIME_WAIT, closed by
// its listening side (as the Temporal CLI does for its own ports): the
// kernel does not reallocate such a port for port 0 for a minute, while an
// explicit bind still succeeds (Go sets SO_REUSEADDR).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr)
	client, err := net.DialTCP("tcp", nil, addr)
	if err != nil {
		t.Fatalf("testenv: reserve port %d: %v", addr.Port, err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatalf("testenv: reserve port %d: %v", addr.Port, err)
	}
	// The listening side closes first: it is the side left in TIME_WAIT.
	server.Close()
	return addr.Port
}

// Temporal is a Temporal CLI dev server run by a test, persisted to a
// SQLite file so that it can be stopped and started again with its state.
type Temporal struct {
	t       testing.TB
	cli     string
	port    int
	dbFile  string
	logFile string
	cmd     *exec.Cmd
}

// StartTemporal starts a dev server on free ports and stops it when the
// test ends.
func StartTemporal(t testing.TB) *Temporal {
	t.Helper()
	dir := t.TempDir()
	d := &Temporal{
		t:       t,
		cli:     TemporalCLI(t),
		port:    FreePort(t),
		dbFile:  filepath.Join(dir, "temporal.db"),
		logFile: filepath.Join(dir, "temporal.log"),
	}
	d.Start()
	t.Cleanup(d.Stop)
	return d
}

// Address is the frontend's host:port.
func (d *Temporal) Address() string { return "127.0.0.1:" + strconv.Itoa(d.port) }

// Start starts the server (again) and waits until it answers.
func (d *Temporal) Start() {
	d.t.Helper()
	if d.cmd != nil {
		return
	}
	logf, err := os.OpenFile(d.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatalf("testenv: open Temporal log: %v", err)
	}
	cmd := exec.Command(d.cli, "server", "start-dev", "--headless",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(d.port),
		"--db-filename", d.dbFile, "--log-level", "warn",
		// Nothing else may take the HTTP and metrics ports it would choose.
		"--http-port", strconv.Itoa(FreePort(d.t)), "--metrics-port", strconv.Itoa(FreePort(d.t)))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("testenv: start Temporal dev server: %v", err)
	}
	logf.Close()
	d.cmd = cmd
	if err := waitForTemporal(d.Address(), 60*time.Second); err != nil {
		log, _ := os.ReadFile(d.logFile)
		d.Stop()
		d.t.Fatalf("testenv: Temporal dev server did not come up on %s: %v\n%s", d.Address(), err, log)
	}
}

// Stop stops the server and waits for it to exit.
func (d *Temporal) Stop() {
	if d.cmd == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	d.cmd = nil
}

// Client returns a client of the server's default namespace, closed when
// the test ends.
func (d *Temporal) Client(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: d.Address(), Logger: quietLogger{}})
	if err != nil {
		t.Fatalf("testenv: dial Temporal at %s: %v", d.Address(), err)
	}
	t.Cleanup(c.Close)
	return c
}

func waitForTemporal(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: quietLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("gave up after %s: %w", limit, lastErr)
}

// quietLogger drops the SDK's own logs in tests.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
