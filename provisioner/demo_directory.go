package provisioner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The demo application's side of the directory (directory.go): it keeps
// the enterprises, app credentials (only the secret's SHA-256), users and
// departments of its tenants, and shows a tenant's authorised users on its
// page. Like the other operations, each fails while the demo application is
// in maintenance, and for an instance whose tenant is missing or released.

// SyncEnterprise implements Provisioner.
func (d *Demo) SyncEnterprise(ctx context.Context, req EnterpriseRequest) error {
	if err := d.directoryReady(ctx, "directory/enterprise", req.DirectoryRequest); err != nil {
		return err
	}
	return d.Store.SetEnterprise(ctx, req.InstanceID, req.TenantID, req.Enterprise, req.Action == ActionDelete)
}

// SyncApp implements Provisioner.
func (d *Demo) SyncApp(ctx context.Context, req AppRequest) error {
	if err := d.directoryReady(ctx, "directory/app", req.DirectoryRequest); err != nil {
		return err
	}
	if req.App.AppID == "" {
		return Permanent("directory/app", "appId is empty")
	}
	return d.Store.SetApp(ctx, req.InstanceID, req.TenantID, req.App, req.Action == ActionDelete)
}

// SyncUsers implements Provisioner.
func (d *Demo) SyncUsers(ctx context.Context, req UsersRequest) error {
	if err := d.directoryReady(ctx, "directory/users", req.DirectoryRequest); err != nil {
		return err
	}
	return d.Store.SetUsers(ctx, req.InstanceID, req.TenantID, req.AppID, req.Users, req.Action)
}

// SyncDepartments implements Provisioner.
func (d *Demo) SyncDepartments(ctx context.Context, req DepartmentsRequest) error {
	if err := d.directoryReady(ctx, "directory/departments", req.DirectoryRequest); err != nil {
		return err
	}
	return d.Store.SetDepartments(ctx, req.InstanceID, req.TenantID, req.Departments, req.Full, req.Action == ActionDelete)
}

// directoryReady refuses a directory operation that cannot be carried
// out: maintenance, a request without its enterprise or a known action,
// an instance without a live tenant.
func (d *Demo) directoryReady(ctx context.Context, op string, req DirectoryRequest) error {
	if err := d.available(ctx, op); err != nil {
		return err
	}
	if req.TenantID == "" {
		return Permanent(op, "tenantId is empty")
	}
	switch req.Action {
	case ActionUpsert, ActionDelete, ActionRevoke:
	default:
		return Permanent(op, "unknown action %q", req.Action)
	}
	_, err := d.liveTenant(ctx, op, req.InstanceID)
	return err
}

// SetEnterprise records an enterprise bound to an instance, or its unbinding.
func (s *DemoStore) SetEnterprise(ctx context.Context, instanceID, tenantID string, e Enterprise, deleted bool) error {
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO demo.enterprises (instance_id, tenant_id, tenant_code, name, domain_name, deleted)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (instance_id, tenant_id) DO UPDATE SET deleted = EXCLUDED.deleted,
			tenant_code = CASE WHEN EXCLUDED.deleted THEN demo.enterprises.tenant_code ELSE EXCLUDED.tenant_code END,
			name = CASE WHEN EXCLUDED.deleted THEN demo.enterprises.name ELSE EXCLUDED.name END,
			domain_name = CASE WHEN EXCLUDED.deleted THEN demo.enterprises.domain_name ELSE EXCLUDED.domain_name END`,
		instanceID, tenantID, e.TenantCode, e.Name, e.DomainName, deleted)
	if err != nil {
		return fmt.Errorf("set demo enterprise %s of %s: %w", tenantID, instanceID, err)
	}
	return nil
}

// SetApp records an app credential (its secret's SHA-256 only), or its
// deletion.
func (s *DemoStore) SetApp(ctx context.Context, instanceID, tenantID string, app AppCredential, deleted bool) error {
	sum := ""
	if app.ClientSecret != "" {
		h := sha256.Sum256([]byte(app.ClientSecret))
		sum = hex.EncodeToString(h[:])
	}
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO demo.app_credentials (instance_id, tenant_id, app_id, client_id, secret_sha256, deleted)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (instance_id, tenant_id, app_id) DO UPDATE SET deleted = EXCLUDED.deleted,
			client_id = CASE WHEN EXCLUDED.deleted THEN demo.app_credentials.client_id ELSE EXCLUDED.client_id END,
			secret_sha256 = CASE WHEN EXCLUDED.deleted THEN demo.app_credentials.secret_sha256 ELSE EXCLUDED.secret_sha256 END`,
		instanceID, tenantID, app.AppID, app.ClientID, sum, deleted)
	if err != nil {
		return fmt.Errorf("set demo app %s of %s: %w", app.AppID, instanceID, err)
	}
	return nil
}

// SetUsers applies an action to users of an app.
func (s *DemoStore) SetUsers(ctx context.Context, instanceID, tenantID, appID string, users []DirectoryUser, action string) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		for _, u := range users {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO demo.users (instance_id, tenant_id, app_id, user_name, name, org_code, role, enabled, state)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (instance_id, tenant_id, app_id, user_name) DO UPDATE SET state = EXCLUDED.state,
					name = CASE WHEN EXCLUDED.state = 'upsert' THEN EXCLUDED.name ELSE demo.users.name END,
					org_code = CASE WHEN EXCLUDED.state = 'upsert' THEN EXCLUDED.org_code ELSE demo.users.org_code END,
					role = CASE WHEN EXCLUDED.state = 'upsert' THEN EXCLUDED.role ELSE demo.users.role END,
					enabled = CASE WHEN EXCLUDED.state = 'upsert' THEN EXCLUDED.enabled ELSE demo.users.enabled END`,
				instanceID, tenantID, appID, u.UserName, u.Name, u.OrgCode, u.Role, u.Enabled, action); err != nil {
				return fmt.Errorf("set demo user %s of %s: %w", u.UserName, instanceID, err)
			}
		}
		return nil
	})
}

// SetDepartments applies department changes; with full, the list is the
// enterprise's whole list and departments it does not name are deleted.
func (s *DemoStore) SetDepartments(ctx context.Context, instanceID, tenantID string, deps []Department, full, deleted bool) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		codes := make([]string, 0, len(deps))
		for _, dep := range deps {
			codes = append(codes, dep.OrgCode)
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO demo.departments (instance_id, tenant_id, org_code, org_name, parent_code, deleted)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (instance_id, tenant_id, org_code) DO UPDATE SET deleted = EXCLUDED.deleted,
					org_name = CASE WHEN EXCLUDED.deleted THEN demo.departments.org_name ELSE EXCLUDED.org_name END,
					parent_code = CASE WHEN EXCLUDED.deleted THEN demo.departments.parent_code ELSE EXCLUDED.parent_code END`,
				instanceID, tenantID, dep.OrgCode, dep.OrgName, dep.ParentCode, deleted); err != nil {
				return fmt.Errorf("set demo department %s of %s: %w", dep.OrgCode, instanceID, err)
			}
		}
		if !full {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE demo.departments SET deleted = true
			WHERE instance_id = $1 AND tenant_id = $2 AND NOT (org_code = ANY($3))`, instanceID, tenantID, pq.Array(codes))
		if err != nil {
			return fmt.Errorf("delete departments missing from the list of %s: %w", instanceID, err)
		}
		return nil
	})
}

// AuthorisedUsers lists the user names that may use the app of an
// instance's tenant, in name order.
func (s *DemoStore) AuthorisedUsers(ctx context.Context, instanceID string) ([]string, error) {
	var names []string
	err := s.x.SelectContext(ctx, &names, `SELECT DISTINCT u.user_name FROM demo.users u
		JOIN demo.enterprises e ON e.instance_id = u.instance_id AND e.tenant_id = u.tenant_id AND NOT e.deleted
		WHERE u.instance_id = $1 AND u.state = 'upsert' AND u.enabled ORDER BY u.user_name`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("list authorised users of %s: %w", instanceID, err)
	}
	return names, nil
}

// DropDirectory deletes the directory of a released instance's tenant.
func (s *DemoStore) DropDirectory(ctx context.Context, instanceID string) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		for _, table := range []string{"demo.enterprises", "demo.app_credentials", "demo.users", "demo.departments"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE instance_id = $1`, instanceID); err != nil {
				return fmt.Errorf("drop the directory of %s (%s): %w", instanceID, table, err)
			}
		}
		return nil
	})
}

func (s *DemoStore) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.x.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
