// Package inbox is the durable acknowledgement of marketplace callbacks: it
// records each verified callback in Postgres under a key derived from the
// callback (so a redelivery is the same row), delivers it to the instance's
// workflow with SignalWithStart from a background dispatcher, and relays
// whatever could not be delivered at once, in arrival order per instance,
// until Temporal has it.
package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Signaller is the part of the Temporal client the inbox uses.
type Signaller interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
}

// Inbox records and delivers callbacks.
type Inbox struct {
	// Store records callbacks: the marketplace's answer waits for it.
	Store *store.DB
	// Background is the pool of the delivery work (dispatcher, relay), so
	// that an answer never queues for a connection behind it; nil: Store.
	Background *store.DB
	Temporal   Signaller
	TaskQueue  string
	Logger     *slog.Logger
	// DirectGrace is how long the relay leaves a fresh callback to the
	// dispatcher before trying itself; the dispatcher drops what waited
	// longer in its queue, so the two do not both send it.
	DirectGrace time.Duration

	// lastFailure is when a delivery last failed (unix nanoseconds), and
	// lastSuccess when one last succeeded: while Temporal is away the
	// dispatcher skips its own attempts and leaves them to the relay.
	lastFailure, lastSuccess atomic.Int64

	// dispatch is the background delivery, once StartDispatcher ran.
	dispatch atomic.Pointer[dispatcher]
}

// breakerPause is how long after a failed delivery, with no success since,
// the dispatcher leaves delivery to the relay instead of waiting on an
// unreachable Temporal.
const breakerPause = 5 * time.Second

// ErrDeliveryDeferred means the callback is recorded and its delivery left
// to the relay.
var ErrDeliveryDeferred = errors.New("delivery deferred to the relay")

// Outcomes recorded on delivered callbacks.
const (
	OutcomeSignalled      = "signalled"
	OutcomeWorkflowClosed = "instance workflow closed"
	OutcomeNotice         = "recorded"
)

// DedupKey derives the inbox key of a callback: the same key for every
// redelivery of one marketplace event, a different key for another event.
// Status changes are completed with their episode by the store.
func DedupKey(req koogallery.Request) (string, error) {
	switch r := req.(type) {
	case *koogallery.NewInstanceRequest:
		return fmt.Sprintf("newInstance:%s:%s", r.OrderID, r.OrderLineID), nil
	case *koogallery.RefreshInstanceRequest:
		// One renewal (or refund) order changes the expiry once (SPEC §1.4).
		return fmt.Sprintf("refreshInstance:%s:%s:%s", r.InstanceID, r.OrderID, r.OrderLineID), nil
	case *koogallery.UpdateInstanceStatusRequest:
		return fmt.Sprintf("updateInstanceStatus:%s:%s", r.InstanceID, r.Status), nil
	case *koogallery.ReleaseInstanceRequest:
		// An instance is released once; a repeat is the same event (§1.6).
		return fmt.Sprintf("releaseInstance:%s", r.InstanceID), nil
	case *koogallery.UpgradeInstanceRequest:
		return fmt.Sprintf("upgradeInstance:%s:%s:%s", r.InstanceID, r.OrderID, r.OrderLineID), nil
	case *koogallery.OrderNotifyRequest:
		return fmt.Sprintf("orderNotify:%s:%s", r.OrderID, r.OrderLineID), nil
	default:
		return "", fmt.Errorf("activity %s is not recorded in the inbox", req.Activity())
	}
}

// Record stores a verified callback durably. newInstance allocates the
// instance; other instance callbacks return store.ErrUnknownInstance for an
// unknown instanceId; orderNotify is complete once recorded.
func (ib *Inbox) Record(ctx context.Context, req koogallery.Request, body []byte) (store.Recorded, error) {
	key, err := DedupKey(req)
	if err != nil {
		return store.Recorded{}, err
	}
	in := store.NewCallback{
		DedupKey:     key,
		Activity:     string(req.Activity()),
		Debug:        req.Debug(),
		Body:         body,
		DeliverAfter: time.Now().Add(ib.DirectGrace),
	}
	switch r := req.(type) {
	case *koogallery.NewInstanceRequest:
		in.OrderID, in.OrderLineID = r.OrderID, r.OrderLineID
		return ib.Store.RecordNewInstance(ctx, r.BusinessID, in)
	case *koogallery.RefreshInstanceRequest:
		in.InstanceID, in.OrderID, in.OrderLineID = r.InstanceID, r.OrderID, r.OrderLineID
	case *koogallery.UpdateInstanceStatusRequest:
		in.InstanceID, in.Status = r.InstanceID, string(r.Status)
	case *koogallery.ReleaseInstanceRequest:
		in.InstanceID, in.OrderID, in.OrderLineID = r.InstanceID, r.OrderID, r.OrderLineID
	case *koogallery.UpgradeInstanceRequest:
		in.InstanceID, in.OrderID, in.OrderLineID = r.InstanceID, r.OrderID, r.OrderLineID
	case *koogallery.OrderNotifyRequest:
		in.OrderID, in.OrderLineID = r.OrderID, r.OrderLineID
		cb, fresh, err := ib.Store.RecordNotice(ctx, in, OutcomeNotice)
		return store.Recorded{Callback: cb, Fresh: fresh}, err
	}
	return ib.Store.RecordCallback(ctx, in)
}

// DeliverNow is the dispatcher's delivery attempt. It leaves the
// callback to the relay when an older callback of the same instance is still
// waiting, so that the workflow receives them in arrival order.
func (ib *Inbox) DeliverNow(ctx context.Context, rec store.Recorded) error {
	if rec.Callback.Delivered() || rec.Key.InstanceID == "" {
		return nil
	}
	waiting, err := ib.background().HasEarlierUndelivered(ctx, rec.Key.InstanceID, rec.Callback.Seq)
	if err != nil {
		return err
	}
	if waiting {
		return fmt.Errorf("%w: an older callback of the instance is still waiting", ErrDeliveryDeferred)
	}
	if failed := ib.lastFailure.Load(); failed > ib.lastSuccess.Load() && time.Since(time.Unix(0, failed)) < breakerPause {
		return fmt.Errorf("%w: Temporal was unreachable moments ago", ErrDeliveryDeferred)
	}
	return ib.Deliver(ctx, rec.Key, rec.Callback)
}

// Deliver signals one recorded callback to its instance workflow, starting
// the workflow if needed, and records the outcome. A workflow that already
// closed (the instance was released) is never started again.
func (ib *Inbox) Deliver(ctx context.Context, key store.InstanceKey, cb store.Callback) error {
	signal, err := WorkflowCallback(cb)
	if err != nil {
		// The body was verified and parsed when it was recorded, so this
		// is a bug; keep the row waiting and visible rather than drop it.
		return ib.failed(ctx, cb, fmt.Errorf("decode recorded callback %d: %w", cb.Seq, err))
	}
	_, err = ib.Temporal.SignalWithStartWorkflow(ctx, workflows.InstanceWorkflowID(key.InstanceID),
		workflows.CallbackSignal, signal, startOptions(key, ib.TaskQueue),
		workflows.InstanceWorkflowName, workflows.InstanceInput{
			InstanceID: key.InstanceID, OrderID: key.OrderID, OrderLineID: key.OrderLineID, Debug: key.Debug,
		})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err == nil || errors.As(err, &started) {
		ib.lastSuccess.Store(time.Now().UnixNano())
	} else {
		ib.lastFailure.Store(time.Now().UnixNano())
	}
	switch {
	case err == nil:
		return ib.background().MarkDelivered(context.WithoutCancel(ctx), cb.Seq, OutcomeSignalled)
	case errors.As(err, &started):
		ib.logger().Info("Callback for a closed instance workflow kept as delivered",
			"instanceId", key.InstanceID, "seq", cb.Seq, "activity", cb.Activity)
		return ib.background().MarkDelivered(context.WithoutCancel(ctx), cb.Seq, OutcomeWorkflowClosed)
	default:
		return ib.failed(ctx, cb, fmt.Errorf("signal instance %s: %w", key.InstanceID, err))
	}
}

func (ib *Inbox) failed(ctx context.Context, cb store.Callback, cause error) error {
	retryAt := time.Now().Add(retryDelay(cb.Attempts + 1))
	if err := ib.background().MarkDeliveryFailed(context.WithoutCancel(ctx), cb.Seq, shorten(cause.Error()), retryAt); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// startOptions start an instance workflow under its business key, with the
// search attributes the Temporal UI filters on. REJECT_DUPLICATE keeps a
// released (closed) instance closed.
func startOptions(key store.InstanceKey, taskQueue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                    workflows.InstanceWorkflowID(key.InstanceID),
		TaskQueue:             taskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.InstanceIDAttribute.ValueSet(key.InstanceID),
			workflows.OrderIDAttribute.ValueSet(key.OrderID),
			workflows.StateAttribute.ValueSet(string(workflows.StateProvisioning)),
		),
	}
}

// WorkflowCallback turns a recorded callback into the workflow's signal.
func WorkflowCallback(cb store.Callback) (workflows.Callback, error) {
	req, err := koogallery.ParseRequest([]byte(cb.Body))
	if err != nil {
		return workflows.Callback{}, err
	}
	out := workflows.Callback{
		Key:        cb.DedupKey,
		Seq:        cb.Seq,
		Activity:   string(req.Activity()),
		ReceivedAt: cb.ReceivedAt.UTC(),
		Debug:      req.Debug(),
	}
	switch r := req.(type) {
	case *koogallery.NewInstanceRequest:
		out.OrderID, out.OrderLineID = r.OrderID, r.OrderLineID
	case *koogallery.RefreshInstanceRequest:
		out.OrderID, out.OrderLineID = r.OrderID, r.OrderLineID
		out.Scene, out.ExpireTime, out.ProductID = string(r.Scene), r.ExpireAt(), r.ProductID
	case *koogallery.UpdateInstanceStatusRequest:
		out.Status = string(r.Status)
	case *koogallery.ReleaseInstanceRequest:
		out.OrderID, out.OrderLineID = r.OrderID, r.OrderLineID
	case *koogallery.UpgradeInstanceRequest:
		out.OrderID, out.OrderLineID = r.OrderID, r.OrderLineID
	default:
		return workflows.Callback{}, fmt.Errorf("activity %s is not delivered to instance workflows", req.Activity())
	}
	return out, nil
}

// retryDelay backs off from 1 s to at most 30 s: Temporal outages are
// usually short, and the relay should notice the recovery quickly.
func retryDelay(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 5)
	return min(d, 30*time.Second)
}

func shorten(s string) string {
	if r := []rune(s); len(r) > 500 {
		return string(r[:500]) + "…"
	}
	return s
}

func (ib *Inbox) background() *store.DB {
	if ib.Background != nil {
		return ib.Background
	}
	return ib.Store
}

func (ib *Inbox) logger() *slog.Logger {
	if ib.Logger != nil {
		return ib.Logger
	}
	return slog.Default()
}
