package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// license applies a getLicenseAsync (contract §13.4) in the instance's
// arrival order: the merchant's licence generator issues the device's
// licence, and it is uploaded to the marketplace. A failure parks the step
// like provisioning: the marketplace waits for the upload and sends no
// reminder, so the server keeps the request until an operator retries it
// (or skips it).
func (r stepRunner) license(ctx workflow.Context, key string, cb Callback) {
	w := r.w
	switch w.s.State {
	case StateProvisioning, StateFailed, StateReleased:
		w.record(ctx, key, "ignored", fmt.Sprintf("getLicenseAsync while %s: no licence issued.", w.s.State))
		return
	case StateFrozen, StateReleaseOverdue:
		w.record(ctx, key, "ignored", "getLicenseAsync while the instance is frozen: no licence issued.")
		return
	}
	in := activities.LicenseInput{InstanceID: w.s.InstanceID, Seq: cb.Seq, Debug: w.s.Debug, Quota: w.s.licenseQuota()}
	var done activities.LicenseIssued
	switch r.run(ctx, StepLicense, withRetryLimit(licenseOptions, w.s.Policy), acts.IssueLicense, in, &done) {
	case stepDone:
		if done.Refused != "" {
			w.record(ctx, key, "ignored", "getLicenseAsync: no licence issued: "+done.Refused+".")
			return
		}
		w.record(ctx, key, "license", done.Summary)
	case stepSkipped:
		w.record(ctx, key, "ignored", "getLicenseAsync skipped by an operator; no licence was uploaded.")
	default:
		w.record(ctx, key, "ignored", "getLicenseAsync not applied: the instance is being released.")
	}
}

// licenseQuota is how many devices the order allows: its linear value
// (the number of licences bought), 1 without one, and no limit for a
// debug instance without an order (contract §13.2).
func (s *Snapshot) licenseQuota() int64 {
	switch {
	case s.Order == nil || (s.Debug && s.Order.ProductID == ""):
		return 0
	case s.Order.LinearValue != nil && *s.Order.LinearValue > 0:
		return *s.Order.LinearValue
	default:
		return 1
	}
}
