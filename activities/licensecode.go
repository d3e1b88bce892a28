package activities

import (
	"context"

	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
)

// License codes (contract §13.5): each activated code has a workflow that
// applies the marketplace's callbacks; these are its two side effects.

// LicenseCodeChange is what the application is told of a code's change;
// its OperationID keys the change.
type LicenseCodeChange = provisioner.LicenseCodeRequest

// LicenseCodeState is the code's state as its workflow saves it.
type LicenseCodeState = store.LicenseCodeState

// NotifyLicenseCode tells the merchant's application what happened to a
// code. A refusal the application says is permanent is not retried: the
// workflow shows it and waits for an operator.
func (a *Activities) NotifyLicenseCode(ctx context.Context, in LicenseCodeChange) error {
	return provisionerError(a.Provisioner.LicenseCodeChanged(ctx, in))
}

// SaveLicenseCode saves the code's state for the software's checks (GET
// /v1/licenses/{license}); an older revision changes nothing.
func (a *Activities) SaveLicenseCode(ctx context.Context, in LicenseCodeState) error {
	return a.Store.LicenseCodes.SaveLicenseCodeState(ctx, in)
}

// A code's statuses (store.License*) and the events the application is
// told of (provisioner.LicenseCode*), named here for the workflow.
const (
	LicenseCodeActive   = store.LicenseActive
	LicenseCodeExpired  = store.LicenseExpired
	LicenseCodeFrozen   = store.LicenseFrozen
	LicenseCodeReleased = store.LicenseReleased

	EventLicenseCodeActivated       = provisioner.LicenseCodeActivated
	EventLicenseCodeRenewed         = provisioner.LicenseCodeRenewed
	EventLicenseCodeRenewalRefunded = provisioner.LicenseCodeRenewalRefunded
	EventLicenseCodeExpired         = provisioner.LicenseCodeExpired
	EventLicenseCodeFrozen          = provisioner.LicenseCodeFrozen
	EventLicenseCodeUnfrozen        = provisioner.LicenseCodeUnfrozen
	EventLicenseCodeReleased        = provisioner.LicenseCodeReleased
)
