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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Signaller is the part of the Temporal client the inbox uses: it delivers
// callbacks with SignalWithStart, and signals a parked provisioning to
// retry when the marketplace sends newInstance again.
type Signaller interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// Inbox records and delivers callbacks.
type Inbox struct {
	// Store records callbacks: the marketplace's answer waits for it.
	Store *store.Callbacks
	// Background is the pool of the delivery work (dispatcher, relay), so
	// that an answer never queues for a connection behind it; nil: Store.
	Background *store.Callbacks
	Temporal   Signaller
	TaskQueue  string
	Logger     *slog.Logger
	// DirectGrace is how long the relay leaves a fresh callback to the
	// dispatcher before trying itself; the dispatcher drops what waited
	// longer in its queue, so the two do not both send it.
	DirectGrace time.Duration
	// Alert, when set, tells operators about a callback parked because it
	// can never be delivered (the alert webhook); it is also logged.
	Alert func(ctx context.Context, instanceID, kind, message string) error
	// ParkAfter is how many failed deliveries of one callback, while
	// others are delivered, park it for an operator; zero means
	// DefaultParkAfter.
	ParkAfter int
	// Spool keeps callbacks the marketplace may send only once while the
	// database is unreachable; nil: Accept refuses them like the others.
	Spool *Spool
	// ReadModel is where Accept watches a new instance's provisioning.
	ReadModel *store.Instances
	// NewInstanceWait is how long Accept waits for a new instance's
	// provisioning before it answers; zero answers at once.
	NewInstanceWait time.Duration

	// lastFailure is when a delivery last failed (unix nanoseconds), and
	// lastSuccess when one last succeeded: while Temporal is away the
	// dispatcher skips its own attempts and leaves them to the relay.
	lastFailure, lastSuccess atomic.Int64

	// dispatch is the background delivery, once StartDispatcher ran.
	dispatch atomic.Pointer[dispatcher]
}

// breakerPause is how long after a delivery found Temporal unreachable,
// with no success since, the dispatcher leaves delivery to the relay
// instead of waiting on it. Only Temporal being away trips it: a failure
// that belongs to one callback must not slow the others.
const breakerPause = 5 * time.Second

// DefaultParkAfter is how often a callback may fail to be delivered, while
// others are delivered, before it is parked for an operator: its failure
// is its own, and retrying it forever would hide it. With the relay's
// backoff that is about 8 minutes of attempts. A refusal by Temporal is
// not parked at once: a namespace whose search attributes are still being
// registered refuses every signal as invalid for a moment.
const DefaultParkAfter = 20

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
// Status changes are keyed with their episode when they are recorded. A
// debug call (testFlag "1") never shares a key with a real one: its key
// starts with "debug:", so that a probe can never pass for, and swallow,
// the real callback that follows it.
func DedupKey(req koogallery.Request) (string, error) {
	in, _, err := newCallback(req)
	return in.DedupKey, err
}

// newCallback maps a verified request to the inbox's row: its key and the
// fields its instance's workflow will be given. It is the one place that
// knows which fields each callback carries (newV1Callback, for the V1
// requests). businessID is newInstance's.
func newCallback(req koogallery.Request) (in store.NewCallback, businessID string, err error) {
	in = store.NewCallback{Activity: string(req.Activity()), Debug: req.Debug()}
	switch r := req.(type) {
	case *koogallery.NewInstanceRequest:
		in.OrderID, in.OrderLineID, businessID = r.OrderID, r.OrderLineID, r.BusinessID
		in.DedupKey = fmt.Sprintf("newInstance:%s:%s", r.OrderID, r.OrderLineID)
	case *koogallery.RefreshInstanceRequest:
		in.InstanceID, in.OrderID, in.OrderLineID = r.InstanceID, r.OrderID, r.OrderLineID
		in.Scene, in.ExpireTime, in.ProductID = string(r.Scene), r.ExpireTime, r.ProductID
		// One renewal (or refund) order changes the expiry once (contract §1.4).
		in.DedupKey = fmt.Sprintf("refreshInstance:%s:%s:%s", r.InstanceID, r.OrderID, r.OrderLineID)
	case *koogallery.UpdateInstanceStatusRequest:
		in.InstanceID, in.Status = r.InstanceID, string(r.Status)
		in.DedupKey = fmt.Sprintf("updateInstanceStatus:%s:%s", r.InstanceID, r.Status)
	case *koogallery.ReleaseInstanceRequest:
		in.InstanceID, in.OrderID, in.OrderLineID = r.InstanceID, r.OrderID, r.OrderLineID
		// An instance is released once; a repeat is the same event (contract §1.6).
		in.DedupKey = fmt.Sprintf("releaseInstance:%s", r.InstanceID)
	case *koogallery.UpgradeInstanceRequest:
		in.InstanceID, in.OrderID, in.OrderLineID = r.InstanceID, r.OrderID, r.OrderLineID
		in.DedupKey = fmt.Sprintf("upgradeInstance:%s:%s:%s", r.InstanceID, r.OrderID, r.OrderLineID)
	case *koogallery.OrderNotifyRequest:
		in.OrderID, in.OrderLineID = r.OrderID, r.OrderLineID
		in.DedupKey = fmt.Sprintf("orderNotify:%s:%s", r.OrderID, r.OrderLineID)
	case *koogallery.GetLicenseAsyncRequest:
		// One licence per (instance, eventId, fingerprint) (contract §13.2).
		if in, err = licenseCallback(in, r); err != nil {
			return store.NewCallback{}, "", err
		}
	case koogallery.LicenseCodeRequest:
		in = licenseCodeCallback(in, r)
	default:
		return store.NewCallback{}, "", fmt.Errorf("activity %s is not recorded in the inbox", req.Activity())
	}
	if in.Debug {
		in.DedupKey = "debug:" + in.DedupKey
	}
	if in.Status != "" {
		in.StatusChange = StatusChange(in)
	}
	return in, businessID, nil
}

// StatusChange is the rule that keys a FREEZE or UNFREEZE: the marketplace
// sends the same status change again until it is answered, and a FREEZE a
// year later is another. So a status equal to the instance's last recorded
// one is the same callback sent again (the same episode); an alternation
// starts a new episode. A debug status call on a real instance changes
// nothing, so it opens no episode either: it is keyed within the current
// one (and apart from real calls by its "debug:" key).
func StatusChange(in store.NewCallback) func(bool, store.StatusEpisode) (store.StatusEpisode, string) {
	return func(instanceDebug bool, last store.StatusEpisode) (store.StatusEpisode, string) {
		episode := last
		probe := in.Debug && !instanceDebug
		if !probe && last.Status != in.Status {
			episode = store.StatusEpisode{Status: in.Status, Number: last.Number + 1}
		}
		return episode, fmt.Sprintf("%s:%d", in.DedupKey, episode.Number)
	}
}

// Record stores a verified callback durably. sentAt is when the
// marketplace sent it (the request's signed timestamp; zero if unknown).
// newInstance allocates the instance; other instance callbacks return
// store.ErrUnknownInstance for an unknown instanceId; orderNotify is
// complete once recorded.
func (ib *Inbox) Record(ctx context.Context, req koogallery.Request, body []byte, sentAt time.Time) (store.Recorded, error) {
	in, businessID, err := newCallback(req)
	if err != nil {
		return store.Recorded{}, err
	}
	in.Body, in.SentAt, in.DeliverAfter = body, sentAt, time.Now().Add(ib.DirectGrace)
	switch req.(type) {
	case *koogallery.NewInstanceRequest:
		return ib.Store.RecordNewInstance(ctx, businessID, in)
	case *koogallery.OrderNotifyRequest:
		cb, fresh, err := ib.Store.RecordNotice(ctx, in, OutcomeNotice)
		return store.Recorded{Callback: cb, Fresh: fresh}, err
	case koogallery.LicenseCodeRequest:
		return ib.recordLicenseCodeCallback(ctx, in)
	default:
		return ib.Store.RecordCallback(ctx, in)
	}
}

// DeliverNow is the dispatcher's delivery attempt. It leaves the
// callback to the relay, due at once, when an older callback of the same
// instance is still waiting (so that the workflow receives them in arrival
// order) or while Temporal was found unreachable moments ago.
func (ib *Inbox) DeliverNow(ctx context.Context, rec store.Recorded) error {
	if rec.Callback.Delivered() || rec.Callback.Owner() == "" {
		return nil
	}
	waiting, err := ib.background().HasEarlierUndelivered(ctx, rec.Callback)
	if err != nil {
		return err
	}
	var deferred string
	switch {
	case waiting:
		deferred = "an older callback of the same instance or code is still waiting"
	case ib.temporalAway():
		deferred = "Temporal was unreachable moments ago"
	default:
		return ib.Deliver(ctx, rec.Key, rec.Callback)
	}
	// The relay need not wait out the dispatcher's grace for it.
	if err := ib.background().MakeDue(context.WithoutCancel(ctx), rec.Callback.Seq); err != nil {
		return errors.Join(fmt.Errorf("%w: %s", ErrDeliveryDeferred, deferred), err)
	}
	return fmt.Errorf("%w: %s", ErrDeliveryDeferred, deferred)
}

// temporalAway reports whether a delivery found Temporal unreachable within
// breakerPause, with no successful delivery since.
func (ib *Inbox) temporalAway() bool {
	failed := ib.lastFailure.Load()
	return failed > ib.lastSuccess.Load() && time.Since(time.Unix(0, failed)) < breakerPause
}

// Deliver signals one recorded callback to its workflow (its instance's,
// or its license code's), starting the workflow if needed, and records the
// outcome. A workflow that already closed (the instance or the code was
// released) is never started again. key is the instance's; a license
// code's callback needs none.
func (ib *Inbox) Deliver(ctx context.Context, key store.InstanceKey, cb store.Callback) error {
	if cb.License != "" {
		return ib.deliverLicenseCode(ctx, cb)
	}
	signal, err := WorkflowCallback(cb)
	if err != nil {
		// The callback was verified and parsed when it was recorded: only
		// a row written otherwise (by an older version) can be unreadable,
		// and retrying will not help. An operator decides.
		return ib.park(ctx, cb, fmt.Sprintf("the recorded callback can no longer be read: %v", err))
	}
	_, err = ib.Temporal.SignalWithStartWorkflow(ctx, workflows.InstanceWorkflowID(key.InstanceID),
		workflows.CallbackSignal, signal, startOptions(key, ib.TaskQueue),
		workflows.InstanceWorkflowName, workflows.InstanceInput{
			InstanceID: key.InstanceID, OrderID: key.OrderID, OrderLineID: key.OrderLineID, Debug: key.Debug,
			Generation: workflows.InstanceGeneration,
		})
	return ib.delivered(ctx, cb, err)
}

// failed records a failed delivery and its retry time, or parks the
// callback once it has failed ParkAfter times while Temporal was
// delivering others: then the failure is the callback's own.
func (ib *Inbox) failed(ctx context.Context, cb store.Callback, cause error) error {
	parkAfter := ib.ParkAfter
	if parkAfter <= 0 {
		parkAfter = DefaultParkAfter
	}
	if cb.Attempts+1 >= parkAfter && !ib.temporalAway() && ib.lastSuccess.Load() > 0 {
		return ib.park(ctx, cb, fmt.Sprintf("delivery failed %d times while other callbacks were delivered; last error: %v",
			cb.Attempts+1, cause))
	}
	retryAt := time.Now().Add(retryDelay(cb.Attempts + 1))
	if err := ib.background().MarkDeliveryFailed(context.WithoutCancel(ctx), cb.Seq, shorten(cause.Error()), retryAt); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// ErrParked means the callback could never be delivered and now waits for
// an operator (GET /v1/callbacks?state=parked).
var ErrParked = errors.New("callback parked for an operator")

// park sets a callback aside for an operator, logs it and raises an alert.
// It no longer holds back its instance's later callbacks.
func (ib *Inbox) park(ctx context.Context, cb store.Callback, reason string) error {
	reason = shorten(reason)
	parked, err := ib.background().ParkCallback(context.WithoutCancel(ctx), cb.Seq, reason)
	if err != nil {
		return err
	}
	if !parked {
		return nil // delivered or parked by another replica meanwhile
	}
	msg := fmt.Sprintf("Callback %d (%s) cannot be delivered and is parked: %s. Retry or discard it: POST /v1/callbacks/%d/retry or /discard.",
		cb.Seq, cb.Activity, reason, cb.Seq)
	ib.logger().Error("Callback parked for an operator", "instanceId", cb.InstanceID, "seq", cb.Seq,
		"activity", cb.Activity, "reason", reason)
	if ib.Alert != nil {
		if err := ib.Alert(context.WithoutCancel(ctx), cb.InstanceID, "callback_parked", msg); err != nil {
			ib.logger().Error("Alert about a parked callback not sent", "seq", cb.Seq, "error", err)
		}
	}
	return fmt.Errorf("%w: %s", ErrParked, reason)
}

// temporalUnreachable reports whether a delivery error means Temporal
// itself could not be reached or answered in time, rather than refusing
// this one callback.
func temporalUnreachable(err error) bool {
	var (
		unavailable *serviceerror.Unavailable
		deadline    *serviceerror.DeadlineExceeded
		exhausted   *serviceerror.ResourceExhausted
	)
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &unavailable) ||
		errors.As(err, &deadline) || errors.As(err, &exhausted) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
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

// WorkflowCallback turns a recorded callback into the workflow's signal,
// from the columns it was recorded with.
func WorkflowCallback(cb store.Callback) (workflows.Callback, error) {
	out := workflows.Callback{
		Key:         cb.DedupKey,
		Seq:         cb.Seq,
		Activity:    cb.Activity,
		ReceivedAt:  cb.ReceivedAt.UTC(),
		Debug:       cb.Debug,
		OrderID:     cb.OrderID,
		OrderLineID: cb.OrderLineID,
		V1:          IsV1Key(cb.DedupKey),
	}
	if cb.SentAt.Valid {
		out.SentAt = cb.SentAt.Time.UTC()
	}
	switch koogallery.Activity(cb.Activity) {
	case koogallery.ActivityNewInstance, koogallery.ActivityReleaseInstance, koogallery.ActivityUpgradeInstance:
	case koogallery.ActivityGetLicenseAsync:
		// Its request is the payload, which IssueLicense reads by Seq.
	case koogallery.ActivityRefreshInstance, koogallery.ActivityRefreshLicenseCode:
		expireAt, err := koogallery.ParseTime(cb.ExpireTime)
		if err != nil || cb.Scene == "" {
			return workflows.Callback{}, fmt.Errorf("%s recorded without a valid scene and expireTime (%q, %q)", cb.Activity, cb.Scene, cb.ExpireTime)
		}
		out.Scene, out.ExpireTime, out.ProductID = cb.Scene, expireAt, cb.ProductID
	case koogallery.ActivityUpdateInstanceStatus, koogallery.ActivityUpdateLicenseCodeStatus:
		if cb.Status == "" {
			return workflows.Callback{}, fmt.Errorf("%s recorded without its status", cb.Activity)
		}
		out.Status = cb.Status
	case koogallery.ActivityReleaseLicenseCode, workflows.ActivityActivateLicenseCode:
	default:
		if !activities.IsKitSync(cb.Activity) {
			return workflows.Callback{}, fmt.Errorf("activity %s is not delivered to instance workflows", cb.Activity)
		}
		// A kit sync's content is its payload, which the activity that
		// applies it reads by Seq: the signal stays small.
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

func (ib *Inbox) background() *store.Callbacks {
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
