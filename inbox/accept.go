package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Call is a callback whose signature was verified and whose body was
// parsed: what the marketplace sent, the body as received, and when it
// sent it (the signed timestamp).
type Call struct {
	Request koogallery.Request
	Body    []byte
	SentAt  time.Time
	// UncheckedNonce is the call's nonce when the database, which
	// remembers nonces, could not be asked: the database is unreachable,
	// and the spool remembers the nonce instead.
	UncheckedNonce string
}

// Verdict is what Accept decided about a callback; the production
// interface answers it.
type Verdict int

// The verdicts.
const (
	// Accepted: the callback is durable (recorded, or spooled while the
	// database is away) and will reach its workflow.
	Accepted Verdict = iota
	// UnknownInstance: the callback names an instance no newInstance
	// created.
	UnknownInstance
	// UnknownLicenseCode: a license-code callback names a code no
	// activation recorded.
	UnknownLicenseCode
	// InstanceIDTaken: a newInstance's businessId already names another
	// order line's instance.
	InstanceIDTaken
	// Unavailable: nothing was recorded; the marketplace must send it
	// again.
	Unavailable
	// Replayed: the nonce was used before (found in the spool's memory
	// while the database is away).
	Replayed
	// ProvisioningParked: the newInstance is recorded, but provisioning
	// failed and waits for the merchant; answering a failure makes the
	// marketplace retry (and refund after 3 hours if it never succeeds).
	ProvisioningParked
)

// Acceptance is Accept's verdict and, for newInstance, the instance.
type Acceptance struct {
	Verdict    Verdict
	InstanceID string
	// Provisioned is set when a V1 newInstance saw its tenant exist
	// (AcceptV1): only then can its answer carry the access information.
	Provisioned bool
}

// directSignalTimeout bounds a signal sent while the marketplace waits for
// the answer (a parked provisioning retried on newInstance's redelivery).
const directSignalTimeout = 3 * time.Second

// Accept takes a verified callback that changes an instance or a license
// code (or an orderNotify) and decides its fate: spooled callbacks are recorded first,
// then the callback is recorded under its key and handed to the dispatcher;
// when the database cannot take it, a callback the marketplace may send
// only once goes to the spool. Accepted means durable: delivery to the
// workflow happens in the background, and the answer never waits for
// Temporal. A newInstance may wait up to NewInstanceWait for provisioning.
// ctx bounds everything Accept waits for.
func (ib *Inbox) Accept(ctx context.Context, call Call) Acceptance {
	if call.UncheckedNonce != "" {
		return ib.spoolOrRefuse(call)
	}
	if err := ib.recordSpooledFirst(ctx); err != nil {
		ib.logger().Error("Spooled callbacks not recorded; this callback waits behind them",
			"activity", call.Request.Activity(), "error", err)
		return ib.spoolOrRefuse(call)
	}
	rec, err := ib.Record(ctx, call.Request, call.Body, call.SentAt)
	switch {
	case errors.Is(err, store.ErrUnknownInstance):
		return Acceptance{Verdict: UnknownInstance}
	case errors.Is(err, store.ErrUnknownLicenseCode):
		return Acceptance{Verdict: UnknownLicenseCode}
	case errors.Is(err, store.ErrInstanceIDTaken):
		return Acceptance{Verdict: InstanceIDTaken}
	case err != nil:
		ib.logger().Error("Callback not recorded", "activity", call.Request.Activity(), "error", err)
		return ib.spoolOrRefuse(call)
	}
	if !rec.Fresh {
		ib.logger().Info("Callback redelivered", "activity", call.Request.Activity(), "seq", rec.Callback.Seq,
			"redeliveries", rec.Callback.Redeliveries, "delivered", rec.Callback.Delivered())
	}
	ib.Dispatch(rec)

	if _, ok := call.Request.(*koogallery.NewInstanceRequest); !ok {
		return Acceptance{Verdict: Accepted}
	}
	var retriedAt int64
	if !rec.Fresh {
		retriedAt = ib.retryParkedProvisioning(ctx, rec)
	}
	if ib.awaitProvisioning(ctx, rec.Key.InstanceID, retriedAt) == provisioningParked {
		return Acceptance{Verdict: ProvisioningParked, InstanceID: rec.Key.InstanceID}
	}
	return Acceptance{Verdict: Accepted, InstanceID: rec.Key.InstanceID}
}

// spoolOrRefuse handles a callback the database could not take. One the
// marketplace may send only once goes to the local spool, which is durable
// (DrainSpool records it once Postgres is back); any other is refused, and
// the marketplace sends it again.
func (ib *Inbox) spoolOrRefuse(call Call) Acceptance {
	refused := Acceptance{Verdict: Unavailable}
	_, keyErr := DedupKey(call.Request)
	if ib.Spool == nil || keyErr != nil || !koogallery.DeliveryOf(call.Request).MustNotFail() {
		return refused
	}
	if call.UncheckedNonce != "" {
		fresh, err := ib.Spool.ClaimNonce(call.UncheckedNonce)
		if err != nil {
			ib.logger().Error("Spool unavailable", "error", err)
			return refused
		}
		if !fresh {
			return Acceptance{Verdict: Replayed}
		}
	}
	if err := ib.Spool.Put(call.Body, time.Now(), call.SentAt); err != nil {
		ib.logger().Error("Spool unavailable", "error", err)
		return refused
	}
	ib.logger().Warn("Callback spooled to local disk while the database is unreachable", "activity", call.Request.Activity())
	return Acceptance{Verdict: Accepted}
}

// recordSpooledFirst records the callbacks spooled while the database was
// away before a new one is recorded. They arrived first, and the inbox's
// seq must stay arrival order: recorded after this one, an older renewal or
// status change would be applied last and undo it. Until the spool can be
// drained, new callbacks wait behind it (spooled, or refused).
func (ib *Inbox) recordSpooledFirst(ctx context.Context) error {
	if ib.Spool == nil {
		return nil
	}
	if n, err := ib.Spool.Backlog(); err != nil || n == 0 {
		// An unreadable spool holds nothing that could be recorded.
		return nil
	}
	_, err := ib.DrainSpool(ctx, ib.Spool)
	return err
}

// provisioningOutcome is what awaitProvisioning saw.
type provisioningOutcome int

const (
	provisioningPending provisioningOutcome = iota // still going (or not waited for)
	provisioningDone                               // the tenant exists
	provisioningParked                             // provisioning failed and waits for an operator
)

// awaitProvisioning waits up to NewInstanceWait for the instance's tenant,
// so that a provisioning failure is answered 000005 and KooGallery's own
// retries (and its refund after 3 hours) apply. With no wait configured,
// or when provisioning is merely slow, newInstance is answered at once and
// provisioning continues (contract §1.2). A parked state saved at or before
// revision staleUpTo is the failure a retry was just asked for, not news.
func (ib *Inbox) awaitProvisioning(ctx context.Context, instanceID string, staleUpTo int64) provisioningOutcome {
	return ib.awaitProvisioningFor(ctx, instanceID, staleUpTo, ib.NewInstanceWait)
}

// awaitProvisioningFor is awaitProvisioning waiting up to wait.
func (ib *Inbox) awaitProvisioningFor(ctx context.Context, instanceID string, staleUpTo int64, wait time.Duration) provisioningOutcome {
	if wait <= 0 || ib.ReadModel == nil {
		return provisioningPending
	}
	// The wait also ends with ctx (the answer's budget).
	deadline := time.Now().Add(wait)
	for {
		views, err := ib.ReadModel.LookupInstances(ctx, []string{instanceID})
		if err != nil {
			return provisioningPending
		}
		if inst := views[instanceID].Instance; inst != nil {
			switch {
			case inst.FrontEndURL != "":
				return provisioningDone
			case inst.Revision > staleUpTo &&
				(inst.State == string(workflows.StateParked) || inst.State == string(workflows.StateFailed)):
				return provisioningParked
			}
		}
		if time.Now().After(deadline) {
			return provisioningPending
		}
		select {
		case <-ctx.Done():
			return provisioningPending
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// retryParkedProvisioning turns KooGallery's redelivery of newInstance into
// a retry of a provisioning that parked: the marketplace retrying is the
// moment to try again. It is recorded in the instance's timeline. It
// returns the read model's revision when it asked for a retry, else 0.
func (ib *Inbox) retryParkedProvisioning(ctx context.Context, rec store.Recorded) int64 {
	if ib.ReadModel == nil {
		return 0
	}
	inst, err := ib.ReadModel.Instance(ctx, rec.Key.InstanceID)
	if err != nil || inst.State != string(workflows.StateParked) {
		return 0
	}
	var d activities.InstanceDetails
	if json.Unmarshal(inst.Details, &d) != nil || d.Parked == nil ||
		(d.Parked.Step != workflows.StepProvision && d.Parked.Step != workflows.StepFetchOrder) {
		return 0
	}
	op := workflows.OperatorRequest{
		ID:     fmt.Sprintf("redelivery-%d-%d", rec.Callback.Seq, rec.Callback.Redeliveries),
		Name:   workflows.OpRetry,
		Reason: "KooGallery sent newInstance again",
		Actor:  "koogallery",
		At:     time.Now().UTC(),
	}
	sctx, cancel := context.WithTimeout(ctx, directSignalTimeout)
	defer cancel()
	if err := ib.Temporal.SignalWorkflow(sctx, workflows.InstanceWorkflowID(rec.Key.InstanceID), "", workflows.OperatorSignal, op); err != nil {
		ib.logger().Warn("Parked provisioning not retried on redelivery", "instanceId", rec.Key.InstanceID, "error", err)
		return 0
	}
	ib.logger().Info("Parked provisioning retried on KooGallery's redelivery", "instanceId", rec.Key.InstanceID)
	return inst.Revision
}
