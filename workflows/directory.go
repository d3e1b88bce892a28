package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// directory applies a 联营 kit sync (contract §12) to the merchant's
// application and the instance's directory, in the instance's arrival
// order like every callback. A failure parks the step like provisioning:
// the marketplace does not send the sync again by itself, so the server
// keeps it until an operator retries it (or skips it, once the application
// was fixed by hand).
func (r stepRunner) directory(ctx workflow.Context, key string, cb Callback) {
	w := r.w
	// Whatever the outcome, the application may hold part of the
	// directory: the release drops it.
	w.s.HasDirectory = true
	var done activities.DirectoryApplied
	in := activities.DirectoryInput{InstanceID: w.s.InstanceID, Seq: cb.Seq, Debug: w.s.Debug}
	switch r.run(ctx, StepDirectory, withRetryLimit(directoryOptions, w.s.Policy), acts.ApplyDirectorySync, in, &done) {
	case stepDone:
		w.record(ctx, key, "directory", cb.Activity+": "+done.Summary)
	case stepSkipped:
		w.record(ctx, key, "ignored", cb.Activity+" skipped by an operator; the application was not told.")
	default:
		w.record(ctx, key, "ignored", cb.Activity+" not applied: the instance is being released.")
	}
}
