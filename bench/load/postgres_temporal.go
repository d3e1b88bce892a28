package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
)

// temporalServerModule is the Temporal server the benchmark builds and
// runs on Postgres (newer versions need a newer Go).
const temporalServerModule = "go.temporal.io/server@v1.29.1"

// temporalServer is a running Temporal server, the CLI's dev server or the
// server on Postgres; stop ends it.
type temporalServer struct {
	client  client.Client
	address string
	version string
	// pid is the server's process, whose CPU time the report gives.
	pid  int
	stop func()
}

// startPostgresTemporal runs the Temporal server with its persistence and
// visibility in two databases of the cluster: the schema set up by the
// server's SQL tool, the "default" namespace created with the CLI.
func startPostgresTemporal(ctx context.Context, cfg config, pg *benchenv.Cluster, work string) (_ *temporalServer, err error) {
	for _, bin := range []string{cfg.TemporalServer, cfg.TemporalSQL, cfg.TemporalCLI} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s is missing: make bench-postgres builds it (%w)", bin, err)
		}
	}
	ep, err := parsePostgresEndpoint(pg.URL("x"))
	if err != nil {
		return nil, err
	}
	dbs, err := createTemporalDatabases(ctx, cfg.TemporalSQL, pg, ep)
	if err != nil {
		return nil, err
	}
	ports, err := serverPorts()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(work, "temporal")
	if err := writeServerConfig(root, ep, dbs, ports); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(work, "temporal.log"))
	if err != nil {
		return nil, err
	}
	srv := exec.Command(cfg.TemporalServer, "--root", root, "--config", "config", "--env", "development", "--allow-no-auth", "start")
	stopServer, err := startProcess(srv, logFile)
	if err != nil {
		return nil, fmt.Errorf("start the Temporal server: %w", err)
	}
	ts := &temporalServer{address: fmt.Sprintf("127.0.0.1:%d", ports["frontend"]), pid: srv.Process.Pid}
	ts.stop = func() {
		if ts.client != nil {
			ts.client.Close()
		}
		stopServer()
	}
	defer func() {
		if err != nil {
			ts.stop()
		}
	}()
	// One deadline for both waits: the namespace created, then usable.
	deadline := time.Now().Add(2 * time.Minute)
	if err := createNamespace(ctx, cfg.TemporalCLI, ts.address, deadline, logFile.Name()); err != nil {
		return nil, err
	}
	if ts.client, err = client.DialContext(ctx, client.Options{HostPort: ts.address}); err != nil {
		return nil, fmt.Errorf("connect to the Temporal server: %w", err)
	}
	if err := waitNamespaceUsable(ctx, ts.client, deadline); err != nil {
		return nil, err
	}
	ts.version = "server " + strings.TrimPrefix(temporalServerModule[strings.Index(temporalServerModule, "@")+1:], "v") +
		" (`" + temporalServerModule + "`, 4 history shards) on the same PostgreSQL"
	return ts, nil
}

// postgresEndpoint is where and as whom the Temporal server reaches
// PostgreSQL.
type postgresEndpoint struct {
	host, port, user, password string
}

// parsePostgresEndpoint reads the endpoint from a connection URL, with
// PostgreSQL's default port when it names none.
func parsePostgresEndpoint(rawURL string) (postgresEndpoint, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return postgresEndpoint{}, err
	}
	ep := postgresEndpoint{host: u.Hostname(), port: u.Port(), user: u.User.Username()}
	if ep.port == "" {
		ep.port = "5432"
	}
	if p, ok := u.User.Password(); ok {
		ep.password = p
	}
	return ep, nil
}

// createTemporalDatabases creates the server's two databases, "temporal"
// (persistence) and "visibility", with the schema of the server module set
// up by the SQL tool, and returns their names by store.
func createTemporalDatabases(ctx context.Context, sqlTool string, pg *benchenv.Cluster, ep postgresEndpoint) (map[string]string, error) {
	schemaDir, err := temporalSchemaDir(ctx)
	if err != nil {
		return nil, err
	}
	dbs := map[string]string{}
	for _, store := range []string{"temporal", "visibility"} {
		name, err := pg.Create(ctx, "")
		if err != nil {
			return nil, err
		}
		dbs[store] = name
		tool := func(args ...string) error {
			cmd := exec.CommandContext(ctx, sqlTool, append([]string{"--plugin", "postgres12", "--ep", ep.host, "--port", ep.port,
				"--user", ep.user, "--password", ep.password, "--db", name}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("temporal-sql-tool %s: %w\n%s", args[0], err, out)
			}
			return nil
		}
		if err := tool("setup-schema", "-v", "0.0"); err != nil {
			return nil, err
		}
		if err := tool("update-schema", "-d", filepath.Join(schemaDir, store, "versioned")); err != nil {
			return nil, err
		}
	}
	return dbs, nil
}

// serverPorts picks a free port for each of the server's listeners.
func serverPorts() (map[string]int, error) {
	ports := map[string]int{}
	for _, name := range []string{"frontend", "frontendHTTP", "frontendMembership", "history", "historyMembership",
		"matching", "matchingMembership", "worker", "workerMembership"} {
		port, err := freeLowPort(ports)
		if err != nil {
			return nil, err
		}
		ports[name] = port
	}
	return ports, nil
}

// writeServerConfig writes the server's configuration and its dynamic
// configuration under root.
func writeServerConfig(root string, ep postgresEndpoint, dbs map[string]string, ports map[string]int) error {
	if err := os.MkdirAll(filepath.Join(root, "config"), 0o755); err != nil {
		return err
	}
	var conf strings.Builder
	if err := serverConfig.Execute(&conf, map[string]any{
		"Host": ep.host, "Port": ep.port, "User": ep.user, "Password": ep.password,
		"Persistence": dbs["temporal"], "Visibility": dbs["visibility"], "Ports": ports,
		"DynamicConfig": filepath.Join(root, "dynamicconfig.yaml"),
	}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "config", "development.yaml"), []byte(conf.String()), 0o644); err != nil {
		return err
	}
	// As the dev server does: search attributes registered by the worker
	// are usable at once rather than after the cache's next refresh.
	return os.WriteFile(filepath.Join(root, "dynamicconfig.yaml"),
		[]byte("system.forceSearchAttributesCacheRefreshOnRead:\n  - value: true\n"), 0o644)
}

// createNamespace creates the "default" namespace with the CLI once the
// frontend at address answers, trying until deadline; the error ends with
// the tail of the server's log.
func createNamespace(ctx context.Context, cli, address string, deadline time.Time, logPath string) error {
	for {
		out, err := exec.CommandContext(ctx, cli, "operator", "namespace", "create",
			"--namespace", "default", "--retention", "24h", "--address", address).CombinedOutput()
		if err == nil || strings.Contains(string(out), "already") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create the namespace: %w\n%s\nthe server's log ends:\n%s", err, out, tail(logPath))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// waitNamespaceUsable waits until a call that needs the namespace succeeds:
// it reaches every service within seconds of its creation.
func waitNamespaceUsable(ctx context.Context, c client.Client, deadline time.Time) error {
	for {
		_, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the namespace did not become usable: %w", err)
		}
		time.Sleep(time.Second)
	}
}

// temporalSchemaDir is the server module's Postgres schema directory,
// downloaded through the module proxy when it is not in the module cache.
func temporalSchemaDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", temporalServerModule).Output()
	if err != nil {
		return "", fmt.Errorf("download %s: %w", temporalServerModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", errors.New("go mod download did not name the module's directory")
	}
	return filepath.Join(mod.Dir, "schema", "postgresql", "v12"), nil
}

// serverConfig is the server's configuration: the development config of
// the server's repository for Postgres 12, on ports of its own, without
// archival, pprof or a metrics listener.
var serverConfig = template.Must(template.New("config").Parse(`log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: "postgres12"
        databaseName: "{{.Persistence}}"
        connectAddr: "{{.Host}}:{{.Port}}"
        connectProtocol: "tcp"
        user: "{{.User}}"
        password: "{{.Password}}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: "1h"
    postgres-visibility:
      sql:
        pluginName: "postgres12"
        databaseName: "{{.Visibility}}"
        connectAddr: "{{.Host}}:{{.Port}}"
        connectProtocol: "tcp"
        user: "{{.User}}"
        password: "{{.Password}}"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: "1h"
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
services:
  frontend:
    rpc:
      grpcPort: {{.Ports.frontend}}
      membershipPort: {{.Ports.frontendMembership}}
      bindOnLocalHost: true
      httpPort: {{.Ports.frontendHTTP}}
  matching:
    rpc:
      grpcPort: {{.Ports.matching}}
      membershipPort: {{.Ports.matchingMembership}}
      bindOnLocalHost: true
  history:
    rpc:
      grpcPort: {{.Ports.history}}
      membershipPort: {{.Ports.historyMembership}}
      bindOnLocalHost: true
  worker:
    rpc:
      grpcPort: {{.Ports.worker}}
      membershipPort: {{.Ports.workerMembership}}
      bindOnLocalHost: true
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:{{.Ports.frontend}}"
dcRedirectionPolicy:
  policy: "noop"
dynamicConfigClient:
  filepath: "{{.DynamicConfig}}"
  pollInterval: "10s"
`))

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	return string(b[max(0, len(b)-3000):])
}

// freeLowPort finds a free port below 32768, not among taken: Temporal
// stores membership ports in a smallint column.
func freeLowPort(taken map[string]int) (int, error) {
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if slices.Contains(slices.Collect(maps.Values(taken)), port) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free port below 32768")
}
