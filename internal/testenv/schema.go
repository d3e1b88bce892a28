package testenv

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/fulfillment-server/fulfillment/schema"
)

// DescribeSchema lists what a Postgres schema holds: every column with its
// type, default and nullability, every index, constraint and sequence, one
// line each in a stable order, so that two databases can be compared.
func DescribeSchema(t testing.TB, db *sql.DB, schema string) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type
			|| coalesce('(' || numeric_precision || ',' || numeric_scale || ')', '')
			|| ' nullable=' || is_nullable || ' default=' || coalesce(column_default, '-')
			|| ' position=' || ordinal_position
		FROM information_schema.columns WHERE table_schema = $1
		UNION ALL
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = $1
		UNION ALL
		SELECT 'constraint ' || c.conname || ' on ' || t.relname || ': ' || pg_get_constraintdef(c.oid)
		FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = $1
		UNION ALL
		SELECT 'sequence ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'S'
		ORDER BY 1`, schema)
	if err != nil {
		t.Fatalf("testenv: describe schema %s: %v", schema, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatalf("testenv: describe schema %s: %v", schema, err)
		}
		out = append(out, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("testenv: describe schema %s: %v", schema, err)
	}
	return out
}

// MigrateServerTo applies the server's migrations up to version and no
// further, as a database last migrated by an earlier release has them.
func MigrateServerTo(t testing.TB, db *sql.DB, version int) {
	t.Helper()
	all, err := schema.Migrations()
	if err != nil {
		t.Fatalf("testenv: server migrations: %v", err)
	}
	files := fstest.MapFS{}
	for _, m := range all {
		if m.Version <= version {
			files[m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
		}
	}
	earlier := schema.Server()
	earlier.Files = files
	if _, err := earlier.Migrate(context.Background(), db); err != nil {
		t.Fatalf("testenv: migrate the server's schema to version %d: %v", version, err)
	}
}

// RehearsalTablesLeave is the server's migration that takes the emulator's
// and the demo provisioner's tables out of the server's schema; the
// database of an earlier release is migrated to the version before it.
func RehearsalTablesLeave(t testing.TB) schema.Migration {
	t.Helper()
	all, err := schema.Migrations()
	if err != nil {
		t.Fatalf("testenv: server migrations: %v", err)
	}
	for _, m := range all {
		if strings.HasSuffix(m.Name, "_rehearsal_tables_leave.sql") {
			return m
		}
	}
	t.Fatalf("testenv: no server migration *_rehearsal_tables_leave.sql")
	return schema.Migration{}
}
