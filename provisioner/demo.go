package provisioner

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Demo tenant states.
const (
	demoActive  = "active"
	demoFrozen  = "frozen"
	demoDeleted = "deleted"
)

// Demo is the built-in provisioner for trying the server before the
// merchant's application implements the contract: it keeps tenants in
// Postgres (DemoStore, a schema of its own) and serves a small page per
// tenant (DemoHandler) that shows whether the tenant is usable. Debug
// purchases get tenants marked disposable.
type Demo struct {
	Store *DemoStore
	// PublicURL is where this server is reachable; tenant pages live under
	// it, at /demo/tenants/{tenantId}.
	PublicURL string
}

var _ Provisioner = (*Demo)(nil)

// demoMemo is shown to the buyer; it is Chinese on purpose, since the
// marketplace wants non-ASCII memo text escaped (contract §1.3).
const demoMemo = "演示租户 (demo tenant) created by the built-in demo provisioner."

// Provision creates the instance's tenant. Passwords are stored only as a
// salted hash, so when the tenant exists already (a retried call) a new
// initial password is set and returned: the last one returned is valid.
func (d *Demo) Provision(ctx context.Context, req ProvisionRequest) (Tenant, error) {
	if req.InstanceID == "" {
		return Tenant{}, Permanent("provision", "instanceId is empty")
	}
	if err := d.available(ctx, "provision"); err != nil {
		return Tenant{}, err
	}
	password, salt, hash, err := newDemoPassword()
	if err != nil {
		return Tenant{}, err
	}
	t, err := d.Store.CreateTenant(ctx, DemoTenant{
		TenantID:     demoTenantID(req.InstanceID),
		InstanceID:   req.InstanceID,
		State:        demoActive,
		Debug:        req.Debug,
		SkuCode:      req.Spec.SkuCode,
		ProductID:    req.Spec.ProductID,
		LinearValue:  req.Spec.LinearValue,
		UserName:     "admin",
		PasswordSalt: salt,
		PasswordHash: hash,
	})
	if err != nil {
		return Tenant{}, err
	}
	if t.State == demoDeleted {
		return Tenant{}, Permanent("provision", "the tenant of instance %s was released", req.InstanceID)
	}
	if subtle.ConstantTimeCompare(t.PasswordHash, hash) != 1 {
		if err := d.Store.SetTenantPassword(ctx, req.InstanceID, salt, hash); err != nil {
			return Tenant{}, err
		}
	}
	memo := demoMemo
	if t.Debug {
		memo = "Disposable tenant for a debug call. " + demoMemo
	}
	base := strings.TrimRight(d.PublicURL, "/") + "/demo/tenants/" + t.TenantID
	return Tenant{
		FrontEndURL: base,
		AdminURL:    base + "/admin",
		UserName:    t.UserName,
		Password:    password,
		Memo:        memo,
	}, nil
}

// Freeze makes the tenant unusable, keeping its data.
func (d *Demo) Freeze(ctx context.Context, req TenantRequest) error {
	if err := d.available(ctx, "freeze"); err != nil {
		return err
	}
	return d.setState(ctx, "freeze", req.InstanceID, demoFrozen)
}

// Unfreeze makes the tenant usable again.
func (d *Demo) Unfreeze(ctx context.Context, req TenantRequest) error {
	if err := d.available(ctx, "unfreeze"); err != nil {
		return err
	}
	return d.setState(ctx, "unfreeze", req.InstanceID, demoActive)
}

// Release deletes the tenant; a tenant already gone is fine.
func (d *Demo) Release(ctx context.Context, req TenantRequest) error {
	if err := d.available(ctx, "release"); err != nil {
		return err
	}
	t, err := d.Store.Tenant(ctx, req.InstanceID)
	if errors.Is(err, ErrNoDemoTenant) || (err == nil && t.State == demoDeleted) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := d.Store.DropDirectory(ctx, req.InstanceID); err != nil {
		return err
	}
	return d.Store.SetTenantState(ctx, req.InstanceID, demoDeleted)
}

// Upgrade records the tenant's new spec.
func (d *Demo) Upgrade(ctx context.Context, req UpgradeRequest) error {
	if _, err := d.liveTenant(ctx, "upgrade", req.InstanceID); err != nil {
		return err
	}
	return d.Store.SetTenantSpec(ctx, req.InstanceID, req.Spec.SkuCode, req.Spec.ProductID, req.Spec.LinearValue)
}

// CheckChange allows a change unless the target quantity is below what the
// tenant uses (every demo tenant uses one seat: its administrator).
func (d *Demo) CheckChange(ctx context.Context, req ChangeRequest) (ChangeVerdict, error) {
	t, err := d.liveTenant(ctx, "check change", req.InstanceID)
	if err != nil {
		return ChangeVerdict{}, err
	}
	if req.Target.LinearValue != nil && *req.Target.LinearValue < t.UsedQuantity {
		return ChangeVerdict{Reason: fmt.Sprintf(
			"The tenant uses %d seats; the target spec allows %d. Remove users before downgrading.",
			t.UsedQuantity, *req.Target.LinearValue)}, nil
	}
	return ChangeVerdict{Allowed: true}, nil
}

// available refuses every tenant operation while the demo application is in
// maintenance (POST /v1/demo/maintenance): a permanent failure, so the step
// parks at once and an operator's retry finishes it afterwards.
func (d *Demo) available(ctx context.Context, op string) error {
	on, err := d.Store.Maintenance(ctx)
	if err != nil {
		return err
	}
	if on {
		return Permanent(op, "the demo application is down for maintenance")
	}
	return nil
}

func (d *Demo) setState(ctx context.Context, op, instanceID, state string) error {
	t, err := d.liveTenant(ctx, op, instanceID)
	if err != nil {
		return err
	}
	if t.State == state {
		return nil
	}
	return d.Store.SetTenantState(ctx, instanceID, state)
}

// liveTenant returns the instance's tenant unless it is missing or released.
func (d *Demo) liveTenant(ctx context.Context, op, instanceID string) (DemoTenant, error) {
	t, err := d.Store.Tenant(ctx, instanceID)
	if errors.Is(err, ErrNoDemoTenant) {
		return DemoTenant{}, Permanent(op, "instance %s has no tenant", instanceID)
	}
	if err != nil {
		return DemoTenant{}, err
	}
	if t.State == demoDeleted {
		return DemoTenant{}, Permanent(op, "the tenant of instance %s was released", instanceID)
	}
	return t, nil
}

// demoTenantID derives the tenant ID from the instance, so that a retried
// Provision finds the tenant it created.
func demoTenantID(instanceID string) string {
	sum := sha256.Sum256([]byte(instanceID))
	return "t-" + hex.EncodeToString(sum[:8])
}

// newDemoPassword draws a 16-character password (about 93 bits) and its
// salted SHA-256. A fast hash suffices for a random secret of that size.
func newDemoPassword() (password string, salt, hash []byte, err error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	// Bytes at or above the largest multiple of len(alphabet) are drawn
	// again, so that every character is equally likely.
	const limit = 256 / len(alphabet) * len(alphabet)
	pw := make([]byte, 0, 16)
	buf := make([]byte, 32)
	for len(pw) < 16 {
		if _, err := rand.Read(buf); err != nil {
			return "", nil, nil, fmt.Errorf("draw demo password: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(pw) < 16 {
				pw = append(pw, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	salt = make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", nil, nil, fmt.Errorf("draw demo password salt: %w", err)
	}
	return string(pw), salt, demoPasswordHash(salt, string(pw)), nil
}

func demoPasswordHash(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(nil)
}
