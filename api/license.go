package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// Messages of getLicenseAsync's answers (contract §13.2).
const (
	msgLicenseProcessing = "the licence is being issued and will be uploaded"
	msgLicenseUploaded   = "success: the licence was uploaded"
	msgLicenseNoDevice   = "a device fingerprint or hardware ID is required for this product"
	msgLicenseNoExpiry   = "a yearly/monthly licence needs expireTime"
	msgLicenseQuota      = "the order's available licence quota is used up"
)

// getLicenseAsync answers a device's licence request (contract §13.4): a
// request that cannot be granted, as the read model shows at once, is
// refused with its 00090x code, recording only a notice; any other is
// recorded in the inbox like every callback and answered 000004, or
// 000000 when its licence is already uploaded.
func (s *marketplace) getLicenseAsync(c *gin.Context, call inbox.Call, r *koogallery.GetLicenseAsyncRequest) koogallery.ResultCode {
	ctx := c.Request.Context()
	key := store.LicenseKey{InstanceID: r.InstanceID, EventID: r.EventID, DeviceFingerprint: r.DeviceFingerprint}
	if call.UncheckedNonce == "" {
		if code, reason := s.licenseRefusal(ctx, r, key); code != "" {
			if err := s.cfg.Inbox.RecordRefusal(ctx, call, code, reason); err != nil {
				// Unrecorded, the refusal is not answered: the
				// marketplace asks again in 2 minutes.
				s.log.Error("Licence refusal not recorded", "instanceId", r.InstanceID, "error", err)
				s.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultInternalError, ResultMsg: msgUnavailable})
				return koogallery.ResultInternalError
			}
			s.log.Info("Licence request refused", "instanceId", r.InstanceID, "eventId", r.EventID, "code", code, "reason", reason)
			s.answer(c, http.StatusOK, koogallery.Response{ResultCode: code, ResultMsg: reason})
			return code
		}
	}
	a := s.cfg.Inbox.Accept(ctx, call)
	if a.Verdict != inbox.Accepted {
		return s.answerAcceptance(c, a)
	}
	r2 := koogallery.Response{ResultCode: koogallery.ResultProcessing, ResultMsg: msgLicenseProcessing}
	if lic, err := s.cfg.Store.Licenses.Get(ctx, key); err == nil && lic.Uploaded() {
		r2 = koogallery.Response{ResultCode: koogallery.ResultSuccess, ResultMsg: msgLicenseUploaded}
	}
	s.answer(c, http.StatusOK, r2)
	return r2.ResultCode
}

// licenseRefusal decides from the read model whether a licence request is
// refused at once, and why. What it cannot read (an instance not yet in
// the read model, a database error) it leaves to the inbox and the
// workflow. A request that already has a licence is never refused: it
// gets the licence issued before.
func (s *marketplace) licenseRefusal(ctx context.Context, r *koogallery.GetLicenseAsyncRequest, key store.LicenseKey) (koogallery.ResultCode, string) {
	if _, err := s.cfg.Store.Licenses.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
		return "", ""
	}
	inst, err := s.cfg.Store.Instances.Instance(ctx, r.InstanceID)
	if err != nil {
		return "", ""
	}
	nodeLocked := slices.Contains(s.cfg.LicenseNodeLocked, "*") ||
		(inst.ProductID != "" && slices.Contains(s.cfg.LicenseNodeLocked, inst.ProductID)) ||
		(inst.SkuCode != "" && slices.Contains(s.cfg.LicenseNodeLocked, inst.SkuCode))
	effective, expire := r.EffectiveAt(), r.ExpireAt()
	switch {
	case nodeLocked && r.DeviceFingerprint == "":
		return koogallery.ResultLicenseNeedsDevice, msgLicenseNoDevice
	case (inst.ChargingMode == string(koogallery.ChargingPeriod) || inst.PeriodType != "") && expire.IsZero():
		return koogallery.ResultLicenseNeedsExpiry, msgLicenseNoExpiry
	case !expire.IsZero() && !expire.After(effective):
		return koogallery.ResultLicenseOutOfWindow, "expireTime must be after effectiveTime"
	case inst.ExpireTime != nil && effective.After(*inst.ExpireTime):
		return koogallery.ResultLicenseOutOfWindow, "effectiveTime is after the order's expiry " + inst.ExpireTime.UTC().Format(time.RFC3339)
	case inst.ExpireTime != nil && expire.After(*inst.ExpireTime):
		return koogallery.ResultLicenseOutOfWindow, "expireTime is after the order's expiry " + inst.ExpireTime.UTC().Format(time.RFC3339)
	}
	if inst.Debug && inst.ProductID == "" {
		return "", "" // a debug instance without an order has no quota
	}
	quota := int64(1)
	if inst.LinearValue != nil && *inst.LinearValue > 0 {
		quota = *inst.LinearValue
	}
	others, err := s.cfg.Store.Licenses.Devices(ctx, r.InstanceID, r.DeviceFingerprint)
	if err == nil && int64(others) >= quota {
		return koogallery.ResultLicenseQuotaShort, fmt.Sprintf("%s: %d of %d device(s) licensed", msgLicenseQuota, others, quota)
	}
	return "", ""
}

// LicenseView is one licence of GET /v1/instances/{instanceId}/licenses.
type LicenseView struct {
	store.License
	ExpireAt   *time.Time `json:"expireAt,omitempty"`
	UploadedAt *time.Time `json:"uploadedAt,omitempty"`
	// Characters is a CHARACTERS licence's text; a file shows its SHA-256
	// and size only.
	Characters string `json:"characters,omitempty"`
	Size       int    `json:"size"`
}

// getLicenses serves GET /v1/instances/{instanceId}/licenses: the licences
// issued for the instance's devices and their uploads (contract §13.4).
func (s *operatorAPI) getLicenses(c *gin.Context) {
	id, ok := s.knownInstance(c)
	if !ok {
		return
	}
	list, err := s.cfg.Store.Licenses.Of(c.Request.Context(), id)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	views := make([]LicenseView, 0, len(list))
	for _, l := range list {
		v := LicenseView{License: l, Size: len(l.Content)}
		if l.ExpireAt.Valid {
			v.ExpireAt = &l.ExpireAt.Time
		}
		if l.UploadedAt.Valid {
			v.UploadedAt = &l.UploadedAt.Time
		}
		if l.Kind == koogallery.LicenseTypeCharacters {
			v.Characters = string(l.Content)
		}
		views = append(views, v)
	}
	c.JSON(http.StatusOK, gin.H{"licenses": views})
}
