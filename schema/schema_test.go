package schema_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

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
		"instance_credentials", "instance_events"} {
		var exists bool
		require.NoError(t, db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists))
		require.True(t, exists, "table %s", table)
	}
}

// TestMigrateCreatesOnlyTheServersTables: "fulfillment migrate" on a new
// database leaves none of the emulator's or the demo provisioner's tables,
// and none of their schemas: they make their own when they start.
func TestMigrateCreatesOnlyTheServersTables(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	_, err := schema.Migrate(ctx, db)
	require.NoError(t, err)

	rows, err := db.QueryContext(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, tables, "public.callbacks")
	for _, name := range tables {
		_, table, _ := strings.Cut(name, ".")
		require.False(t, strings.HasPrefix(table, "emulator") || strings.HasPrefix(table, "demo"),
			"the server's migrations made %s", name)
	}
	var schemas int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.schemata
		WHERE schema_name IN ('emulator', 'demo')`).Scan(&schemas))
	require.Zero(t, schemas, "the server's migrations made the emulator's or the demo's schema")
}

// TestRehearsalTablesLeaveUnlessTheyHoldRows: the migration
// rehearsal_tables_leave drops the emulator's and the demo provisioner's
// empty public tables, and leaves those with rows for their owners to
// adopt.
func TestRehearsalTablesLeaveUnlessTheyHoldRows(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	leave := testenv.RehearsalTablesLeave(t)
	testenv.MigrateServerTo(t, db, leave.Version-1)
	for _, insert := range []string{
		`INSERT INTO emulator_purchases (purchase_id, state, charging_mode, product_id, supervised, debug, revision)
		VALUES ('P-OLD', 'in_service', 'PERIOD', 'demo-product', false, false, 1)`,
		`INSERT INTO demo_tenants (tenant_id, instance_id, state, debug, user_name, password_salt, password_hash)
		VALUES ('t-old', 'I-OLD', 'active', false, 'admin', 'salt', 'hash')`,
	} {
		_, err := db.ExecContext(ctx, insert)
		require.NoError(t, err)
	}

	applied, err := schema.Migrate(ctx, db)
	require.NoError(t, err)
	require.Equal(t, leave.Name, applied[0], "the first migration applied is the one that takes the tables out")
	for table, kept := range map[string]bool{
		"emulator_orders": false, "emulator_purchases": true, "emulator_app_info": false, "emulator_events": false,
		"emulator_messages": false, "emulator_usage": false, "demo_tenants": true, "demo_settings": false,
	} {
		var exists bool
		require.NoError(t, db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, "public."+table).Scan(&exists))
		require.Equal(t, kept, exists, "public.%s", table)
	}
	var purchases, tenants int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM emulator_purchases`).Scan(&purchases))
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM demo_tenants`).Scan(&tenants))
	require.Equal(t, 1, purchases)
	require.Equal(t, 1, tenants)
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

// TestCallbackFieldsBackfilled: callbacks recorded before their fields had
// columns, and not yet delivered, get them from their body; a body the
// database cannot read keeps empty fields (its delivery parks it), and
// delivered callbacks are left alone.
func TestCallbackFieldsBackfilled(t *testing.T) {
	db := openDB(t)
	testenv.MigrateServerTo(t, db, 7)
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

// A component's set lives in its own Postgres schema: it is tracked there,
// leaves the server's schema_migrations alone, and its errors say whose
// they are.
func TestSetMigratesInItsOwnSchema(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	set := schema.Set{
		Name: "component",
		Files: fstest.MapFS{
			"0001_things.sql": {Data: []byte(`CREATE TABLE component.things (id text PRIMARY KEY);`)},
			"0002_more.sql":   {Data: []byte(`ALTER TABLE component.things ADD COLUMN size integer;`)},
		},
		Schema: "component",
		LockID: 7_140_625_999,
	}

	pending, err := set.Pending(ctx, db)
	require.NoError(t, err)
	require.Equal(t, []string{"0001_things.sql", "0002_more.sql"}, pending)
	applied, err := set.Migrate(ctx, db)
	require.NoError(t, err)
	require.Equal(t, []string{"0001_things.sql", "0002_more.sql"}, applied)
	again, err := set.Migrate(ctx, db)
	require.NoError(t, err)
	require.Empty(t, again)
	pending, err = set.Pending(ctx, db)
	require.NoError(t, err)
	require.Empty(t, pending)

	var versions int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM component.schema_migrations`).Scan(&versions))
	require.Equal(t, 2, versions)
	var serverTracked bool
	require.NoError(t, db.QueryRow(`SELECT to_regclass('public.schema_migrations') IS NOT NULL`).Scan(&serverTracked))
	require.False(t, serverTracked, "the component's set does not touch the server's tracking table")
	_, err = db.Exec(`INSERT INTO component.things (id, size) VALUES ('a', 1)`)
	require.NoError(t, err)

	// The server's set, applied afterwards, is tracked on its own.
	serverApplied, err := schema.Migrate(ctx, db)
	require.NoError(t, err)
	require.Equal(t, migrationNames(t), serverApplied)

	broken := set
	broken.Files = fstest.MapFS{
		"0001_things.sql": set.Files.(fstest.MapFS)["0001_things.sql"],
		"0002_more.sql":   set.Files.(fstest.MapFS)["0002_more.sql"],
		"0003_broken.sql": {Data: []byte(`SELECT * FROM component.nothing;`)},
	}
	_, err = broken.Migrate(ctx, db)
	require.ErrorContains(t, err, "component schema: migration 0003_broken.sql:")
	_, err = schema.Set{Name: "bad", Files: set.Files, Schema: "Bad-Name"}.Migrate(ctx, db)
	require.ErrorContains(t, err, `bad schema: schema name "Bad-Name"`)
}
