package provisioner

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/fulfillment-server/fulfillment/schema"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DemoMigrations returns the demo provisioner's own migrations: its tables
// live in the Postgres schema demo, never in the server's (fulfillment
// migrate creates none of them), tracked in demo.schema_migrations under a
// lock of their own.
func DemoMigrations() schema.Set {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(fmt.Sprintf("provisioner: embedded migrations: %v", err)) // a constant, valid path
	}
	return schema.Set{Name: "demo", Files: files, Schema: "demo", LockID: 7_140_625_003}
}

// ErrNoDemoTenant is returned when the demo application has no such tenant.
var ErrNoDemoTenant = errors.New("no such demo tenant")

// DemoStore is the demo application's database: its tenants and its
// maintenance switch.
type DemoStore struct {
	x *sqlx.DB
}

// NewDemoStore returns the demo application's store on a connection pool
// (the server's: the demo application has no database of its own).
// Migrate creates or updates its tables.
func NewDemoStore(pool *sql.DB) *DemoStore {
	return &DemoStore{x: sqlx.NewDb(pool, "postgres")}
}

// Migrate applies the demo provisioner's pending migrations and returns
// their names.
func (s *DemoStore) Migrate(ctx context.Context) ([]string, error) {
	return DemoMigrations().Migrate(ctx, s.x.DB)
}

// DemoTenant is a tenant of the built-in demo provisioner.
type DemoTenant struct {
	TenantID     string     `db:"tenant_id"`
	InstanceID   string     `db:"instance_id"`
	State        string     `db:"state"`
	Debug        bool       `db:"debug"`
	SkuCode      string     `db:"sku_code"`
	ProductID    string     `db:"product_id"`
	LinearValue  *int64     `db:"linear_value"`
	UsedQuantity int64      `db:"used_quantity"`
	UserName     string     `db:"user_name"`
	PasswordSalt []byte     `db:"password_salt"`
	PasswordHash []byte     `db:"password_hash"`
	CreatedAt    time.Time  `db:"created_at"`
	UpdatedAt    time.Time  `db:"updated_at"`
	DeletedAt    *time.Time `db:"deleted_at"`
}

const demoTenantColumns = `tenant_id, instance_id, state, debug, sku_code, product_id, linear_value,
	used_quantity, user_name, password_salt, password_hash, created_at, updated_at, deleted_at`

// CreateTenant inserts the tenant unless the instance already has one,
// and returns the instance's tenant either way.
func (s *DemoStore) CreateTenant(ctx context.Context, t DemoTenant) (DemoTenant, error) {
	if _, err := s.x.NamedExecContext(ctx, `
		INSERT INTO demo.tenants (tenant_id, instance_id, state, debug, sku_code, product_id,
			linear_value, user_name, password_salt, password_hash)
		VALUES (:tenant_id, :instance_id, :state, :debug, :sku_code, :product_id,
			:linear_value, :user_name, :password_salt, :password_hash)
		ON CONFLICT DO NOTHING`, t); err != nil {
		return DemoTenant{}, fmt.Errorf("create demo tenant of %s: %w", t.InstanceID, err)
	}
	return s.Tenant(ctx, t.InstanceID)
}

// Tenant returns the demo tenant of an instance, or ErrNoDemoTenant.
func (s *DemoStore) Tenant(ctx context.Context, instanceID string) (DemoTenant, error) {
	return s.tenant(ctx, "instance_id", instanceID)
}

// TenantByID returns a demo tenant by its tenantId, or ErrNoDemoTenant.
func (s *DemoStore) TenantByID(ctx context.Context, tenantID string) (DemoTenant, error) {
	return s.tenant(ctx, "tenant_id", tenantID)
}

func (s *DemoStore) tenant(ctx context.Context, column, value string) (DemoTenant, error) {
	var t DemoTenant
	err := s.x.GetContext(ctx, &t, `SELECT `+demoTenantColumns+` FROM demo.tenants WHERE `+column+` = $1`, value)
	if errors.Is(err, sql.ErrNoRows) {
		return DemoTenant{}, ErrNoDemoTenant
	}
	if err != nil {
		return DemoTenant{}, fmt.Errorf("read demo tenant %s: %w", value, err)
	}
	return t, nil
}

// SetTenantPassword replaces the stored password hash of a tenant.
func (s *DemoStore) SetTenantPassword(ctx context.Context, instanceID string, salt, hash []byte) error {
	_, err := s.x.ExecContext(ctx, `UPDATE demo.tenants
		SET password_salt = $2, password_hash = $3, updated_at = now() WHERE instance_id = $1`,
		instanceID, salt, hash)
	if err != nil {
		return fmt.Errorf("set password of demo tenant of %s: %w", instanceID, err)
	}
	return nil
}

// SetTenantState sets a tenant's state; "deleted" also stamps deleted_at.
func (s *DemoStore) SetTenantState(ctx context.Context, instanceID, state string) error {
	_, err := s.x.ExecContext(ctx, `UPDATE demo.tenants
		SET state = $2, updated_at = now(),
			deleted_at = CASE WHEN $2 = 'deleted' THEN COALESCE(deleted_at, now()) ELSE deleted_at END
		WHERE instance_id = $1`, instanceID, state)
	if err != nil {
		return fmt.Errorf("set state of demo tenant of %s: %w", instanceID, err)
	}
	return nil
}

// SetTenantSpec records a tenant's new spec after an upgrade.
func (s *DemoStore) SetTenantSpec(ctx context.Context, instanceID, skuCode, productID string, linearValue *int64) error {
	_, err := s.x.ExecContext(ctx, `UPDATE demo.tenants
		SET sku_code = $2, product_id = $3, linear_value = $4, updated_at = now() WHERE instance_id = $1`,
		instanceID, skuCode, productID, linearValue)
	if err != nil {
		return fmt.Errorf("set spec of demo tenant of %s: %w", instanceID, err)
	}
	return nil
}

// SetMaintenance turns the demo application's maintenance on or off.
func (s *DemoStore) SetMaintenance(ctx context.Context, on bool) error {
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO demo.settings (name, value) VALUES ('maintenance', $1)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, fmt.Sprint(on))
	if err != nil {
		return fmt.Errorf("set demo maintenance: %w", err)
	}
	return nil
}

// Maintenance reports whether the demo application is in maintenance.
func (s *DemoStore) Maintenance(ctx context.Context) (bool, error) {
	var v string
	err := s.x.GetContext(ctx, &v, `SELECT value FROM demo.settings WHERE name = 'maintenance'`)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read demo maintenance: %w", err)
	}
	return v == "true", nil
}

// DemoLicenseCode is what the demo application knows of a license code.
type DemoLicenseCode struct {
	License     string     `db:"license" json:"license"`
	Status      string     `db:"status" json:"status"`
	LastEvent   string     `db:"last_event" json:"lastEvent"`
	ExpireTime  *time.Time `db:"expire_time" json:"expireTime,omitempty"`
	ProductID   string     `db:"product_id" json:"productId"`
	OperationID string     `db:"operation_id" json:"operationId"`
	Entitled    bool       `db:"entitled" json:"entitled"`
}

// SaveLicenseCode records a code's change. The code stays entitled while
// it is active or expired (within the marketplace's grace), and a release
// is final: nothing after it entitles the code again.
func (s *DemoStore) SaveLicenseCode(ctx context.Context, req LicenseCodeRequest) error {
	entitled := req.Status == "active" || req.Status == "expired"
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO demo.license_codes (license, status, last_event, expire_time, product_id, operation_id, entitled)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (license) DO UPDATE SET status = $2, last_event = $3,
			expire_time = COALESCE($4, demo.license_codes.expire_time), operation_id = $6, entitled = $7, updated_at = now()
		WHERE demo.license_codes.status <> 'released' AND demo.license_codes.operation_id <> $6`,
		req.License, req.Status, req.Event, req.ExpireTime, req.ProductID, req.OperationID, entitled)
	if err != nil {
		return fmt.Errorf("save demo license code %s: %w", req.License, err)
	}
	return nil
}

// LicenseCode returns what the demo application knows of a code, or
// ErrNoDemoTenant's sibling ErrNoDemoLicenseCode.
func (s *DemoStore) LicenseCode(ctx context.Context, license string) (DemoLicenseCode, error) {
	var c DemoLicenseCode
	err := s.x.GetContext(ctx, &c, `SELECT license, status, last_event, expire_time, product_id, operation_id, entitled
		FROM demo.license_codes WHERE license = $1`, license)
	if errors.Is(err, sql.ErrNoRows) {
		return DemoLicenseCode{}, ErrNoDemoLicenseCode
	}
	if err != nil {
		return DemoLicenseCode{}, fmt.Errorf("read demo license code %s: %w", license, err)
	}
	return c, nil
}

// ErrNoDemoLicenseCode: the demo application was never told of the code.
var ErrNoDemoLicenseCode = errors.New("no such demo license code")
