package schema_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/schema"
)

// openDB opens a fresh, empty database for one test.
func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", testenv.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.PingContext(context.Background()))
	return db
}

func migrationNames(t *testing.T) []string {
	t.Helper()
	ms, err := schema.Migrations()
	require.NoError(t, err)
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	return names
}

func appliedVersions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	require.NoError(t, err)
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestMigrationsAreNumberedInOrder(t *testing.T) {
	ms, err := schema.Migrations()
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for i, m := range ms {
		require.Equal(t, i+1, m.Version, "migrations must be numbered 1, 2, 3… without gaps")
		require.True(t, strings.HasPrefix(m.Name, fmt.Sprintf("%04d_", m.Version)), "name %q", m.Name)
		require.True(t, strings.HasSuffix(m.Name, ".sql"), "name %q", m.Name)
		require.NotEmpty(t, strings.TrimSpace(m.SQL), "migration %s is empty", m.Name)
	}
	require.Equal(t, "0001_foundation.sql", ms[0].Name)
}

func TestPendingOnEmptyDatabaseListsEverything(t *testing.T) {
	db := openDB(t)
	pending, err := schema.Pending(context.Background(), db)
	require.NoError(t, err)
	require.Equal(t, migrationNames(t), pending)
}

func TestMigrateAppliesOnce(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)

	applied, err := schema.Migrate(ctx, db)
	require.NoError(t, err)
	require.Equal(t, migrationNames(t), applied)

	pending, err := schema.Pending(ctx, db)
	require.NoError(t, err)
	require.Empty(t, pending)

	again, err := schema.Migrate(ctx, db)
	require.NoError(t, err)
	require.Empty(t, again)

	ms, err := schema.Migrations()
	require.NoError(t, err)
	var want []int
	for _, m := range ms {
		want = append(want, m.Version)
	}
	require.Equal(t, want, appliedVersions(t, db))

	// The foundation's tables exist.
	for _, table := range []string{"koogallery_nonces", "instance_keys", "callbacks", "instances",
		"instance_credentials", "instance_events", "demo_tenants"} {
		var exists bool
		require.NoError(t, db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists))
		require.True(t, exists, "table %s", table)
	}
}

func TestConcurrentMigrateAppliesOnce(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDatabase(t)
	// One pool per replica, as replicas starting at once would have.
	const replicas = 4
	dbs := make([]*sql.DB, replicas)
	for i := range dbs {
		db, err := sql.Open("postgres", url)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}

	results := make([][]string, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range dbs {
		wg.Go(func() {
			<-start
			results[i], errs[i] = schema.Migrate(ctx, dbs[i])
		})
	}
	close(start)
	wg.Wait()

	var all []string
	for i := range dbs {
		require.NoError(t, errs[i], "replica %d", i)
		all = append(all, results[i]...)
	}
	// Every migration was applied by exactly one replica.
	require.ElementsMatch(t, migrationNames(t), all)
	require.Len(t, appliedVersions(t, dbs[0]), len(migrationNames(t)))

	pending, err := schema.Pending(ctx, dbs[0])
	require.NoError(t, err)
	require.Empty(t, pending)
}

// migrateUpTo applies the migrations up to version, as an older server did.
func migrateUpTo(t *testing.T, db *sql.DB, version int) {
	t.Helper()
	ms, err := schema.Migrations()
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	require.NoError(t, err)
	for _, m := range ms {
		if m.Version > version {
			break
		}
		_, err := db.Exec(m.SQL)
		require.NoError(t, err, m.Name)
		_, err = db.Exec(`INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
		require.NoError(t, err)
	}
}

// TestCallbackFieldsBackfilled: callbacks recorded before their fields had
// columns, and not yet delivered, get them from their body; a body the
// database cannot read keeps empty fields (its delivery parks it), and
// delivered callbacks are left alone.
func TestCallbackFieldsBackfilled(t *testing.T) {
	db := openDB(t)
	migrateUpTo(t, db, 7)
	_, err := db.Exec(`INSERT INTO instance_keys (instance_id, order_id, order_line_id, debug) VALUES ('I1', 'O1', 'O1-1', false)`)
	require.NoError(t, err)
	insert := func(key, activity, body string, delivered bool) {
		t.Helper()
		var deliveredAt any
		if delivered {
			deliveredAt = "2026-01-01T00:00:00Z"
		}
		_, err := db.Exec(`INSERT INTO callbacks (dedup_key, activity, instance_id, debug, body, delivered_at)
			VALUES ($1, $2, 'I1', false, $3, $4)`, key, activity, body, deliveredAt)
		require.NoError(t, err)
	}
	insert("renewal", "refreshInstance",
		`{"activity":"refreshInstance","scene":"RENEWAL","instanceId":"I1","orderId":"R1","orderLineId":"R1-1","expireTime":"20310101000000","productId":"P1"}`, false)
	insert("freeze", "updateInstanceStatus", `{"activity":"updateInstanceStatus","instanceId":"I1","status":"FREEZE"}`, false)
	insert("unreadable", "refreshInstance", `{"activity":"refreshInstance","scene":"RENEWAL","productId":"\ud800"}`, false)
	insert("delivered", "updateInstanceStatus", `{"activity":"updateInstanceStatus","instanceId":"I1","status":"UNFREEZE"}`, true)

	_, err = schema.Migrate(context.Background(), db)
	require.NoError(t, err)

	fields := func(key string) string {
		t.Helper()
		var status, scene, expire, product string
		require.NoError(t, db.QueryRow(`SELECT status, scene, expire_time, product_id FROM callbacks WHERE dedup_key = $1`, key).
			Scan(&status, &scene, &expire, &product))
		return strings.Join([]string{status, scene, expire, product}, "|")
	}
	require.Equal(t, "|RENEWAL|20310101000000|P1", fields("renewal"))
	require.Equal(t, "FREEZE|||", fields("freeze"))
	require.Equal(t, "|||", fields("unreadable"), "a body the database cannot read keeps empty fields")
	require.Equal(t, "|||", fields("delivered"), "delivered callbacks are never read again")
}
