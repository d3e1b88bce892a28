package inbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
)

// KitCall is a 联营 kit sync (contract §12) whose signature was verified,
// whose body was read, and whose clientSecret, if any, was decrypted and
// sealed.
type KitCall struct {
	// Op is the sync's operation (koogallery.KitTenantSync, …).
	Op         string
	InstanceID string
	Debug      bool
	// Sync is what the merchant's application is to be told.
	Sync activities.DirectorySync
	// SealedSecret is an applicationSync's clientSecret, sealed.
	SealedSecret string
	Body         []byte
	SentAt       time.Time
}

// NewKitCall is the sync the merchant's application is to be told for a
// kit call read from body (contract §12): flag 0 deletes, 1 and 2
// upsert, an authSync's 3 revokes the users' authorisation; an allOrgSync
// is the enterprise's whole department list. The caller seals an
// applicationSync's clientSecret into SealedSecret.
func NewKitCall(sync *koogallery.KitSync, body []byte, sentAt time.Time) KitCall {
	d := activities.DirectorySync{Op: string(sync.Operation), TenantID: sync.TenantID, Action: provisioner.ActionUpsert}
	switch sync.Flag {
	case koogallery.KitFlagDelete:
		d.Action = provisioner.ActionDelete
	case koogallery.KitFlagCancel:
		d.Action = provisioner.ActionRevoke
	}
	switch sync.Operation {
	case koogallery.KitTenantSync:
		d.Enterprise = &provisioner.Enterprise{TenantCode: sync.TenantCode, Name: sync.Name, DomainName: sync.DomainName}
	case koogallery.KitApplicationSync:
		d.App = &provisioner.AppCredential{AppID: sync.AppID, ClientID: sync.ClientID}
	case koogallery.KitAuthSync:
		d.AppID, d.SyncTime = sync.AppID, sync.CurrentSyncTime
		for _, u := range sync.Users {
			d.Users = append(d.Users, provisioner.DirectoryUser{
				UserName: u.UserName, Name: u.Name, OrgCode: u.OrgCode, Role: u.Role, Enabled: u.Enabled,
				Position: u.Position, EmployeeCode: u.EmployeeCode, EmployeeType: u.EmployeeType,
				Mobile: u.Mobile, Email: u.Email, WorkPlace: u.WorkPlace, EntryDate: u.EntryDate,
			})
		}
	case koogallery.KitSingleOrgSync, koogallery.KitAllOrgSync:
		d.Full = sync.Operation == koogallery.KitAllOrgSync
		if d.Full {
			d.Action = provisioner.ActionUpsert // allOrgSync has no flag
		}
		d.Departments = []provisioner.Department{}
		for _, o := range sync.Orgs {
			d.Departments = append(d.Departments, provisioner.Department{OrgCode: o.OrgCode, OrgName: o.OrgName, ParentCode: o.ParentCode})
		}
	}
	return KitCall{Op: string(sync.Operation), InstanceID: sync.InstanceID, Debug: sync.Debug, Sync: d, Body: body, SentAt: sentAt}
}

// Outcomes recorded on kit syncs that have nothing to apply.
const (
	OutcomeKitProbe           = "credential probe: nothing to provision"
	OutcomeKitUnknownInstance = "no such instance: recorded, nothing applied"
)

// AcceptKit records a kit sync and hands it to the dispatcher. The
// marketplace never sends a sync again by itself (a person retries by
// hand), so once it is recorded it is the server's to apply: the answer is
// 000000 as soon as it is committed. A sync with an empty instanceId (the
// seller's credential probe) or naming no instance the server knows is
// recorded as a notice and applies nothing: the kit's calls are not checked
// against instances, and a delete must succeed whatever it names. When the
// database cannot take it, it is Unavailable, and the buyer's console shows
// a failure the buyer can retry.
func (ib *Inbox) AcceptKit(ctx context.Context, call KitCall) Acceptance {
	in, err := kitCallback(call)
	if err != nil {
		ib.logger().Error("Kit sync not recordable", "op", call.Op, "error", err)
		return Acceptance{Verdict: Unavailable}
	}
	in.DeliverAfter = time.Now().Add(ib.DirectGrace)
	if err := ib.recordSpooledFirst(ctx); err != nil {
		ib.logger().Error("Spooled callbacks not recorded; this kit sync waits behind them", "op", call.Op, "error", err)
		return Acceptance{Verdict: Unavailable}
	}
	if call.InstanceID == "" {
		return ib.recordKitNotice(ctx, in, OutcomeKitProbe)
	}
	rec, err := ib.Store.RecordCallback(ctx, in)
	switch {
	case errors.Is(err, store.ErrUnknownInstance):
		return ib.recordKitNotice(ctx, in, OutcomeKitUnknownInstance)
	case err != nil:
		ib.logger().Error("Kit sync not recorded", "op", call.Op, "error", err)
		return Acceptance{Verdict: Unavailable}
	}
	if !rec.Fresh {
		ib.logger().Info("Kit sync sent again", "op", call.Op, "seq", rec.Callback.Seq, "redeliveries", rec.Callback.Redeliveries)
	}
	ib.Dispatch(rec)
	return Acceptance{Verdict: Accepted}
}

// recordKitNotice records a kit sync that applies nothing, complete at
// once.
func (ib *Inbox) recordKitNotice(ctx context.Context, in store.NewCallback, outcome string) Acceptance {
	in.InstanceID = "" // the row names no instance the server has
	if _, _, err := ib.Store.RecordNotice(ctx, in, outcome); err != nil {
		ib.logger().Error("Kit sync not recorded", "op", in.Activity, "error", err)
		return Acceptance{Verdict: Unavailable}
	}
	ib.logger().Info("Kit sync recorded; nothing to apply", "op", in.Activity, "outcome", outcome)
	return Acceptance{Verdict: Accepted}
}

// kitCallback is the inbox row of a kit sync. Its key is the sync's
// content: the same body sent again (a person retrying a failure the
// marketplace showed) is the same sync; applying one is idempotent anyway.
func kitCallback(call KitCall) (store.NewCallback, error) {
	payload, err := json.Marshal(call.Sync)
	if err != nil {
		return store.NewCallback{}, fmt.Errorf("encode the sync: %w", err)
	}
	sum := sha256.Sum256(call.Body)
	key := fmt.Sprintf("kit:%s:%s:%s:%s", call.Op, call.InstanceID, call.Sync.TenantID, hex.EncodeToString(sum[:12]))
	if call.Debug {
		key = "debug:" + key
	}
	return store.NewCallback{
		DedupKey: key, Activity: call.Op, InstanceID: call.InstanceID, Debug: call.Debug,
		Body: call.Body, SentAt: call.SentAt, Payload: payload, SealedSecret: call.SealedSecret,
	}, nil
}
