package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/bench/loadgen"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// The server's secrets for the run; nothing real.
const (
	accessKey  = "bench-access-key"
	adminToken = "bench-admin-token"
	openAPIAK  = "bench-ak"
	openAPISK  = "bench-sk"
)

// stack is a running fulfillment server with its Temporal server and mock
// open API; stop ends what it started.
type stack struct {
	target   loadgen.Target
	temporal client.Client
	// temporalVersion describes the Temporal server for the report.
	temporalVersion string
	// serverPID and temporalPID are the processes whose CPU time the
	// report gives (with whatever runs under them).
	serverPID, temporalPID int
	stops                  []func()
}

func (s *stack) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// startStack builds the server, gives it a database, a Temporal server and
// the mock open API, and starts "fulfillment serve".
func startStack(ctx context.Context, cfg config, pg *benchenv.Cluster, orders *loadgen.Orders, work string) (_ *stack, err error) {
	s := &stack{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	binary := filepath.Join(work, "fulfillment")
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, "github.com/fulfillment-server/fulfillment/cmd/fulfillment")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build the server: %w", err)
	}
	db, err := pg.Create(ctx, "")
	if err != nil {
		return nil, err
	}

	var ts *temporalServer
	switch cfg.Temporal {
	case "dev":
		ts, err = startDevTemporal(ctx, cfg.TemporalCLI)
	case "postgres":
		ts, err = startPostgresTemporal(ctx, cfg, pg, work)
	default:
		err = fmt.Errorf(`the Temporal server must be "dev" or "postgres", not %q`, cfg.Temporal)
	}
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, ts.stop)
	s.temporal, s.temporalVersion, s.temporalPID = ts.client, ts.version, ts.pid

	openAPI := httptest.NewServer(mockapi.New(mockapi.Config{AK: openAPIAK, SK: openAPISK, Orders: orders}))
	s.stops = append(s.stops, openAPI.Close)

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.target = loadgen.Target{URL: "http://127.0.0.1:" + strconv.Itoa(port), AccessKey: accessKey, AdminToken: adminToken}
	logFile, err := os.Create(filepath.Join(work, "server.log"))
	if err != nil {
		return nil, err
	}
	srv := exec.Command(binary, "serve")
	srv.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HTTP_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"DATABASE_URL=" + pg.URL(db),
		"TEMPORAL_ADDRESS=" + ts.address,
		"KOOGALLERY_ACCESS_KEY=" + accessKey,
		"FULFILLMENT_ADMIN_TOKEN=" + adminToken,
		"KOOGALLERY_API_URL=" + openAPI.URL,
		"KOOGALLERY_AK=" + openAPIAK,
		"KOOGALLERY_SK=" + openAPISK,
		"LOG_LEVEL=warn",
	}
	stop, err := startProcess(srv, logFile)
	if err != nil {
		return nil, fmt.Errorf("start the server: %w", err)
	}
	s.stops = append(s.stops, stop)
	s.serverPID = srv.Process.Pid
	if err := waitReady(ctx, s.target.URL+"/readyz", time.Minute); err != nil {
		return nil, fmt.Errorf("the server did not become ready (its log is %s): %w", logFile.Name(), err)
	}
	return s, nil
}

// startDevTemporal runs the Temporal CLI's dev server, its own log quiet
// but for errors.
func startDevTemporal(ctx context.Context, cli string) (*temporalServer, error) {
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: cli, ClientOptions: &client.Options{Logger: quiet}, LogLevel: "error",
		Stdout: io.Discard, Stderr: os.Stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("start the Temporal dev server: %w", err)
	}
	stop := func() { _ = srv.Stop() }
	out, err := exec.CommandContext(ctx, cli, "--version").Output()
	if err != nil {
		stop()
		return nil, fmt.Errorf("run %s --version: %w", cli, err)
	}
	pid, err := devServerPID(srv.FrontendHostPort())
	if err != nil {
		stop()
		return nil, err
	}
	return &temporalServer{
		client: srv.Client(), address: srv.FrontendHostPort(), stop: stop, pid: pid,
		version: "dev server `" + strings.TrimSpace(string(out)) + "` (SQLite in memory)",
	}, nil
}

// waitReady polls url until it answers 200.
func waitReady(ctx context.Context, url string, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePort asks the kernel for a port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startProcess starts cmd in a process group of its own with its output in
// logFile, and returns what stops it: SIGTERM to the group, SIGKILL if it
// is still there 30 s later, then the log closed.
func startProcess(cmd *exec.Cmd, logFile *os.File) (stop func(), err error) {
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logFile.Close()
	}, nil
}
