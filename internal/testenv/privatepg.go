package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// PrivatePostgres is a PostgreSQL cluster of one test, on its own port and
// data directory, for tests that stop and restart the database: the shared
// cluster serves the other tests in parallel and must stay up.
type PrivatePostgres struct {
	t       testing.TB
	bin     string
	dir     string
	port    int
	runAs   string // "postgres" when the test runs as root, which initdb refuses
	running bool
}

// privateDatabase is the database StartPrivatePostgres creates for the test.
const privateDatabase = "fulfillment"

// StartPrivatePostgres initialises a cluster with trust authentication in a
// temporary directory, starts it on a free port of 127.0.0.1 with its
// socket in that directory, creates the database URL names, and removes
// it all when the test ends.
func StartPrivatePostgres(t testing.TB) *PrivatePostgres {
	t.Helper()
	p := &PrivatePostgres{t: t, bin: postgresBinDir(t), port: FreePort(t)}
	if os.Geteuid() == 0 {
		p.runAs = "postgres"
	}
	// Not t.TempDir: its parent is private to the test's user, and when
	// the test runs as root the server runs as postgres and must reach it.
	dir, err := os.MkdirTemp("", "testenv-postgres-")
	if err != nil {
		t.Fatalf("testenv: private Postgres directory: %v", err)
	}
	p.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if p.runAs != "" {
		u, err := user.Lookup(p.runAs)
		if err != nil {
			t.Fatalf("testenv: the tests run as root, so the private Postgres runs as user %q, which does not exist (%v).\n"+
				"Create it (the postgresql package does), or run the tests as a user other than root.", p.runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("testenv: hand %s to %s: %v", dir, p.runAs, err)
		}
	}
	if out, err := p.command("initdb", "-D", p.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_connections = 50\n",
		p.port, p.dir)
	if err := appendFile(filepath.Join(p.dataDir(), "postgresql.conf"), conf); err != nil {
		t.Fatalf("testenv: configure the private Postgres: %v", err)
	}
	p.Start()
	t.Cleanup(p.Stop)

	db, err := sql.Open("postgres", p.url("postgres"))
	if err != nil {
		t.Fatalf("testenv: open the private Postgres: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+privateDatabase); err != nil {
		t.Fatalf("testenv: create database %s: %v", privateDatabase, err)
	}
	return p
}

// URL is the connection string of the test's database.
func (p *PrivatePostgres) URL() string { return p.url(privateDatabase) }

func (p *PrivatePostgres) url(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, database)
}

// Start starts the cluster (again) and returns once it accepts connections.
func (p *PrivatePostgres) Start() {
	p.t.Helper()
	if p.running {
		return
	}
	out, err := p.command("pg_ctl", "start", "-D", p.dataDir(), "-l", filepath.Join(p.dir, "postgres.log"),
		"-w", "-t", "60").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
		p.t.Fatalf("testenv: start the private Postgres: %v\n%s\n%s", err, out, log)
	}
	p.running = true
}

// Stop stops the cluster at once, the way a crash would: clients are cut
// off and the next start recovers from the write-ahead log.
func (p *PrivatePostgres) Stop() {
	p.t.Helper()
	if !p.running {
		return
	}
	if out, err := p.command("pg_ctl", "stop", "-D", p.dataDir(), "-m", "immediate", "-w", "-t", "60").CombinedOutput(); err != nil {
		p.t.Errorf("testenv: stop the private Postgres: %v\n%s", err, out)
		return
	}
	p.running = false
}

func (p *PrivatePostgres) dataDir() string { return filepath.Join(p.dir, "data") }

// command runs one of the server's programs, as the cluster's owner.
func (p *PrivatePostgres) command(program string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, program)
	var cmd *exec.Cmd
	if p.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", p.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	// The owner may not be allowed into the test's working directory.
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// postgresBinDir finds initdb and pg_ctl: the newest of the Debian layout's
// /usr/lib/postgresql/<version>/bin, else the directory of initdb in PATH.
func postgresBinDir(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var found []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			found = append(found, d)
		}
	}
	if len(found) > 0 {
		version := func(d string) int {
			v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
			return v
		}
		slices.SortFunc(found, func(a, b string) int { return version(a) - version(b) })
		return found[len(found)-1]
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(path)
	}
	t.Fatalf("testenv: initdb and pg_ctl were not found in /usr/lib/postgresql/*/bin or PATH.\n" +
		"Install the PostgreSQL server (apt-get install postgresql); tests that restart the database run their own cluster.")
	return ""
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
