package emulator

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/schema"
)

// newStore returns the emulator's store on a fresh database of this test,
// with the emulator's migrations applied.
func newStore(t *testing.T) *Store {
	t.Helper()
	return openMigrated(t, testenv.NewDatabase(t))
}

func openMigrated(t *testing.T, url string) *Store {
	t.Helper()
	db, err := OpenStore(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Migrate(t.Context())
	require.NoError(t, err)
	return db
}

// TestMigrateAdoptsTheServersOldTables: a database in which the server's
// earlier migrations made the emulator's tables (public.emulator_*) keeps
// its rehearsals, whichever starts first after the upgrade: the server,
// whose migration rehearsal_tables_leave drops the empty tables and leaves
// those with rows, or the emulator, whose first migration moves each table
// it finds, rows and sequence included, into the emulator's schema. Either
// way that schema then looks exactly like one made afresh.
func TestMigrateAdoptsTheServersOldTables(t *testing.T) {
	for _, serverFirst := range []bool{true, false} {
		name := "the emulator first"
		if serverFirst {
			name = "the server first"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := testenv.NewDatabase(t)
			raw, err := sql.Open("postgres", url)
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			leave := testenv.RehearsalTablesLeave(t)
			testenv.MigrateServerTo(t, raw, leave.Version-1)
			for _, insert := range []string{
				`INSERT INTO emulator_purchases (purchase_id, state, charging_mode, product_id, supervised, debug, instance_id, revision)
				VALUES ('P-OLD', 'in_service', 'PERIOD', 'demo-product', false, false, 'i-old', 7)`,
				`INSERT INTO emulator_events (purchase_id, event_key, at, emulated_at, kind, message)
				VALUES ('P-OLD', '1-ordered', '2026-01-02 03:04:05Z', '2026-01-02 03:04:05Z', 'ordered', 'Order P-OLD placed.')`,
				`INSERT INTO emulator_usage (metering_sn, instance_id, begin_time, end_time, record_time, usage_value)
				VALUES ('sn-old', 'i-old', '2026-01-02 03:00:00Z', '2026-01-02 04:00:00Z', '2026-01-02 04:00:00Z', 2.5)`,
			} {
				_, err = raw.ExecContext(ctx, insert)
				require.NoError(t, err)
			}

			migrateServer := func() {
				applied, err := schema.Migrate(ctx, raw)
				require.NoError(t, err)
				require.Equal(t, leave.Name, applied[0], "the first migration applied is the one that takes the tables out")
			}
			if serverFirst {
				migrateServer()
			}
			db := openMigrated(t, url)
			if !serverFirst {
				migrateServer()
			}

			p, err := db.Purchase(ctx, "P-OLD")
			require.NoError(t, err)
			require.Equal(t, "in_service", p.State)
			require.EqualValues(t, 7, p.Revision)
			usage, err := db.UsageOf(ctx, "i-old")
			require.NoError(t, err)
			require.Len(t, usage, 1)
			require.Equal(t, "2.5000", usage[0].UsageValue)
			// The events' sequence came along: new events follow the old ones.
			p.Revision++
			require.NoError(t, db.SavePurchase(ctx, p, []Event{{Key: "2-renewed",
				At: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC), EmulatedAt: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
				Kind: "renewed", Message: "Renewed."}}))
			events, err := db.Events(ctx, "P-OLD")
			require.NoError(t, err)
			require.Len(t, events, 2)
			require.Equal(t, []string{"ordered", "renewed"}, []string{events[0].Kind, events[1].Kind})

			var left int
			require.NoError(t, raw.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables
				WHERE table_schema = 'public' AND table_name LIKE 'emulator%'`).Scan(&left))
			require.Zero(t, left, "no public.emulator_* table is left")

			fresh := newStore(t)
			require.Equal(t, testenv.DescribeSchema(t, fresh.x.DB, "emulator"), testenv.DescribeSchema(t, raw, "emulator"),
				"an adopted schema is the schema made afresh")
		})
	}
}

// TestServerAndEmulatorMigrateTogether: the server and the emulator started
// at once on a database of an earlier release (make run, docker compose
// up) both finish migrating, and the emulator's rows survive: the
// emulator's adoption waits for the server's migrations, so the two never
// reach for the same table at once.
func TestServerAndEmulatorMigrateTogether(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDatabase(t)
	raw, err := sql.Open("postgres", url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	testenv.MigrateServerTo(t, raw, testenv.RehearsalTablesLeave(t).Version-1)
	_, err = raw.ExecContext(ctx, `INSERT INTO emulator_purchases (purchase_id, state, charging_mode, product_id, supervised, debug, revision)
		VALUES ('P-OLD', 'in_service', 'PERIOD', 'demo-product', false, false, 1)`)
	require.NoError(t, err)
	db, err := OpenStore(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	start := make(chan struct{})
	var wg sync.WaitGroup
	var serverErr, emulatorErr error
	wg.Go(func() { <-start; _, serverErr = schema.Migrate(ctx, raw) })
	wg.Go(func() { <-start; _, emulatorErr = db.Migrate(ctx) })
	close(start)
	wg.Wait()
	require.NoError(t, serverErr)
	require.NoError(t, emulatorErr)

	_, err = db.Purchase(ctx, "P-OLD")
	require.NoError(t, err)
	var left int
	require.NoError(t, raw.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name LIKE 'emulator%'`).Scan(&left))
	require.Zero(t, left)
}
