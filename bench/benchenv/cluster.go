// Package benchenv is what the benchmark programs (make bench, make
// bench-usage) share: databases of their own on a Postgres server, a
// description of the machine, the CPU time of its processes, bounded
// parallelism, percentiles and the sections they own in docs/benchmarks.md.
package benchenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"time"

	_ "github.com/lib/pq" // the Postgres driver
)

// Cluster creates, copies and drops a benchmark's databases on one Postgres
// server; whatever it created is dropped by Close.
type Cluster struct {
	admin   *sql.DB
	server  url.URL
	prefix  string
	made    int      // databases created so far, which numbers them
	created []string // the ones not dropped yet
}

// OpenCluster connects to the Postgres server of rawURL; the databases it
// creates are named prefix_<random>_<n>.
func OpenCluster(ctx context.Context, rawURL, prefix string) (*Cluster, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse the database URL: %w", err)
	}
	admin, err := sql.Open("postgres", rawURL)
	if err != nil {
		return nil, err
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect to Postgres at %s: %w", u.Redacted(), err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return &Cluster{admin: admin, server: *u, prefix: prefix + "_" + hex.EncodeToString(suffix)}, nil
}

// Prefix is what the names of the cluster's databases begin with.
func (c *Cluster) Prefix() string { return c.prefix }

// Admin is the connection to the server's maintenance database.
func (c *Cluster) Admin() *sql.DB { return c.admin }

// URL is the connection string of one of the cluster's databases.
func (c *Cluster) URL(name string) string {
	u := c.server
	u.Path = "/" + name
	return u.String()
}

// Create creates an empty database, or a copy of template when one is
// named, and returns its name.
func (c *Cluster) Create(ctx context.Context, template string) (string, error) {
	c.made++
	name := fmt.Sprintf("%s_%d", c.prefix, c.made)
	stmt := "CREATE DATABASE " + name
	if template != "" {
		// A file copy takes seconds for a database of a million records,
		// where the default (WAL_LOG) copies it block by block.
		stmt += " TEMPLATE " + template + " STRATEGY FILE_COPY"
	}
	if _, err := c.admin.ExecContext(ctx, stmt); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	c.created = append(c.created, name)
	return name, nil
}

// Vacuum does what autovacuum does after a bulk load, so that the
// measurements see the statistics and visibility map of a database in
// service.
func (c *Cluster) Vacuum(ctx context.Context, name string) error {
	db, err := sql.Open("postgres", c.URL(name))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		return fmt.Errorf("vacuum %s: %w", name, err)
	}
	return nil
}

// Drop drops one of the cluster's databases.
func (c *Cluster) Drop(ctx context.Context, name string) error {
	if _, err := c.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	c.created = slices.DeleteFunc(c.created, func(n string) bool { return n == name })
	return nil
}

// Close drops every database still there, even when the benchmark was
// interrupted.
func (c *Cluster) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range slices.Clone(c.created) {
		_ = c.Drop(ctx, name)
	}
	c.admin.Close()
}
