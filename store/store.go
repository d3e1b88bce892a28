// Package store is the PostgreSQL data access of the server, one type per
// concern over one connection pool: the nonce memory, the callback inbox,
// the instance read model with its timeline and sealed credentials, the
// operators' audit trail, metering, and the directory the 联营 kit
// synchronises. The rules that decide what to write
// belong to the callers (the inbox, the activities); uniqueness and
// idempotency are enforced by the schema.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	neturl "net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the Postgres driver

	"github.com/fulfillment-server/fulfillment/schema"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// DB is the server's database: one connection pool, and one type per
// concern over it, each owning its tables.
type DB struct {
	x *sqlx.DB
	// Nonces remembers the production interface's nonces (contract §2.2).
	Nonces *Nonces
	// Callbacks is the inbox: recorded callbacks and the instance keys
	// they allocate, with the state of their delivery.
	Callbacks *Callbacks
	// Instances is the read model of the instances, their timelines and
	// sealed initial credentials.
	Instances *Instances
	// Audit records what operators asked for through the admin API.
	Audit *Audit
	// Metering holds reported usage, its hourly periods and the usage
	// packages they draw on.
	Metering *Metering
	// Directory holds what the 联营 kit synchronised about the buyers'
	// enterprises: tenants, app credentials, users, departments.
	Directory *Directory
	// LicenseCodes holds the license codes the merchant's software
	// activated, for its daily checks.
	LicenseCodes *LicenseCodes
	// Licenses are the licences issued for online-licence instances.
	Licenses *Licenses
}

// The concerns. Each holds the pool only.
type (
	Nonces       struct{ x *sqlx.DB }
	Callbacks    struct{ x *sqlx.DB }
	Instances    struct{ x *sqlx.DB }
	Audit        struct{ x *sqlx.DB }
	Metering     struct{ x *sqlx.DB }
	Directory    struct{ x *sqlx.DB }
	LicenseCodes struct{ x *sqlx.DB }
)

// newDB wires the concerns to one pool.
func newDB(x *sqlx.DB) *DB {
	return &DB{x: x, Nonces: &Nonces{x}, Callbacks: &Callbacks{x}, Instances: &Instances{x},
		Audit: &Audit{x}, Metering: &Metering{x}, Directory: &Directory{x}, Licenses: &Licenses{x},
		LicenseCodes: &LicenseCodes{x}}
}

// Open connects to the database at url and checks that it answers.
func Open(ctx context.Context, url string) (*DB, error) {
	x, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// Callbacks are short transactions; a modest pool keeps a burst from
	// exhausting the server's connection limit when several replicas run.
	// As many may stay idle as may be open: under a steady load a smaller
	// idle limit closes and reopens connections all the time, and each
	// new connection costs a request several milliseconds.
	x.SetMaxOpenConns(20)
	x.SetMaxIdleConns(20)
	x.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := x.PingContext(pingCtx); err != nil {
		x.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return newDB(x), nil
}

// Pool is the connection pool, for its statistics.
func (d *DB) Pool() *sql.DB { return d.x.DB }

// Close closes the connection pool.
func (d *DB) Close() error { return d.x.Close() }

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.x.PingContext(ctx) }

// Migrate applies the embedded schema migrations.
func (d *DB) Migrate(ctx context.Context) ([]string, error) { return schema.Migrate(ctx, d.x.DB) }

// inTx runs fn in a transaction, committing when it returns nil.
func inTx(ctx context.Context, x *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	tx, err := x.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// execLazy runs one statement whose loss in a crash of PostgreSQL the
// server survives by design, committed without waiting for the WAL flush
// (synchronous_commit off for this transaction only). What it buys: the
// answers to the marketplace wait for one flush each, the inbox record's,
// instead of queueing behind the flushes of bookkeeping (contract §9: the
// answer budget). A commit made this way is durable a fraction of a second
// later, or lost with the last ones before a crash of PostgreSQL, never
// applied half.
func execLazy(ctx context.Context, x *sqlx.DB, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := inTx(ctx, x, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
			return err
		}
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// getOne reads the one row a query selects into dest. When there is none
// it returns missing as it is: ErrNotFound, or the caller's more specific
// error. Any other failure is wrapped with what was being read.
func getOne(ctx context.Context, q sqlx.QueryerContext, dest any, missing error, what string, query string, args ...any) error {
	err := sqlx.GetContext(ctx, q, dest, query, args...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return missing
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// PendingMigrations lists the schema migrations not yet applied.
func (d *DB) PendingMigrations(ctx context.Context) ([]string, error) {
	return schema.Pending(ctx, d.x.DB)
}

// CreateDatabase creates the database named in url when it does not exist,
// connecting to the server's "postgres" database to do so. Local set-ups
// use it; production databases are usually created by their operators.
func CreateDatabase(ctx context.Context, url string) (created bool, err error) {
	u, err := neturl.Parse(url)
	if err != nil {
		return false, fmt.Errorf("parse database URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || !safeIdentifier.MatchString(name) {
		return false, fmt.Errorf("database name %q must be letters, digits and underscores", name)
	}
	admin := *u
	admin.Path = "/postgres"
	x, err := sqlx.Open("postgres", admin.String())
	if err != nil {
		return false, fmt.Errorf("open database server: %w", err)
	}
	defer x.Close()
	var exists bool
	if err := x.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name); err != nil {
		return false, fmt.Errorf("look for database %s: %w", name, err)
	}
	if exists {
		return false, nil
	}
	if _, err := x.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		return false, fmt.Errorf("create database %s: %w", name, err)
	}
	return true, nil
}

var safeIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
