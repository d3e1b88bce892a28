// Package provisioner is the contract between the fulfillment server and the
// merchant's own SaaS application: create, freeze, unfreeze, upgrade and
// release the tenant of an instance, judge whether a spec change fits, and
// keep the directory the marketplace's 联营 kit synchronises (enterprises,
// app credentials, users, departments), and issue the licences of online
// licence products.
//
// Two implementations ship: Demo, a built-in stand-in that keeps tenants in
// Postgres, and HTTP, which calls the merchant's application with signed
// JSON requests (docs/provisioner.md describes the wire format).
//
// Every operation must be idempotent: the server retries on failure and may
// call an operation again after it succeeded. Return a *PermanentError for a
// request that can never succeed as sent; any other error is retried.
package provisioner

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Provisioner manages the tenants of the merchant's application.
type Provisioner interface {
	// Provision creates the tenant of an instance, or returns the one
	// already created for it, with credentials the buyer can log in with.
	Provision(ctx context.Context, req ProvisionRequest) (Tenant, error)
	// Freeze makes the tenant unusable while keeping all its data.
	Freeze(ctx context.Context, req TenantRequest) error
	// Unfreeze makes a frozen tenant usable again.
	Unfreeze(ctx context.Context, req TenantRequest) error
	// Upgrade applies a new spec to the tenant.
	Upgrade(ctx context.Context, req UpgradeRequest) error
	// Release deletes the tenant and its data. Releasing a tenant that is
	// already gone succeeds.
	Release(ctx context.Context, req TenantRequest) error
	// CheckChange says whether the tenant's current usage fits a target
	// spec (a downgrade must not lose data).
	CheckChange(ctx context.Context, req ChangeRequest) (ChangeVerdict, error)

	// The directory (directory.go): what the marketplace's 联营 kit
	// synchronises about the buyer's enterprise.

	// SyncEnterprise binds, updates or unbinds an enterprise.
	SyncEnterprise(ctx context.Context, req EnterpriseRequest) error
	// SyncApp sets or deletes the app's OAuth credential for an enterprise.
	SyncApp(ctx context.Context, req AppRequest) error
	// SyncUsers authorises, updates, revokes or deletes users.
	SyncUsers(ctx context.Context, req UsersRequest) error
	// SyncDepartments applies department changes or a full list.
	SyncDepartments(ctx context.Context, req DepartmentsRequest) error

	// IssueLicense issues the licence of a buyer's device for an online
	// licence (license.go); a repeat of the request (same OperationID)
	// gets the same licence.
	IssueLicense(ctx context.Context, req LicenseRequest) (License, error)

	// LicenseCodeChanged tells the application what happened to a license
	// code (licensecode.go): activated, renewed, frozen, released…; a
	// repeat of the request (same OperationID) changes nothing more.
	LicenseCodeChanged(ctx context.Context, req LicenseCodeRequest) error
}

// Spec is a purchased specification.
type Spec struct {
	SkuCode     string `json:"skuCode,omitempty"`
	ProductID   string `json:"productId,omitempty"`
	LinearValue *int64 `json:"linearValue,omitempty"`
}

// Customer is the buyer of an instance.
type Customer struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// ProvisionRequest creates a tenant. Debug marks a console-debugger or
// probing purchase: create nothing real, or something disposable.
type ProvisionRequest struct {
	InstanceID   string     `json:"instanceId"`
	OrderID      string     `json:"orderId"`
	OrderLineID  string     `json:"orderLineId"`
	ChargingMode string     `json:"chargingMode,omitempty"`
	PeriodType   string     `json:"periodType,omitempty"`
	PeriodNumber int        `json:"periodNumber,omitempty"`
	ExpireTime   *time.Time `json:"expireTime,omitempty"`
	Spec         Spec       `json:"spec"`
	Customer     Customer   `json:"customer"`
	Debug        bool       `json:"debug"`
}

// Tenant is what the buyer is given to use the product. UserName and
// Password are the initial administrator credentials.
type Tenant struct {
	FrontEndURL string `json:"frontEndUrl"`
	AdminURL    string `json:"adminUrl,omitempty"`
	UserName    string `json:"userName,omitempty"`
	Password    string `json:"password,omitempty"`
	Memo        string `json:"memo,omitempty"`
}

// TenantRequest names the tenant of an instance; Reason says why the
// operation happens (for the application's own audit).
type TenantRequest struct {
	InstanceID string `json:"instanceId"`
	Debug      bool   `json:"debug"`
	Reason     string `json:"reason,omitempty"`
	// OperationID names this operation ("freeze:<instanceId>:<n>"): the
	// same for every retry of it, another for the next freeze of the same
	// tenant. It is the request's idempotency key.
	OperationID string `json:"operationId,omitempty"`
}

// UpgradeRequest applies the spec of an upgrade order.
type UpgradeRequest struct {
	InstanceID string `json:"instanceId"`
	OrderID    string `json:"orderId"`
	Debug      bool   `json:"debug"`
	Spec       Spec   `json:"spec"`
}

// ChangeRequest asks whether the tenant fits a target spec.
type ChangeRequest struct {
	InstanceID string `json:"instanceId"`
	Debug      bool   `json:"debug"`
	Current    Spec   `json:"current"`
	Target     Spec   `json:"target"`
}

// ChangeVerdict answers a ChangeRequest; Reason is shown to the buyer when
// the change is not allowed.
type ChangeVerdict struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
}

// PermanentError is a failure that retrying cannot fix: the instance is
// unknown, the request is invalid, the tenant was already released.
type PermanentError struct {
	Op  string
	Msg string
}

func (e *PermanentError) Error() string { return fmt.Sprintf("%s: %s", e.Op, e.Msg) }

// Permanent returns a *PermanentError for operation op.
func Permanent(op, format string, args ...any) error {
	return &PermanentError{Op: op, Msg: fmt.Sprintf(format, args...)}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
