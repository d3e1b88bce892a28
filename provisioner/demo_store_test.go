package provisioner_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/schema"
)

// newDemoStore returns the demo application's store on a fresh database of
// this test, with the demo provisioner's migrations applied.
func newDemoStore(t *testing.T) *provisioner.DemoStore {
	t.Helper()
	s, _ := newDemoStoreAndPool(t)
	return s
}

// newDemoStoreAndPool is newDemoStore with the store's connection pool.
func newDemoStoreAndPool(t *testing.T) (*provisioner.DemoStore, *sql.DB) {
	t.Helper()
	pool := openPool(t, testenv.NewDatabase(t))
	s := provisioner.NewDemoStore(pool)
	_, err := s.Migrate(t.Context())
	require.NoError(t, err)
	return s, pool
}

func openPool(t *testing.T, url string) *sql.DB {
	t.Helper()
	pool, err := sql.Open("postgres", url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pool.Close() })
	return pool
}

// TestDemoMigrateAdoptsTheServersOldTables: a database in which the
// server's earlier migrations made the demo's tables (public.demo_tenants,
// public.demo_settings) keeps its tenants and its maintenance switch. On
// fulfillment serve the server's migration rehearsal_tables_leave runs
// first: it drops the empty tables and leaves those with rows, which the
// demo's first migration then moves into the demo's schema; should the
// demo's run first (a worker on a database another process migrates), it
// moves every table it finds. Either way that schema then looks exactly
// like one made afresh.
func TestDemoMigrateAdoptsTheServersOldTables(t *testing.T) {
	for _, serverFirst := range []bool{true, false} {
		name := "the demo first"
		if serverFirst {
			name = "the server first"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			raw := openPool(t, testenv.NewDatabase(t))
			leave := testenv.RehearsalTablesLeave(t)
			testenv.MigrateServerTo(t, raw, leave.Version-1)
			_, err := raw.ExecContext(ctx, `INSERT INTO demo_tenants (tenant_id, instance_id, state, debug, user_name, password_salt, password_hash)
				VALUES ('t-old', 'I-OLD', 'frozen', false, 'admin', 'salt', 'hash')`)
			require.NoError(t, err)
			_, err = raw.ExecContext(ctx, `INSERT INTO demo_settings (name, value) VALUES ('maintenance', 'true')`)
			require.NoError(t, err)

			migrateServer := func() {
				applied, err := schema.Migrate(ctx, raw)
				require.NoError(t, err)
				require.Equal(t, leave.Name, applied[0], "the first migration applied is the one that takes the tables out")
			}
			if serverFirst {
				migrateServer()
			}
			demo := provisioner.NewDemoStore(raw)
			_, err = demo.Migrate(ctx)
			require.NoError(t, err)
			if !serverFirst {
				migrateServer()
			}

			tenant, err := demo.TenantByID(ctx, "t-old")
			require.NoError(t, err)
			require.Equal(t, "I-OLD", tenant.InstanceID)
			require.Equal(t, "frozen", tenant.State)
			on, err := demo.Maintenance(ctx)
			require.NoError(t, err)
			require.True(t, on)

			var left int
			require.NoError(t, raw.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables
				WHERE table_schema = 'public' AND table_name LIKE 'demo%'`).Scan(&left))
			require.Zero(t, left, "no public demo table is left")

			_, fresh := newDemoStoreAndPool(t)
			require.Equal(t, testenv.DescribeSchema(t, fresh, "demo"), testenv.DescribeSchema(t, raw, "demo"),
				"an adopted schema is the schema made afresh")
		})
	}
}

func TestDemoTenants(t *testing.T) {
	ctx := context.Background()
	db := newDemoStore(t)

	_, err := db.Tenant(ctx, "I1")
	require.ErrorIs(t, err, provisioner.ErrNoDemoTenant)
	_, err = db.TenantByID(ctx, "t-1")
	require.ErrorIs(t, err, provisioner.ErrNoDemoTenant)

	first, err := db.CreateTenant(ctx, provisioner.DemoTenant{
		TenantID:     "t-1",
		InstanceID:   "I1",
		State:        "active",
		Debug:        true,
		SkuCode:      "sku-1",
		ProductID:    "prod-1",
		LinearValue:  ptr(int64(10)),
		UserName:     "admin",
		PasswordSalt: []byte("salt-1"),
		PasswordHash: []byte("hash-1"),
	})
	require.NoError(t, err)
	require.Equal(t, "t-1", first.TenantID)
	require.Equal(t, "I1", first.InstanceID)
	require.Equal(t, "active", first.State)
	require.True(t, first.Debug)
	require.Equal(t, "sku-1", first.SkuCode)
	require.Equal(t, "prod-1", first.ProductID)
	require.Equal(t, ptr(int64(10)), first.LinearValue)
	require.EqualValues(t, 1, first.UsedQuantity)
	require.Equal(t, "admin", first.UserName)
	require.Equal(t, []byte("salt-1"), first.PasswordSalt)
	require.Equal(t, []byte("hash-1"), first.PasswordHash)
	require.Nil(t, first.DeletedAt)

	// A second create for the instance returns the first tenant unchanged.
	second, err := db.CreateTenant(ctx, provisioner.DemoTenant{
		TenantID:     "t-1",
		InstanceID:   "I1",
		State:        "frozen",
		UserName:     "other",
		PasswordSalt: []byte("salt-2"),
		PasswordHash: []byte("hash-2"),
	})
	require.NoError(t, err)
	require.Equal(t, first, second)

	byID, err := db.TenantByID(ctx, "t-1")
	require.NoError(t, err)
	require.Equal(t, first, byID)

	require.NoError(t, db.SetTenantPassword(ctx, "I1", []byte("salt-3"), []byte("hash-3")))
	got, err := db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, []byte("salt-3"), got.PasswordSalt)
	require.Equal(t, []byte("hash-3"), got.PasswordHash)

	require.NoError(t, db.SetTenantSpec(ctx, "I1", "sku-2", "prod-2", ptr(int64(50))))
	got, err = db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, "sku-2", got.SkuCode)
	require.Equal(t, "prod-2", got.ProductID)
	require.Equal(t, ptr(int64(50)), got.LinearValue)
	require.NoError(t, db.SetTenantSpec(ctx, "I1", "sku-3", "", nil))
	got, err = db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, "sku-3", got.SkuCode)
	require.Empty(t, got.ProductID)
	require.Nil(t, got.LinearValue)

	require.NoError(t, db.SetTenantState(ctx, "I1", "frozen"))
	got, err = db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, "frozen", got.State)
	require.Nil(t, got.DeletedAt)

	require.NoError(t, db.SetTenantState(ctx, "I1", "deleted"))
	got, err = db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, "deleted", got.State)
	require.NotNil(t, got.DeletedAt)
	deletedAt := *got.DeletedAt

	// Deleting again keeps the first deletion time.
	require.NoError(t, db.SetTenantState(ctx, "I1", "deleted"))
	got, err = db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.True(t, deletedAt.Equal(*got.DeletedAt))

	// Setters on an unknown instance change nothing and do not fail.
	require.NoError(t, db.SetTenantState(ctx, "nope", "frozen"))
	_, err = db.Tenant(ctx, "nope")
	require.ErrorIs(t, err, provisioner.ErrNoDemoTenant)

	// Another instance gets its own tenant.
	other, err := db.CreateTenant(ctx, provisioner.DemoTenant{
		TenantID: "t-2", InstanceID: "I2", State: "active", UserName: "admin",
		PasswordSalt: []byte("s"), PasswordHash: []byte("h"),
	})
	require.NoError(t, err)
	require.Equal(t, "t-2", other.TenantID)
	require.False(t, other.Debug)
	require.Nil(t, other.LinearValue)
}
