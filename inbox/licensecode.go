package inbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// License codes (License授权码 2.0, contract §13.5): their callbacks are
// recorded under the code instead of an instance and delivered to the
// code's workflow, which the code's activation started.

// Outcomes recorded on license-code callbacks that apply nothing.
const (
	OutcomeLicenseCodeDebug  = "debugger call: recorded, nothing applied"
	OutcomeLicenseCodeClosed = "license-code workflow closed"
)

// ActivationCallback is the inbox row recorded with a code's activation
// (not a marketplace call): delivering it starts the code's workflow, so
// that a code activated is a code whose lifecycle runs, even when Temporal
// was away at the activation.
func ActivationCallback(license string, body []byte) store.NewCallback {
	return store.NewCallback{
		DedupKey: "activateLicenseCode:" + strconv.Quote(license), Activity: workflows.ActivityActivateLicenseCode,
		License: license, Body: body,
	}
}

// licenseCodeCallback maps a license-code callback to its inbox row. A
// renewal (or its refund) is one event per order line; a status change is
// keyed within the code's FREEZE/UNFREEZE episodes like an instance's; a
// code is released once. The code is quoted in the key: unlike an
// instanceId it may hold ':'.
func licenseCodeCallback(in store.NewCallback, req koogallery.LicenseCodeRequest) store.NewCallback {
	in.License = req.Code()
	code := strconv.Quote(req.Code())
	switch r := req.(type) {
	case *koogallery.RefreshLicenseCodeRequest:
		in.OrderID, in.OrderLineID = r.OrderID, r.OrderLineID
		in.Scene, in.ExpireTime, in.ProductID = string(r.Scene), r.ExpireTime, r.ProductID
		in.DedupKey = fmt.Sprintf("refreshLicenseCode:%s:%s:%s", code, r.OrderID, r.OrderLineID)
	case *koogallery.UpdateLicenseCodeStatusRequest:
		in.Status = string(r.Status)
		in.DedupKey = fmt.Sprintf("updateLicenseCodeStatus:%s:%s", code, r.Status)
	case *koogallery.ReleaseLicenseCodeRequest:
		in.OrderID, in.OrderLineID = r.OrderID, r.OrderLineID
		in.DedupKey = fmt.Sprintf("releaseLicenseCode:%s", code)
	}
	return in
}

// recordLicenseCodeCallback records a license-code callback. A debugger's
// call (testFlag 1) is recorded as a notice and applies nothing, whatever
// code it names: the seller console's debugger has no code of its own. A
// real one for a code no activation recorded is store.ErrUnknownLicenseCode.
func (ib *Inbox) recordLicenseCodeCallback(ctx context.Context, in store.NewCallback) (store.Recorded, error) {
	if in.Debug {
		in.License = ""
		cb, fresh, err := ib.Store.RecordNotice(ctx, in, OutcomeLicenseCodeDebug)
		return store.Recorded{Callback: cb, Fresh: fresh}, err
	}
	return ib.Store.RecordLicenseCodeCallback(ctx, in)
}

// deliverLicenseCode signals a recorded license-code callback to the
// code's workflow, starting it if needed from the code as activated. A
// workflow that closed (the code was released) is never started again.
func (ib *Inbox) deliverLicenseCode(ctx context.Context, cb store.Callback) error {
	signal, err := WorkflowCallback(cb)
	if err != nil {
		return ib.park(ctx, cb, fmt.Sprintf("the recorded callback can no longer be read: %v", err))
	}
	code, err := ib.background().LicenseCodeKey(ctx, cb.License)
	if err != nil {
		return ib.failed(ctx, cb, err)
	}
	_, err = ib.Temporal.SignalWithStartWorkflow(ctx, workflows.LicenseCodeWorkflowID(cb.License),
		workflows.CallbackSignal, signal, client.StartWorkflowOptions{
			ID:                    workflows.LicenseCodeWorkflowID(cb.License),
			TaskQueue:             ib.TaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		}, workflows.LicenseCodeWorkflowName, workflows.LicenseCodeInput{
			License: code.License, ProductID: code.ProductID, OrderID: code.OrderID, ExpireAt: code.ExpireTime,
			Status: code.Status,
		})
	return ib.delivered(ctx, cb, err)
}

// delivered records the outcome of a SignalWithStart of cb: delivered,
// kept as delivered to a workflow that closed, or failed.
func (ib *Inbox) delivered(ctx context.Context, cb store.Callback, err error) error {
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil || errors.As(err, &started):
		ib.lastSuccess.Store(time.Now().UnixNano())
	case temporalUnreachable(err):
		ib.lastFailure.Store(time.Now().UnixNano())
	}
	switch {
	case err == nil:
		return ib.background().MarkDelivered(context.WithoutCancel(ctx), cb.Seq, OutcomeSignalled)
	case errors.As(err, &started):
		outcome := OutcomeWorkflowClosed
		if cb.License != "" {
			outcome = OutcomeLicenseCodeClosed
		}
		ib.logger().Info("Callback for a closed workflow kept as delivered", "owner", cb.Owner(), "seq", cb.Seq, "activity", cb.Activity)
		return ib.background().MarkDelivered(context.WithoutCancel(ctx), cb.Seq, outcome)
	default:
		return ib.failed(ctx, cb, fmt.Errorf("signal %s: %w", cb.Owner(), err))
	}
}
