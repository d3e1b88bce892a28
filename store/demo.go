package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

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

// CreateDemoTenant inserts the tenant unless the instance already has one,
// and returns the instance's tenant either way.
func (d *DB) CreateDemoTenant(ctx context.Context, t DemoTenant) (DemoTenant, error) {
	if _, err := d.x.NamedExecContext(ctx, `
		INSERT INTO demo_tenants (tenant_id, instance_id, state, debug, sku_code, product_id,
			linear_value, user_name, password_salt, password_hash)
		VALUES (:tenant_id, :instance_id, :state, :debug, :sku_code, :product_id,
			:linear_value, :user_name, :password_salt, :password_hash)
		ON CONFLICT DO NOTHING`, t); err != nil {
		return DemoTenant{}, fmt.Errorf("create demo tenant of %s: %w", t.InstanceID, err)
	}
	return d.DemoTenant(ctx, t.InstanceID)
}

// DemoTenant returns the demo tenant of an instance, or ErrNotFound.
func (d *DB) DemoTenant(ctx context.Context, instanceID string) (DemoTenant, error) {
	return d.demoTenant(ctx, "instance_id", instanceID)
}

// DemoTenantByID returns a demo tenant by its tenantId, or ErrNotFound.
func (d *DB) DemoTenantByID(ctx context.Context, tenantID string) (DemoTenant, error) {
	return d.demoTenant(ctx, "tenant_id", tenantID)
}

func (d *DB) demoTenant(ctx context.Context, column, value string) (DemoTenant, error) {
	var t DemoTenant
	err := d.x.GetContext(ctx, &t, `SELECT `+demoTenantColumns+` FROM demo_tenants WHERE `+column+` = $1`, value)
	if errors.Is(err, sql.ErrNoRows) {
		return DemoTenant{}, ErrNotFound
	}
	if err != nil {
		return DemoTenant{}, fmt.Errorf("read demo tenant %s: %w", value, err)
	}
	return t, nil
}

// SetDemoTenantPassword replaces the stored password hash of a tenant.
func (d *DB) SetDemoTenantPassword(ctx context.Context, instanceID string, salt, hash []byte) error {
	_, err := d.x.ExecContext(ctx, `UPDATE demo_tenants
		SET password_salt = $2, password_hash = $3, updated_at = now() WHERE instance_id = $1`,
		instanceID, salt, hash)
	if err != nil {
		return fmt.Errorf("set password of demo tenant of %s: %w", instanceID, err)
	}
	return nil
}

// SetDemoTenantState sets a tenant's state; "deleted" also stamps deleted_at.
func (d *DB) SetDemoTenantState(ctx context.Context, instanceID, state string) error {
	_, err := d.x.ExecContext(ctx, `UPDATE demo_tenants
		SET state = $2, updated_at = now(),
			deleted_at = CASE WHEN $2 = 'deleted' THEN COALESCE(deleted_at, now()) ELSE deleted_at END
		WHERE instance_id = $1`, instanceID, state)
	if err != nil {
		return fmt.Errorf("set state of demo tenant of %s: %w", instanceID, err)
	}
	return nil
}

// SetDemoTenantSpec records a tenant's new spec after an upgrade.
func (d *DB) SetDemoTenantSpec(ctx context.Context, instanceID, skuCode, productID string, linearValue *int64) error {
	_, err := d.x.ExecContext(ctx, `UPDATE demo_tenants
		SET sku_code = $2, product_id = $3, linear_value = $4, updated_at = now() WHERE instance_id = $1`,
		instanceID, skuCode, productID, linearValue)
	if err != nil {
		return fmt.Errorf("set spec of demo tenant of %s: %w", instanceID, err)
	}
	return nil
}

// SetDemoMaintenance turns the demo application's maintenance on or off.
func (d *DB) SetDemoMaintenance(ctx context.Context, on bool) error {
	_, err := d.x.ExecContext(ctx, `
		INSERT INTO demo_settings (name, value) VALUES ('maintenance', $1)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, fmt.Sprint(on))
	if err != nil {
		return fmt.Errorf("set demo maintenance: %w", err)
	}
	return nil
}

// DemoMaintenance reports whether the demo application is in maintenance.
func (d *DB) DemoMaintenance(ctx context.Context) (bool, error) {
	var v string
	err := d.x.GetContext(ctx, &v, `SELECT value FROM demo_settings WHERE name = 'maintenance'`)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read demo maintenance: %w", err)
	}
	return v == "true", nil
}
