package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The directory of an instance: the enterprises the marketplace's 联营 kit
// bound to it, their app credentials, authorised users and departments, as
// the syncs applied to the merchant's application left them (contract §12).
// A sync never deletes a row: deleting marks it, so that operators see what
// happened. Drop removes an instance's whole directory when it is released.

// Directory states.
const (
	DirectoryActive     = "active"
	DirectoryDeleted    = "deleted"
	DirectoryAuthorized = "authorized"
	DirectoryRevoked    = "revoked"
)

// DirectoryTenant is an enterprise bound to an instance.
type DirectoryTenant struct {
	TenantID   string `db:"tenant_id" json:"tenantId"`
	TenantCode string `db:"tenant_code" json:"tenantCode"`
	Name       string `db:"name" json:"name"`
	DomainName string `db:"domain_name" json:"domainName"`
	State      string `db:"state" json:"state"`
}

// DirectoryApp is an app credential of an enterprise. The sealed secret
// is never shown; its SHA-256 is.
type DirectoryApp struct {
	TenantID           string `db:"tenant_id" json:"-"`
	AppID              string `db:"app_id" json:"appId"`
	ClientID           string `db:"client_id" json:"clientId"`
	ClientSecretSealed string `db:"client_secret_sealed" json:"-"`
	ClientSecretSHA256 string `db:"client_secret_sha256" json:"clientSecretSha256"`
	DecryptedWith      string `db:"decrypted_with" json:"decryptedWith,omitempty"`
	State              string `db:"state" json:"state"`
}

// DirectoryUser is a user of an enterprise and app. Details holds the
// optional fields as JSON.
type DirectoryUser struct {
	TenantID string `db:"tenant_id" json:"-"`
	AppID    string `db:"app_id" json:"appId"`
	UserName string `db:"user_name" json:"userName"`
	Name     string `db:"name" json:"name"`
	OrgCode  string `db:"org_code" json:"orgCode"`
	Role     string `db:"role" json:"role"`
	Enable   bool   `db:"enable" json:"enable"`
	Details  []byte `db:"details" json:"-"`
	State    string `db:"state" json:"state"`
	// SyncTime is the currentSyncTime of the sync that last set the user.
	SyncTime string `db:"sync_time" json:"syncTime,omitempty"`
}

// DirectoryOrg is a department of an enterprise.
type DirectoryOrg struct {
	TenantID   string `db:"tenant_id" json:"-"`
	OrgCode    string `db:"org_code" json:"orgCode"`
	OrgName    string `db:"org_name" json:"orgName"`
	ParentCode string `db:"parent_code" json:"parentCode"`
	State      string `db:"state" json:"state"`
}

// DirectoryOf is an instance's whole directory.
type DirectoryOf struct {
	Tenants []DirectoryTenant
	Apps    []DirectoryApp
	Users   []DirectoryUser
	Orgs    []DirectoryOrg
}

// SetTenant records an enterprise's binding, change or unbinding. An
// unbinding keeps the enterprise's last details.
func (s *Directory) SetTenant(ctx context.Context, instanceID string, seq int64, t DirectoryTenant) error {
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO directory_tenants (instance_id, tenant_id, tenant_code, name, domain_name, state, applied_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (instance_id, tenant_id) DO UPDATE SET state = EXCLUDED.state, applied_seq = EXCLUDED.applied_seq,
			tenant_code = CASE WHEN EXCLUDED.state = 'deleted' THEN directory_tenants.tenant_code ELSE EXCLUDED.tenant_code END,
			name = CASE WHEN EXCLUDED.state = 'deleted' THEN directory_tenants.name ELSE EXCLUDED.name END,
			domain_name = CASE WHEN EXCLUDED.state = 'deleted' THEN directory_tenants.domain_name ELSE EXCLUDED.domain_name END,
			updated_at = now()`,
		instanceID, t.TenantID, t.TenantCode, t.Name, t.DomainName, t.State, seq)
	if err != nil {
		return fmt.Errorf("set enterprise %s of %s: %w", t.TenantID, instanceID, err)
	}
	return nil
}

// SetApp records an app credential or its deletion (which keeps the last
// client ID and the secret's digest, and forgets the sealed secret).
func (s *Directory) SetApp(ctx context.Context, instanceID string, seq int64, a DirectoryApp) error {
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO directory_apps (instance_id, tenant_id, app_id, client_id, client_secret_sealed,
			client_secret_sha256, decrypted_with, state, applied_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (instance_id, tenant_id, app_id) DO UPDATE SET state = EXCLUDED.state, applied_seq = EXCLUDED.applied_seq,
			client_id = CASE WHEN EXCLUDED.state = 'deleted' THEN directory_apps.client_id ELSE EXCLUDED.client_id END,
			client_secret_sealed = EXCLUDED.client_secret_sealed,
			client_secret_sha256 = CASE WHEN EXCLUDED.state = 'deleted' THEN directory_apps.client_secret_sha256
				ELSE EXCLUDED.client_secret_sha256 END,
			decrypted_with = CASE WHEN EXCLUDED.state = 'deleted' THEN directory_apps.decrypted_with ELSE EXCLUDED.decrypted_with END,
			updated_at = now()`,
		instanceID, a.TenantID, a.AppID, a.ClientID, a.ClientSecretSealed, a.ClientSecretSHA256, a.DecryptedWith, a.State, seq)
	if err != nil {
		return fmt.Errorf("set app %s of %s: %w", a.AppID, instanceID, err)
	}
	return nil
}

// NewerUsers returns which of the named users of an enterprise's app were
// last set by a sync newer than syncTime: an older sync must not undo it.
func (s *Directory) NewerUsers(ctx context.Context, instanceID, tenantID, appID, syncTime string, names []string) ([]string, error) {
	var newer []string
	err := s.x.SelectContext(ctx, &newer, `SELECT user_name FROM directory_users
		WHERE instance_id = $1 AND tenant_id = $2 AND app_id = $3 AND user_name = ANY($4) AND sync_time > $5
		ORDER BY user_name`, instanceID, tenantID, appID, pq.Array(names), syncTime)
	if err != nil {
		return nil, fmt.Errorf("read users of %s: %w", instanceID, err)
	}
	return newer, nil
}

// SetUsers records users' authorisation, change, revocation or deletion,
// all in one transaction. A user last set by a newer sync is left as it
// is. Revoking or deleting keeps the user's last details.
func (s *Directory) SetUsers(ctx context.Context, instanceID string, seq int64, users []DirectoryUser) error {
	return inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		for _, u := range users {
			details := u.Details
			if len(details) == 0 {
				details = []byte("{}")
			}
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO directory_users (instance_id, tenant_id, app_id, user_name, name, org_code, role, enable,
					details, state, sync_time, applied_seq)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
				ON CONFLICT (instance_id, tenant_id, app_id, user_name) DO UPDATE SET state = EXCLUDED.state,
					sync_time = EXCLUDED.sync_time, applied_seq = EXCLUDED.applied_seq, updated_at = now(),
					name = CASE WHEN EXCLUDED.state = 'authorized' THEN EXCLUDED.name ELSE directory_users.name END,
					org_code = CASE WHEN EXCLUDED.state = 'authorized' THEN EXCLUDED.org_code ELSE directory_users.org_code END,
					role = CASE WHEN EXCLUDED.state = 'authorized' THEN EXCLUDED.role ELSE directory_users.role END,
					enable = CASE WHEN EXCLUDED.state = 'authorized' THEN EXCLUDED.enable ELSE directory_users.enable END,
					details = CASE WHEN EXCLUDED.state = 'authorized' THEN EXCLUDED.details ELSE directory_users.details END
				WHERE directory_users.sync_time <= EXCLUDED.sync_time`,
				instanceID, u.TenantID, u.AppID, u.UserName, u.Name, u.OrgCode, u.Role, u.Enable,
				details, u.State, u.SyncTime, seq); err != nil {
				return fmt.Errorf("set user %s of %s: %w", u.UserName, instanceID, err)
			}
		}
		return nil
	})
}

// SetOrgs records departments added, changed or deleted (state). With
// full, orgs is the enterprise's whole list: its departments not in it are
// marked deleted.
func (s *Directory) SetOrgs(ctx context.Context, instanceID, tenantID string, seq int64, orgs []DirectoryOrg, full bool) error {
	return inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		codes := make([]string, 0, len(orgs))
		for _, o := range orgs {
			codes = append(codes, o.OrgCode)
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO directory_orgs (instance_id, tenant_id, org_code, org_name, parent_code, state, applied_seq)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (instance_id, tenant_id, org_code) DO UPDATE SET state = EXCLUDED.state,
					applied_seq = EXCLUDED.applied_seq, updated_at = now(),
					org_name = CASE WHEN EXCLUDED.state = 'deleted' THEN directory_orgs.org_name ELSE EXCLUDED.org_name END,
					parent_code = CASE WHEN EXCLUDED.state = 'deleted' THEN directory_orgs.parent_code ELSE EXCLUDED.parent_code END`,
				instanceID, tenantID, o.OrgCode, o.OrgName, o.ParentCode, o.State, seq); err != nil {
				return fmt.Errorf("set department %s of %s: %w", o.OrgCode, instanceID, err)
			}
		}
		if !full {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE directory_orgs SET state = 'deleted', applied_seq = $4, updated_at = now()
			WHERE instance_id = $1 AND tenant_id = $2 AND state <> 'deleted' AND NOT (org_code = ANY($3))`,
			instanceID, tenantID, pq.Array(codes), seq); err != nil {
			return fmt.Errorf("delete the departments missing from the list of %s: %w", instanceID, err)
		}
		return nil
	})
}

// Of reads an instance's directory, each part ordered by its keys.
func (s *Directory) Of(ctx context.Context, instanceID string) (DirectoryOf, error) {
	var d DirectoryOf
	queries := []struct {
		dest  any
		query string
	}{
		{&d.Tenants, `SELECT tenant_id, tenant_code, name, domain_name, state FROM directory_tenants
			WHERE instance_id = $1 ORDER BY tenant_id`},
		{&d.Apps, `SELECT tenant_id, app_id, client_id, client_secret_sealed, client_secret_sha256, decrypted_with, state
			FROM directory_apps WHERE instance_id = $1 ORDER BY tenant_id, app_id`},
		{&d.Users, `SELECT tenant_id, app_id, user_name, name, org_code, role, enable, details, state, sync_time
			FROM directory_users WHERE instance_id = $1 ORDER BY tenant_id, app_id, user_name`},
		{&d.Orgs, `SELECT tenant_id, org_code, org_name, parent_code, state FROM directory_orgs
			WHERE instance_id = $1 ORDER BY tenant_id, org_code`},
	}
	for _, q := range queries {
		if err := s.x.SelectContext(ctx, q.dest, q.query, instanceID); err != nil {
			return DirectoryOf{}, fmt.Errorf("read the directory of %s: %w", instanceID, err)
		}
	}
	return d, nil
}

// Drop deletes an instance's directory: it is released, and its data goes
// with it.
func (s *Directory) Drop(ctx context.Context, instanceID string) error {
	return inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		for _, table := range []string{"directory_users", "directory_apps", "directory_orgs", "directory_tenants"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE instance_id = $1`, instanceID); err != nil {
				return fmt.Errorf("drop the directory of %s (%s): %w", instanceID, table, err)
			}
		}
		return nil
	})
}
