package main

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

// cluster creates, copies and drops the benchmark's databases on one
// Postgres server; whatever it created is dropped by close.
type cluster struct {
	admin   *sql.DB
	server  url.URL
	prefix  string
	made    int      // databases created so far, which numbers them
	created []string // the ones not dropped yet
}

func openCluster(ctx context.Context, rawURL string) (*cluster, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse -database: %w", err)
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
	return &cluster{admin: admin, server: *u, prefix: "benchusage_" + hex.EncodeToString(suffix)}, nil
}

// url is the connection string of one of the cluster's databases.
func (c *cluster) url(name string) string {
	u := c.server
	u.Path = "/" + name
	return u.String()
}

// create creates an empty database, or a copy of template when one is
// named, and returns its name.
func (c *cluster) create(ctx context.Context, template string) (string, error) {
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

// vacuum does what autovacuum does after a bulk load, so that the
// measurements see the statistics and visibility map of a database in
// service.
func (c *cluster) vacuum(ctx context.Context, name string) error {
	db, err := sql.Open("postgres", c.url(name))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		return fmt.Errorf("vacuum %s: %w", name, err)
	}
	return nil
}

func (c *cluster) drop(ctx context.Context, name string) error {
	if _, err := c.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	c.created = slices.DeleteFunc(c.created, func(n string) bool { return n == name })
	return nil
}

// close drops every database still there, even when the benchmark was
// interrupted.
func (c *cluster) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range slices.Clone(c.created) {
		_ = c.drop(ctx, name)
	}
	c.admin.Close()
}
