package inbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// V1Call is a V1 GET call (contract §1.12) whose authToken was verified and
// whose parameters were parsed: the request, the query string as received
// but without its authToken (kept as the inbox row's body, the audit
// trail) and when the marketplace signed it (its timeStamp).
type V1Call struct {
	Request koogallery.V1Request
	Query   string
	SentAt  time.Time
}

// v1KeyPrefix starts the inbox key of every V1 callback (after "debug:" for
// a debug call). The V1 callbacks are recorded under the V2 activity they
// are applied as, so that the workflow and the operators' tools know them;
// the key is what tells the workflow that a callback came through V1,
// where a renewal must also restore a frozen instance (V1 has no
// UNFREEZE).
const v1KeyPrefix = "v1:"

// IsV1Key reports whether an inbox key is a V1 callback's.
func IsV1Key(key string) bool {
	return strings.HasPrefix(strings.TrimPrefix(key, "debug:"), v1KeyPrefix)
}

// v1Renewed is the status episode a V1 renewal opens on an instance whose
// last status call was a freeze: the next expireInstance, a period later,
// is then a new freeze, not a retry of the old one (V1 sends no UNFREEZE
// that would alternate the episode).
const v1Renewed = "V1_RENEWED"

// V1InstanceID derives the instanceId of a V1 purchase from its order:
// V1's businessId is new on every request, retries included, so it cannot
// name the instance (contract §1.12). A repeated order must get the same
// instance: the orderId, and for pay-per-use the orderId and productId
// (one instance per billing item, contract §1.14). The hash keeps the ID
// within the instanceId alphabet and length whatever the order IDs hold.
func V1InstanceID(o *koogallery.V1Order) string {
	key := o.OrderID
	if v1ChargingMode(o) == koogallery.ChargingOnDemand {
		key += "\n" + o.ProductID
	}
	sum := sha256.Sum256([]byte(key))
	return activities.V1OrderLinePrefix + hex.EncodeToString(sum[:16])
}

// v1ChargingMode reads V1's numeric chargingMode: 1 a period product, 3 a
// one-time one (contract §1.12). The pages give no number for pay-per-use,
// whose instances receive instanceStatus: any other number is read as
// pay-per-use. An absent one is a period product when the order has an
// expiry, else a one-time one.
func v1ChargingMode(o *koogallery.V1Order) koogallery.ChargingMode {
	switch {
	case o.ChargingMode == 1:
		return koogallery.ChargingPeriod
	case o.ChargingMode == 3:
		return koogallery.ChargingOneTime
	case o.ChargingMode != 0:
		return koogallery.ChargingOnDemand
	case o.ExpireTime != "":
		return koogallery.ChargingPeriod
	}
	return koogallery.ChargingOneTime
}

// v1Order is the order a V1 purchase describes, as Query Order would give it.
func v1Order(r *koogallery.V1NewInstanceRequest, instanceID string) activities.Order {
	o := activities.Order{
		OrderID:      r.OrderID,
		OrderLineID:  instanceID,
		OrderType:    string(koogallery.OrderTypeNew),
		ChargingMode: string(v1ChargingMode(&r.V1Order)),
		SkuCode:      r.SkuCode,
		ProductID:    r.ProductID,
		LinearValue:  v1LinearValue(r.Amount, r.DiskSize, r.BandWidth),
		PeriodType:   r.PeriodType,
		PeriodNumber: r.PeriodNumber,
		CustomerID:   r.CustomerID,
		CustomerName: r.CustomerName,
	}
	if r.TrialFlag {
		o.OrderType = string(koogallery.OrderTypeTrial)
	}
	if t := r.ExpireAt(); !t.IsZero() {
		o.ExpireTime = &t
	}
	return o
}

// v1LinearValue is the one linear attribute V2 knows (linearValue) from
// V1's three: a product has at most one linear attribute, so the first
// one sent is it.
func v1LinearValue(values ...int) *int64 {
	for _, v := range values {
		if v != 0 {
			n := int64(v)
			return &n
		}
	}
	return nil
}

// newV1Callback maps a V1 request to the inbox's row, as newCallback does
// for V2: each V1 activity is recorded as the V2 activity the instance
// workflow applies, under a key of its own (v1KeyPrefix) that is the same
// for every retry of one event. instanceID is newInstance's (derived from
// the order).
func newV1Callback(req koogallery.V1Request) (in store.NewCallback, instanceID string, err error) {
	in = store.NewCallback{Debug: req.Debug()}
	switch r := req.(type) {
	case *koogallery.V1NewInstanceRequest:
		instanceID = V1InstanceID(&r.V1Order)
		in.Activity, in.OrderID, in.OrderLineID = string(koogallery.ActivityNewInstance), r.OrderID, instanceID
		in.DedupKey = "newInstance:" + instanceID
		if in.Payload, err = json.Marshal(activities.V1OrderPayload{V1Order: v1Order(r, instanceID)}); err != nil {
			return store.NewCallback{}, "", fmt.Errorf("encode V1 order %s: %w", r.OrderID, err)
		}
	case *koogallery.V1GetLicenseRequest:
		// A 联营License purchase (contract §1.11) is an instance like a V1
		// newInstance's; its licence is asked for by a second row
		// (V1LicenseCallback).
		return newV1Callback(&koogallery.V1NewInstanceRequest{V1Common: r.V1Common, V1Order: r.V1Order})
	case *koogallery.V1RefreshInstanceRequest:
		in = v1Refresh(in, r)
	case *koogallery.V1RefreshLicenseRequest:
		// 续费: a renewal, sent once (contract §1.11).
		in = v1Refresh(in, &koogallery.V1RefreshInstanceRequest{V1Common: r.V1Common, V1Renewal: r.V1Renewal})
	case *koogallery.V1ExpireLicenseRequest:
		in = v1Expire(in, r.InstanceID, r.OrderID)
	case *koogallery.V1ReleaseLicenseRequest:
		in.Activity, in.InstanceID, in.OrderID = string(koogallery.ActivityReleaseInstance), r.InstanceID, r.OrderID
		in.DedupKey = "releaseInstance:" + r.InstanceID
	case *koogallery.V1ExpireInstanceRequest:
		in = v1Expire(in, r.InstanceID, r.OrderID)
	case *koogallery.V1InstanceStatusRequest:
		in.Activity, in.InstanceID, in.Status = string(koogallery.ActivityUpdateInstanceStatus), r.InstanceID, "FREEZE"
		if r.Status == koogallery.V1StatusNormal {
			in.Status = "UNFREEZE"
		}
		in.DedupKey = fmt.Sprintf("instanceStatus:%s:%s", r.InstanceID, in.Status)
	case *koogallery.V1ReleaseInstanceRequest:
		in.Activity, in.InstanceID, in.OrderID = string(koogallery.ActivityReleaseInstance), r.InstanceID, r.OrderID
		// An instance is released once (contract §1.14).
		in.DedupKey = "releaseInstance:" + r.InstanceID
	case *koogallery.V1UpgradeRequest:
		if in.Payload, err = v1UpgradePayload(r); err != nil {
			return store.NewCallback{}, "", err
		}
		// OrderLineID names the instance, where FetchOrder finds the order.
		in.Activity, in.InstanceID, in.OrderID, in.OrderLineID = string(koogallery.ActivityUpgradeInstance), r.InstanceID, r.OrderID, r.InstanceID
		in.DedupKey = fmt.Sprintf("upgradeInstance:%s:%s", r.InstanceID, r.OrderID)
	default:
		return store.NewCallback{}, "", fmt.Errorf("V1 activity %s is not recorded in the inbox", req.V1Activity())
	}
	in.DedupKey = v1KeyPrefix + in.DedupKey
	if in.Debug {
		in.DedupKey = "debug:" + in.DedupKey
	}
	if in.Status != "" {
		in.StatusChange = StatusChange(in)
	}
	if in.Scene == string(koogallery.SceneRenewal) || in.Scene == string(koogallery.SceneTrialToFormal) {
		in.StatusChange = v1RenewalEndsFreeze(in)
	}
	return in, instanceID, nil
}

// v1Expire maps an expiry (expireInstance, expireLicense) onto a FREEZE
// (contract §1.12), keyed by episode.
func v1Expire(in store.NewCallback, instanceID, orderID string) store.NewCallback {
	in.Activity, in.InstanceID, in.OrderID, in.Status = string(koogallery.ActivityUpdateInstanceStatus), instanceID, orderID, "FREEZE"
	in.DedupKey = "expireInstance:" + instanceID
	return in
}

// v1Refresh maps a V1 refreshInstance onto V2's scenes: trialToFormal is
// TRIAL_TO_FORMAL, a negative orderAmount a refunded renewal period
// (UNSUBSCRIBE_RENEWAL_PERIOD), anything else a RENEWAL. One order changes
// the expiry once; the scene keeps a refund apart from the renewal it
// takes back, should both carry one orderId.
func v1Refresh(in store.NewCallback, r *koogallery.V1RefreshInstanceRequest) store.NewCallback {
	scene := koogallery.SceneRenewal
	switch {
	case r.Refund():
		scene = koogallery.SceneUnsubscribeRenewalPeriod
	case r.TrialToFormal:
		scene = koogallery.SceneTrialToFormal
	}
	in.Activity, in.InstanceID, in.OrderID = string(koogallery.ActivityRefreshInstance), r.InstanceID, r.OrderID
	in.Scene, in.ExpireTime, in.ProductID = string(scene), r.ExpireTime, r.ProductID
	in.DedupKey = fmt.Sprintf("refreshInstance:%s:%s:%s", r.InstanceID, r.OrderID, scene)
	return in
}

// v1UpgradePayload carries the new spec of a V1 upgrade as the order
// FetchOrder gives the workflow.
func v1UpgradePayload(r *koogallery.V1UpgradeRequest) ([]byte, error) {
	order := activities.Order{
		OrderID: r.OrderID, OrderLineID: r.InstanceID, OrderType: string(koogallery.OrderTypeChange),
		SkuCode: r.SkuCode, ProductID: r.ProductID, LinearValue: v1LinearValue(r.Amount, r.DiskSize, r.BandWidth),
	}
	payload, err := json.Marshal(activities.V1OrderPayload{V1Order: order})
	if err != nil {
		return nil, fmt.Errorf("encode V1 upgrade order %s: %w", r.OrderID, err)
	}
	return payload, nil
}

// v1RenewalEndsFreeze is the status rule of a V1 renewal: a renewal after
// a freeze ends that freeze's episode (the workflow restores the
// instance), so the next expireInstance is keyed as a new freeze. The
// renewal's own key does not change. A debug renewal of a real instance
// changes nothing, so it ends nothing.
func v1RenewalEndsFreeze(in store.NewCallback) func(bool, store.StatusEpisode) (store.StatusEpisode, string) {
	return func(instanceDebug bool, last store.StatusEpisode) (store.StatusEpisode, string) {
		if (in.Debug && !instanceDebug) || last.Status != "FREEZE" {
			return last, in.DedupKey
		}
		return store.StatusEpisode{Status: v1Renewed, Number: last.Number + 1}, in.DedupKey
	}
}

// RecordV1 stores a verified V1 callback durably, as Record does a V2
// one: newInstance allocates the instance derived from its order (every
// retry gets it back), the others need an instance that exists.
func (ib *Inbox) RecordV1(ctx context.Context, call V1Call) (store.Recorded, error) {
	in, instanceID, err := newV1Callback(call.Request)
	if err != nil {
		return store.Recorded{}, err
	}
	in.Body, in.SentAt, in.DeliverAfter = []byte(call.Query), call.SentAt, time.Now().Add(ib.DirectGrace)
	if instanceID == "" {
		return ib.Store.RecordCallback(ctx, in)
	}
	rec, err := ib.Store.RecordNewInstance(ctx, instanceID, in)
	if r, ok := call.Request.(*koogallery.V1GetLicenseRequest); ok && err == nil {
		// The licence after the instance: the workflow provisions first.
		ib.Dispatch(rec)
		lic, lerr := V1LicenseCallback(r, instanceID, call.SentAt)
		if lerr != nil {
			return store.Recorded{}, lerr
		}
		lic.Body, lic.SentAt, lic.DeliverAfter = in.Body, in.SentAt, in.DeliverAfter
		return ib.Store.RecordCallback(ctx, lic)
	}
	return rec, err
}

// V1LicenseCallback is the inbox row that asks for the licence of a
// 联营License purchase (getLicense, contract §1.11): a licence request of
// the instance, its event the order (one licence per order: the same
// order always gets the same licence), no device, the order's validity,
// and the licence given back in getLicense's answer instead of uploaded.
// It runs from the first call's signed time (the row is recorded once).
func V1LicenseCallback(r *koogallery.V1GetLicenseRequest, instanceID string, sentAt time.Time) (store.NewCallback, error) {
	req := activities.LicenseRequest{EventID: r.OrderID, InAnswer: true, EffectiveTime: sentAt.UTC().Truncate(time.Second)}
	if t := r.ExpireAt(); !t.IsZero() {
		req.ExpireTime = &t
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return store.NewCallback{}, fmt.Errorf("encode the licence request of order %s: %w", r.OrderID, err)
	}
	in := store.NewCallback{
		Activity: string(koogallery.ActivityGetLicenseAsync), InstanceID: instanceID, Debug: r.Debug(), Payload: payload,
		DedupKey: v1KeyPrefix + "getLicense:" + activities.LicenseOperationID(instanceID, r.OrderID, "")[len("license:"):],
	}
	if in.Debug {
		in.DedupKey = "debug:" + in.DedupKey
	}
	return in, nil
}

// v1AnswerMargin is what a V1 newInstance leaves of the answer budget for
// building the answer (unsealing and encrypting the credentials, signing).
const v1AnswerMargin = 300 * time.Millisecond

// AcceptV1 takes a verified V1 callback that changes an instance: it is
// recorded under its key and handed to the dispatcher, like a V2 callback.
// What the database cannot take is refused (Unavailable), never spooled:
// the spool holds V2 bodies, and the marketplace sends V1 calls again
// until they succeed. A newInstance waits for its tenant until ctx's
// deadline (less v1AnswerMargin), since its answer must carry the access
// information (contract §1.12): Acceptance.Provisioned says whether it
// exists.
func (ib *Inbox) AcceptV1(ctx context.Context, call V1Call) Acceptance {
	if err := ib.recordSpooledFirst(ctx); err != nil {
		ib.logger().Error("Spooled callbacks not recorded; this V1 callback waits behind them",
			"activity", call.Request.V1Activity(), "error", err)
		return Acceptance{Verdict: Unavailable}
	}
	rec, err := ib.RecordV1(ctx, call)
	switch {
	case errors.Is(err, store.ErrUnknownInstance):
		return Acceptance{Verdict: UnknownInstance}
	case errors.Is(err, store.ErrInstanceIDTaken):
		return Acceptance{Verdict: InstanceIDTaken}
	case err != nil:
		ib.logger().Error("V1 callback not recorded", "activity", call.Request.V1Activity(), "error", err)
		return Acceptance{Verdict: Unavailable}
	}
	if !rec.Fresh {
		ib.logger().Info("V1 callback redelivered", "activity", call.Request.V1Activity(), "seq", rec.Callback.Seq,
			"redeliveries", rec.Callback.Redeliveries, "delivered", rec.Callback.Delivered())
	}
	ib.Dispatch(rec)

	switch call.Request.(type) {
	case *koogallery.V1NewInstanceRequest, *koogallery.V1GetLicenseRequest:
	default:
		return Acceptance{Verdict: Accepted}
	}
	var retriedAt int64
	if !rec.Fresh {
		retriedAt = ib.retryParkedProvisioning(ctx, rec)
	}
	wait := 3 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		wait = time.Until(deadline) - v1AnswerMargin
	}
	switch ib.awaitProvisioningFor(ctx, rec.Key.InstanceID, retriedAt, wait) {
	case provisioningParked:
		return Acceptance{Verdict: ProvisioningParked, InstanceID: rec.Key.InstanceID}
	case provisioningDone:
		return Acceptance{Verdict: Accepted, InstanceID: rec.Key.InstanceID, Provisioned: true}
	}
	return Acceptance{Verdict: Accepted, InstanceID: rec.Key.InstanceID}
}
