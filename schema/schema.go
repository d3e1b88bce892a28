// Package schema holds the database schema as numbered, forward-only SQL
// migrations embedded in the binary, and applies them.
//
// A migration is a file migrations/NNNN_name.sql. Files are applied in
// number order, each in its own transaction, and recorded in
// schema_migrations; an applied migration is never edited, a change is a new
// file. An advisory lock lets several replicas start at once.
//
// The server's migrations create only the server's tables. A component that
// keeps tables of its own (the KooGallery emulator, the demo provisioner)
// applies its own migrations with a Set: in a Postgres schema of its own,
// tracked there, under its own lock.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var files embed.FS

// lockID is the pg_advisory_lock key that serialises the server's
// migrations.
const lockID = 7_140_625_001

// Server is the server's own set of migrations: tracked in schema_migrations
// of the connection's default schema, under lockID.
func Server() Set {
	migrations, err := fs.Sub(files, "migrations")
	if err != nil {
		panic(fmt.Sprintf("schema: embedded migrations: %v", err)) // a constant, valid path
	}
	return Set{Files: migrations, LockID: lockID}
}

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the server's embedded migrations in version order.
func Migrations() ([]Migration, error) { return Server().Migrations() }

// Migrate applies every server migration not yet applied and returns the
// names of those it applied.
func Migrate(ctx context.Context, db *sql.DB) ([]string, error) { return Server().Migrate(ctx, db) }

// Pending returns the names of the server migrations not yet applied, so
// that a process that does not migrate can refuse to run against an old
// schema.
func Pending(ctx context.Context, db *sql.DB) ([]string, error) { return Server().Pending(ctx, db) }

// Set is a sequence of migrations applied and tracked together.
type Set struct {
	// Name names the set in its errors ("emulator"); the server's is empty.
	Name string
	// Files holds the migrations, NNNN_name.sql, at its root.
	Files fs.FS
	// Schema is the Postgres schema the set is tracked in (its
	// schema_migrations table), created when missing. Empty means the
	// connection's default schema, unqualified, as the server's own set.
	Schema string
	// LockID is the pg_advisory_lock key that serialises runs of the set:
	// one per set, so that sets never wait for each other.
	LockID int64
}

// Migrations returns the set's migrations in version order.
func (s Set) Migrations() ([]Migration, error) {
	migrations, err := s.migrations()
	if err != nil {
		return nil, s.named(err)
	}
	return migrations, nil
}

func (s Set) migrations() ([]Migration, error) {
	if s.Files == nil {
		return nil, fmt.Errorf("read embedded migrations: the set has no files")
	}
	entries, err := fs.ReadDir(s.Files, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(prefix)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", name)
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, name, version)
		}
		seen[version] = name
		body, err := fs.ReadFile(s.Files, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: version, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies every migration of the set not yet applied and returns
// the names of those it applied.
func (s Set) Migrate(ctx context.Context, db *sql.DB) ([]string, error) {
	done, err := s.migrate(ctx, db)
	return done, s.named(err)
}

func (s Set) migrate(ctx context.Context, db *sql.DB) ([]string, error) {
	table, err := s.trackingTable()
	if err != nil {
		return nil, err
	}
	migrations, err := s.migrations()
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, s.LockID); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, s.LockID) //nolint:errcheck // released with the session anyway

	if s.Schema != "" {
		if _, err := conn.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+s.Schema); err != nil {
			return nil, fmt.Errorf("migrate: create schema %s: %w", s.Schema, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrate: create %s: %w", table, err)
	}
	applied := map[int]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT version FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: read applied versions: %w", err)
		}
		applied[v] = true
	}
	rows.Close()

	var done []string
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		if err := apply(ctx, conn, table, m); err != nil {
			return done, err
		}
		done = append(done, m.Name)
	}
	return done, nil
}

func apply(ctx context.Context, conn *sql.Conn, table string, m Migration) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}

// Pending returns the names of the set's migrations not yet applied.
func (s Set) Pending(ctx context.Context, db *sql.DB) ([]string, error) {
	pending, err := s.pending(ctx, db)
	return pending, s.named(err)
}

func (s Set) pending(ctx context.Context, db *sql.DB) ([]string, error) {
	table, err := s.trackingTable()
	if err != nil {
		return nil, err
	}
	migrations, err := s.migrations()
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for %s: %w", table, err)
	}
	applied := map[int]bool{}
	if !exists {
		var names []string
		for _, m := range migrations {
			names = append(names, m.Name)
		}
		return names, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT version FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("read applied versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read applied versions: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read applied versions: %w", err)
	}
	var pending []string
	for _, m := range migrations {
		if !applied[m.Version] {
			pending = append(pending, m.Name)
		}
	}
	return pending, nil
}

// schemaName is what Set.Schema may be: it is written into SQL as it is.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// trackingTable is the table that records the set's applied versions.
func (s Set) trackingTable() (string, error) {
	if s.Schema == "" {
		return "schema_migrations", nil
	}
	if !schemaName.MatchString(s.Schema) {
		return "", fmt.Errorf("schema name %q must be lowercase letters, digits and underscores", s.Schema)
	}
	return s.Schema + ".schema_migrations", nil
}

// named prefixes an error of a named set with its name, so that the
// emulator's migration 0001 is not taken for the server's.
func (s Set) named(err error) error {
	if err == nil || s.Name == "" {
		return err
	}
	return fmt.Errorf("%s schema: %w", s.Name, err)
}
