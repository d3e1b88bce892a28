package inbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// licenseCallback is the inbox row of a getLicenseAsync (contract §13.4):
// keyed by (instance, eventId, fingerprint), the fingerprint as a hash,
// since it may be 1024 characters of anything; the request itself is the
// payload, which the IssueLicense activity reads by seq.
func licenseCallback(in store.NewCallback, r *koogallery.GetLicenseAsyncRequest) (store.NewCallback, error) {
	payload, err := json.Marshal(activities.NewLicenseRequest(r))
	if err != nil {
		return store.NewCallback{}, fmt.Errorf("encode licence request %s: %w", r.EventID, err)
	}
	in.InstanceID, in.Payload = r.InstanceID, payload
	in.DedupKey = "getLicenseAsync:" + activities.LicenseOperationID(r.InstanceID, r.EventID, r.DeviceFingerprint)[len("license:"):]
	return in, nil
}

// OutcomeRefused starts the outcome of a refused callback's notice.
const OutcomeRefused = "refused"

// RecordRefusal records a callback the production interface refused with
// a business code (a getLicenseAsync answered 000900–000903): a notice of
// the instance, delivered to nobody, that says why, under a key of its own
// so that the same request, accepted later, is still recorded and applied.
// Nothing else changes.
func (ib *Inbox) RecordRefusal(ctx context.Context, call Call, code koogallery.ResultCode, reason string) error {
	in, _, err := newCallback(call.Request)
	if err != nil {
		return err
	}
	in.Body, in.SentAt = call.Body, call.SentAt
	in.DedupKey = fmt.Sprintf("refused:%s:%s", code, in.DedupKey)
	_, _, err = ib.Store.RecordNotice(ctx, in, fmt.Sprintf("%s %s: %s", OutcomeRefused, code, reason))
	return err
}
