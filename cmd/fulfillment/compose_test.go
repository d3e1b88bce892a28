package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
)

// No Docker engine runs where these tests run, so docker-compose.yml is
// checked with the parser docker compose itself uses (schema validation,
// normalisation, consistency of depends_on and volumes) and against what
// this binary reads and dispatches on.

const (
	repoRoot    = "../.."
	composeFile = repoRoot + "/docker-compose.yml"
	runLocal    = repoRoot + "/scripts/run-local.sh"
	dockerfile  = repoRoot + "/Dockerfile"
)

// loadCompose loads docker-compose.yml with no variables from the
// environment: the file must not depend on the machine it is read on.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile}, cli.WithWorkingDirectory(repoRoot))
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "docker-compose.yml does not load with compose-go")
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	require.Truef(t, ok, "docker-compose.yml has no service %q (services: %v)", name, p.ServiceNames())
	return s
}

// serviceEnv is a service's environment as the container sees it.
func serviceEnv(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for name, v := range s.Environment {
		if v == nil {
			t.Errorf("service %s: %s has no value, so it would come from the host's environment; give it one", s.Name, name)
			continue
		}
		vars[name] = *v
	}
	return vars
}

// targetPort is the container port published on the host port published.
func targetPort(s types.ServiceConfig, published string) (uint32, bool) {
	for _, p := range s.Ports {
		if p.Published == published {
			return p.Target, true
		}
	}
	return 0, false
}

// addrPort is the port of a listen address such as ":8080".
func addrPort(t *testing.T, name, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoErrorf(t, err, "%s %q is not host:port", name, addr)
	return port
}

var composeServices = []string{"postgres", "temporal-schema", "temporal", "temporal-ui", "fulfillment", "emulator"}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	for _, name := range composeServices {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("docker-compose.yml has no service %q (services: %v)", name, p.ServiceNames())
		}
	}
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	for _, name := range []string{"fulfillment", "emulator"} {
		s := service(t, p, name)
		if s.Build == nil || filepath.Clean(s.Build.Context) != root {
			t.Errorf("service %s must be built from the repository's Dockerfile (build: .), got %+v", name, s.Build)
		}
		if len(s.Entrypoint) > 0 {
			t.Errorf("service %s overrides the image's entrypoint with %q; the image's is /fulfillment", name, s.Entrypoint)
		}
	}
}

func TestComposePorts(t *testing.T) {
	p := loadCompose(t)
	for _, c := range []struct {
		service   string
		published string
		target    uint32
	}{
		{"fulfillment", "8080", 8080},
		{"emulator", "8090", 8090},
		{"temporal", "7233", 7233},
		{"temporal-ui", "8233", 8080},
	} {
		s := service(t, p, c.service)
		target, ok := targetPort(s, c.published)
		if !ok {
			t.Errorf("service %s does not publish host port %s (ports: %+v)", c.service, c.published, s.Ports)
			continue
		}
		if target != c.target {
			t.Errorf("service %s publishes host port %s on container port %d, want %d", c.service, c.published, target, c.target)
		}
	}

	// The published ports are the ones the binary listens on.
	srv, err := loadConfig(env(serviceEnv(t, service(t, p, "fulfillment"))))
	require.NoError(t, err)
	emu, err := emulator.LoadConfig(env(serviceEnv(t, service(t, p, "emulator"))))
	require.NoError(t, err)
	if port := addrPort(t, "fulfillment's HTTP_ADDR", srv.HTTPAddr); port != "8080" {
		t.Errorf("fulfillment listens on port %s (HTTP_ADDR %q) but the published container port is 8080", port, srv.HTTPAddr)
	}
	if port := addrPort(t, "emulator's EMULATOR_ADDR", emu.Addr); port != "8090" {
		t.Errorf("the emulator listens on port %s (EMULATOR_ADDR %q) but the published container port is 8090", port, emu.Addr)
	}
}

func TestComposeEnvironmentIsKnownToTheBinary(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"fulfillment", "emulator"} {
		for v := range serviceEnv(t, service(t, p, name)) {
			if !slices.Contains(envNames(), v) {
				t.Errorf("service %s sets %s, which the binary does not read (fulfillment env lists them)", name, v)
			}
		}
	}
}

func TestComposeRequiredEnvironment(t *testing.T) {
	p := loadCompose(t)
	for name, required := range map[string][]string{
		"fulfillment": {"KOOGALLERY_ACCESS_KEY", "KOOGALLERY_AK", "KOOGALLERY_SK", "DATABASE_URL", "TEMPORAL_ADDRESS", "FULFILLMENT_ADMIN_TOKEN"},
		"emulator":    {"KOOGALLERY_ACCESS_KEY", "KOOGALLERY_AK", "KOOGALLERY_SK", "DATABASE_URL", "TEMPORAL_ADDRESS", "EMULATOR_PRODUCTION_URL"},
	} {
		vars := serviceEnv(t, service(t, p, name))
		for _, v := range required {
			if strings.TrimSpace(vars[v]) == "" {
				t.Errorf("service %s must set %s", name, v)
			}
		}
	}
}

func TestComposeSharedSecrets(t *testing.T) {
	p := loadCompose(t)
	srv := serviceEnv(t, service(t, p, "fulfillment"))
	emu := serviceEnv(t, service(t, p, "emulator"))
	for _, v := range []string{"KOOGALLERY_ACCESS_KEY", "KOOGALLERY_AK", "KOOGALLERY_SK"} {
		if srv[v] != emu[v] {
			t.Errorf("%s differs between fulfillment and the emulator: both sides of the marketplace share it", v)
		}
	}
	if emu["EMULATOR_MERCHANT_ADMIN_TOKEN"] != srv["FULFILLMENT_ADMIN_TOKEN"] {
		t.Errorf("the emulator's EMULATOR_MERCHANT_ADMIN_TOKEN must equal fulfillment's FULFILLMENT_ADMIN_TOKEN")
	}
}

// The services' environments pass the checks the commands make at start.
func TestComposeEnvironmentPassesTheBinarysValidation(t *testing.T) {
	p := loadCompose(t)
	srv, err := loadConfig(env(serviceEnv(t, service(t, p, "fulfillment"))))
	require.NoError(t, err, "fulfillment's environment")
	require.NoError(t, srv.requireForAPI(), "fulfillment's environment, for the API")
	require.NoError(t, srv.requireForWorker(), "fulfillment's environment, for the worker")

	emu, err := emulator.LoadConfig(env(serviceEnv(t, service(t, p, "emulator"))))
	require.NoError(t, err, "the emulator's environment")
	// Settings both sides must agree on.
	require.Equal(t, srv.AppInfoEncryption, emu.AppInfoEncryption,
		"KOOGALLERY_APPINFO_ENCRYPTION differs: the emulator could not read the appInfo fields the server encrypts")
	require.Equal(t, srv.TemporalNamespace, emu.TemporalNamespace, "TEMPORAL_NAMESPACE differs between fulfillment and the emulator")
	require.NotEqual(t, srv.TaskQueue, emu.TaskQueue,
		"the emulator's task queue (EMULATOR_TASK_QUEUE) must differ from the server's (TEMPORAL_TASK_QUEUE)")
}

// The server's lifecycle timers run on the emulator's clock: scaled, and
// longer than the emulated marketplace's retention so that its
// releaseInstance arrives before the server gives up waiting.
func TestComposeLifecycleOnTheEmulatorsClock(t *testing.T) {
	p := loadCompose(t)
	srv, err := loadConfig(env(serviceEnv(t, service(t, p, "fulfillment"))))
	require.NoError(t, err)
	emu, err := emulator.LoadConfig(env(serviceEnv(t, service(t, p, "emulator"))))
	require.NoError(t, err)
	scale, err := emulator.ParseScale(emu.TimeScale)
	require.NoError(t, err)
	// In emulated days, as floats: a real-time value times the scale
	// overflows a Duration.
	days := func(d time.Duration) float64 { return d.Hours() / 24 }
	emulatedDays := func(d time.Duration) float64 { return days(d) * scale }
	marketplace := days(emu.Retention)

	if r := emulatedDays(srv.Lifecycle.Retention); r < marketplace {
		t.Errorf("LIFECYCLE_RETENTION %s is %.1f days on the emulator's clock (EMULATOR_TIME_SCALE %s), shorter than the marketplace's retention of %.1f days (EMULATOR_RETENTION)",
			srv.Lifecycle.Retention, r, emu.TimeScale, marketplace)
	} else if r > 2*marketplace {
		t.Errorf("LIFECYCLE_RETENTION %s is %.1f days on the emulator's clock (EMULATOR_TIME_SCALE %s): scale it to that clock",
			srv.Lifecycle.Retention, r, emu.TimeScale)
	}
	if g := emulatedDays(srv.Lifecycle.FreezeGrace); g > marketplace {
		t.Errorf("LIFECYCLE_FREEZE_GRACE %s is %.1f days on the emulator's clock (EMULATOR_TIME_SCALE %s): scale it to that clock",
			srv.Lifecycle.FreezeGrace, g, emu.TimeScale)
	}
}

// usageCommands lists the commands a usage text documents: its lines
// "  name   description".
func usageCommands(usage string) []string {
	var cmds []string
	re := regexp.MustCompile(`^  ([a-z][a-z-]*)\s`)
	for line := range strings.Lines(usage) {
		if m := re.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, m[1])
		}
	}
	return cmds
}

func TestComposeCommandsAreTheBinarys(t *testing.T) {
	p := loadCompose(t)
	srv := service(t, p, "fulfillment")
	emu := service(t, p, "emulator")
	require.Equal(t, types.ShellCommand{"serve"}, srv.Command, "fulfillment's command")
	require.Equal(t, types.ShellCommand{"emulator", "serve"}, emu.Command, "the emulator's command")

	// The help texts document them.
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"help"}, env(nil), strings.NewReader(""), &out))
	require.Contains(t, usageCommands(out.String()), "serve", "'fulfillment help' does not list serve")
	require.Contains(t, usageCommands(out.String()), "emulator", "'fulfillment help' does not list emulator")
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"emulator", "help"}, env(nil), strings.NewReader(""), &out))
	require.Contains(t, usageCommands(out.String()), "serve", "'fulfillment emulator help' does not list serve")

	// Each command, with its service's environment, passes dispatch and the
	// command's own checks and gets as far as the database (here one that
	// cannot answer, with the context already cancelled).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, s := range []types.ServiceConfig{srv, emu} {
		vars := serviceEnv(t, s)
		vars["DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"
		vars["LOG_LEVEL"] = "error"
		err := run(ctx, s.Command, env(vars), strings.NewReader(""), &out)
		require.Errorf(t, err, "service %s: %q", s.Name, s.Command)
		require.Falsef(t, errors.Is(err, errUsage), "service %s: the binary does not know the command %q", s.Name, s.Command)
		require.ErrorContainsf(t, err, "connect to database", "service %s: %q stopped before connecting to the database", s.Name, s.Command)
	}
}

// urlHostPort splits a URL into its host, port and path.
func urlHostPort(t *testing.T, what, raw string) (host, port, path string) {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoErrorf(t, err, "%s %q", what, raw)
	require.NotEmptyf(t, u.Host, "%s %q has no host", what, raw)
	return u.Hostname(), u.Port(), u.Path
}

func TestComposeCrossReferences(t *testing.T) {
	p := loadCompose(t)
	pg := serviceEnv(t, service(t, p, "postgres"))
	srvSvc, emuSvc := service(t, p, "fulfillment"), service(t, p, "emulator")
	srvEnv, emuEnv := serviceEnv(t, srvSvc), serviceEnv(t, emuSvc)
	srv, err := loadConfig(env(srvEnv))
	require.NoError(t, err)
	emu, err := emulator.LoadConfig(env(emuEnv))
	require.NoError(t, err)
	srvPort := addrPort(t, "fulfillment's HTTP_ADDR", srv.HTTPAddr)
	emuPort := addrPort(t, "emulator's EMULATOR_ADDR", emu.Addr)

	t.Run("temporal", func(t *testing.T) {
		for name, addr := range map[string]string{
			"fulfillment": srv.TemporalAddress, "emulator": emu.TemporalAddress,
			"temporal-ui": serviceEnv(t, service(t, p, "temporal-ui"))["TEMPORAL_ADDRESS"],
		} {
			host, port, err := net.SplitHostPort(addr)
			require.NoErrorf(t, err, "%s's TEMPORAL_ADDRESS %q", name, addr)
			require.Equalf(t, "temporal", host, "%s's TEMPORAL_ADDRESS %q must name the temporal service", name, addr)
			require.Equalf(t, "7233", port, "%s's TEMPORAL_ADDRESS %q must use the frontend port 7233", name, addr)
		}
		_, ok := targetPort(service(t, p, "temporal"), "7233")
		require.True(t, ok, "the temporal service does not publish its frontend port 7233")
	})

	t.Run("database", func(t *testing.T) {
		for name, raw := range map[string]string{"fulfillment": string(srv.DatabaseURL), "emulator": string(emu.DatabaseURL)} {
			u, err := url.Parse(raw)
			require.NoErrorf(t, err, "%s's DATABASE_URL", name)
			require.Equalf(t, "postgres", u.Hostname(), "%s's DATABASE_URL must name the postgres service", name)
			require.Containsf(t, []string{"", "5432"}, u.Port(), "%s's DATABASE_URL must use port 5432", name)
			require.Equalf(t, "/"+pg["POSTGRES_DB"], u.Path,
				"%s's DATABASE_URL names a database the postgres service does not create (POSTGRES_DB %q)", name, pg["POSTGRES_DB"])
			require.Equalf(t, pg["POSTGRES_USER"], u.User.Username(), "%s's DATABASE_URL user differs from POSTGRES_USER", name)
			password, _ := u.User.Password()
			require.Equalf(t, pg["POSTGRES_PASSWORD"], password, "%s's DATABASE_URL password differs from POSTGRES_PASSWORD", name)
		}
		require.Equal(t, pg["POSTGRES_PASSWORD"], serviceEnv(t, service(t, p, "temporal-schema"))["SQL_PASSWORD"],
			"temporal-schema's SQL_PASSWORD differs from POSTGRES_PASSWORD")
		require.Equal(t, pg["POSTGRES_PASSWORD"], serviceEnv(t, service(t, p, "temporal"))["POSTGRES_PWD"],
			"temporal's POSTGRES_PWD differs from POSTGRES_PASSWORD")
	})

	t.Run("open API", func(t *testing.T) {
		host, port, _ := urlHostPort(t, "fulfillment's KOOGALLERY_API_URL", srv.APIURL)
		require.Equal(t, "emulator", host, "fulfillment's KOOGALLERY_API_URL must name the emulator service")
		require.Equal(t, emuPort, port, "fulfillment's KOOGALLERY_API_URL must use the emulator's port")
	})

	t.Run("production interface", func(t *testing.T) {
		host, port, path := urlHostPort(t, "the emulator's EMULATOR_PRODUCTION_URL", emu.ProductionURL)
		require.Equal(t, "fulfillment", host, "EMULATOR_PRODUCTION_URL must name the fulfillment service")
		require.Equal(t, srvPort, port, "EMULATOR_PRODUCTION_URL must use fulfillment's port")
		require.Equal(t, "/produce", path, "EMULATOR_PRODUCTION_URL must end in /produce")

		host, port, _ = urlHostPort(t, "the emulator's EMULATOR_MERCHANT_ADMIN_URL", emu.MerchantAdminURL)
		require.Equal(t, "fulfillment", host, "EMULATOR_MERCHANT_ADMIN_URL must name the fulfillment service")
		require.Equal(t, srvPort, port, "EMULATOR_MERCHANT_ADMIN_URL must use fulfillment's port")
	})

	t.Run("public URL", func(t *testing.T) {
		host, port, _ := urlHostPort(t, "fulfillment's PUBLIC_URL", srv.PublicURL)
		require.Equal(t, "localhost", host, "buyers reach the server from the host: PUBLIC_URL")
		target, ok := targetPort(srvSvc, port)
		require.Truef(t, ok, "PUBLIC_URL %q uses a port fulfillment does not publish", srv.PublicURL)
		require.Equal(t, srvPort, strconv.Itoa(int(target)), "PUBLIC_URL's port is not published on fulfillment's HTTP port")
	})

	t.Run("spool on a volume", func(t *testing.T) {
		var found bool
		for _, v := range srvSvc.Volumes {
			if v.Target == srv.SpoolDir && v.Type == types.VolumeTypeVolume {
				found = true
			}
		}
		require.Truef(t, found, "fulfillment's FULFILLMENT_SPOOL_DIR %q is not a named volume", srv.SpoolDir)
	})

	t.Run("start order", func(t *testing.T) {
		dep, ok := service(t, p, "temporal").DependsOn["temporal-schema"]
		require.True(t, ok, "temporal must depend on temporal-schema")
		require.Equal(t, types.ServiceConditionCompletedSuccessfully, dep.Condition,
			"temporal must wait for temporal-schema to complete successfully")
		dep, ok = service(t, p, "temporal-schema").DependsOn["postgres"]
		require.True(t, ok, "temporal-schema must depend on postgres")
		require.Equal(t, types.ServiceConditionHealthy, dep.Condition, "temporal-schema must wait for postgres to be healthy")
		require.NotNil(t, service(t, p, "postgres").HealthCheck, "postgres needs a healthcheck for service_healthy")
		for _, name := range []string{"fulfillment", "emulator"} {
			_, ok := service(t, p, name).DependsOn["temporal"]
			require.Truef(t, ok, "%s must depend on temporal", name)
		}
	})
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(dockerfile)
	require.NoError(t, err)
	text := string(b)
	require.Contains(t, text, `ENTRYPOINT ["/fulfillment"]`, "the image runs the binary")
	require.Contains(t, text, `CMD ["serve"]`, "the image's default command")
	require.Contains(t, text, "./cmd/fulfillment", "the image builds the package the Makefile builds")
	re := regexp.MustCompile(`(?m)^EXPOSE\s+(.*)$`)
	m := re.FindStringSubmatch(text)
	require.NotNil(t, m, "the Dockerfile exposes no port")
	require.Subset(t, strings.Fields(m[1]), []string{"8080", "8090"}, "the Dockerfile must expose the server's and the emulator's ports")
}

// scriptOnly are variables scripts/run-local.sh sets for itself, which the
// binary does not read.
var scriptOnly = map[string]string{
	"TEMPORAL_UI_PORT": "the Temporal dev server's UI port (--ui-port)",
	"RUN_ENV_FILE":     "where the script writes the variables a second terminal needs (the emulator commands read .data/run.env)",
}

// scriptVariables lists the environment variables a shell script sets:
// "export NAME=", ': "${NAME:=…}"' and 'NAME="${NAME:-…}"', NAME in capitals
// (lower-case names are the script's own locals).
func scriptVariables(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var (
		export      = regexp.MustCompile(`^\s*export\s+([A-Z_][A-Z0-9_]*)=`)
		assign      = regexp.MustCompile(`^\s*:\s+"?\$\{([A-Z_][A-Z0-9_]*):?=`)
		withDefault = regexp.MustCompile(`^\s*([A-Z_][A-Z0-9_]*)="?\$\{([A-Z_][A-Z0-9_]*):?-`)
		names       []string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := export.FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
		} else if m := assign.FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
		} else if m := withDefault.FindStringSubmatch(line); m != nil && m[1] == m[2] {
			names = append(names, m[1])
		}
	}
	require.NoError(t, sc.Err())
	return names
}

func TestRunLocalVariablesAreKnownToTheBinary(t *testing.T) {
	names := scriptVariables(t, runLocal)
	// The parser still understands the script.
	require.Subset(t, names, []string{"DATABASE_URL", "KOOGALLERY_ACCESS_KEY"},
		"scripts/run-local.sh: no longer found the variables it sets; has its style changed?")
	for _, name := range names {
		if _, ok := scriptOnly[name]; ok {
			continue
		}
		if !slices.Contains(envNames(), name) {
			t.Errorf("scripts/run-local.sh sets %s, which the binary does not read (fulfillment env lists them); "+
				"if only the script uses it, list it in scriptOnly in compose_test.go", name)
		}
	}
}

// The commands scripts/run-local.sh runs are commands of the binary.
func TestRunLocalCommandsAreTheBinarys(t *testing.T) {
	b, err := os.ReadFile(runLocal)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"help"}, env(nil), strings.NewReader(""), &out))
	known := usageCommands(out.String())
	re := regexp.MustCompile(`(?m)^[^#\n]*\bbin/fulfillment\s+([a-z][a-z-]*)(?:\s|$)`)
	matches := re.FindAllStringSubmatch(string(b), -1)
	require.NotEmpty(t, matches, "scripts/run-local.sh runs no bin/fulfillment command")
	for _, m := range matches {
		if !slices.Contains(known, m[1]) {
			t.Errorf("scripts/run-local.sh runs 'bin/fulfillment %s', which is not a command of the binary ('fulfillment help': %v)", m[1], known)
		}
	}
}
