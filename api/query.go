package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// queryInstance answers from the read model alone (contract §1.3), so the
// marketplace's polling never wakes a worker. An instance is ready once its
// tenant exists (it has access information), whatever its state after that
// (active, grace, frozen, under supervision, parked on a later step). For a
// list of IDs the answer is that of the least ready instance: 000003 if any
// is unknown, else 000004 if any is still being provisioned (a parked
// provisioning included: an operator can still finish it), else 000005 if
// any failed, else 000000 with every instance's information.
func (s *marketplace) queryInstance(c *gin.Context, req *koogallery.QueryInstanceRequest) koogallery.ResultCode {
	ids := req.InstanceIDs()
	views, err := s.cfg.Store.Instances.LookupInstances(c.Request.Context(), ids)
	if err != nil {
		s.log.Error("queryInstance: read model unavailable", "error", err)
		return s.answerQuery(c, koogallery.ResultInternalError, msgUnavailable, nil)
	}
	var unknown, provisioning, failed []string
	for _, id := range ids {
		v, ok := views[id]
		switch {
		case !ok:
			unknown = append(unknown, id)
		case v.Instance == nil || v.Instance.State == string(workflows.StateProvisioning):
			provisioning = append(provisioning, id)
		case v.Instance.State == string(workflows.StateFailed):
			failed = append(failed, id)
		case v.Instance.State != string(workflows.StateReleased) && v.Instance.FrontEndURL == "":
			// Parked before the tenant existed.
			provisioning = append(provisioning, id)
		}
	}
	switch {
	case len(unknown) > 0:
		return s.answerQuery(c, koogallery.ResultInstanceNotFound, msgUnknown, nil)
	case len(provisioning) > 0:
		return s.answerQuery(c, koogallery.ResultProcessing, "instance is being provisioned", nil)
	case len(failed) > 0:
		return s.answerQuery(c, koogallery.ResultInternalError, "instance provisioning failed; the merchant is handling it", nil)
	}

	usage, err := s.usageTotals(c.Request.Context(), ids, views)
	if err != nil {
		s.log.Error("queryInstance: usage unavailable", "error", err)
		return s.answerQuery(c, koogallery.ResultInternalError, msgUnavailable, nil)
	}
	info := make([]koogallery.InstanceInfo, 0, len(ids))
	encrypt := s.encryptField
	if key := c.GetString(fieldKey); key != "" {
		// A V1 queryInstance: encrypted with the V1 key (contract §2.6).
		encrypt = func(plain string) (string, error) { return encryptWith(key, s.v1KeySize(), plain) }
	}
	for _, id := range ids {
		entry, err := s.instanceInfo(views[id], encrypt)
		if err != nil {
			s.log.Error("queryInstance: credentials unusable", "instanceId", id, "error", err)
			return s.answerQuery(c, koogallery.ResultInternalError, msgUnavailable, nil)
		}
		entry.UsageInfo = s.usageInfo(views[id].Instance, usage[id])
		info = append(info, entry)
	}
	return s.answerQuery(c, koogallery.ResultSuccess, msgSuccess, info)
}

func (s *marketplace) answerQuery(c *gin.Context, code koogallery.ResultCode, msg string, info []koogallery.InstanceInfo) koogallery.ResultCode {
	if info == nil {
		info = []koogallery.InstanceInfo{}
	}
	s.answer(c, http.StatusOK, koogallery.QueryInstanceResponse{ResultCode: code, ResultMsg: msg, Info: info})
	return code
}

// instanceInfo builds one instance's entry, its credentials passed through
// encrypt. A released instance has no tenant left, so it is listed
// without appInfo.
func (s *marketplace) instanceInfo(v store.InstanceView, encrypt func(string) (string, error)) (koogallery.InstanceInfo, error) {
	out := koogallery.InstanceInfo{InstanceID: v.Key.InstanceID}
	inst := v.Instance
	if inst.State == string(workflows.StateReleased) {
		return out, nil
	}
	app := &koogallery.AppInfo{FrontEndURL: inst.FrontEndURL, AdminURL: inst.AdminURL, Memo: inst.Memo}
	if v.Credentials != nil {
		user, password, err := s.sealer.Open(*v.Credentials)
		if err != nil {
			return out, err
		}
		if app.UserName, err = encrypt(user); err != nil {
			return out, err
		}
		if app.Password, err = encrypt(password); err != nil {
			return out, err
		}
	}
	out.AppInfo = app
	return out, nil
}

// encryptField applies KOOGALLERY_APPINFO_ENCRYPTION to one field.
func (s *marketplace) encryptField(plain string) (string, error) {
	switch s.cfg.Encryption {
	case EncryptNone:
		return plain, nil
	case EncryptAES128:
		return encryptWith(s.cfg.AccessKey, koogallery.AES128, plain)
	default:
		return encryptWith(s.cfg.AccessKey, koogallery.AES256, plain)
	}
}

// encryptWith encrypts one field (contract §2.6); an empty one stays empty.
func encryptWith(key string, size koogallery.KeySize, plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	return koogallery.EncryptField(key, size, plain)
}

// inClear leaves a field as it is: for an answer that encrypts it itself.
func inClear(plain string) (string, error) { return plain, nil }

// changeInstanceCheck asks the instance's workflow, synchronously, whether
// the target spec fits the tenant (contract §1.8). A rejection is answered with
// ResultChangeRejected and the application's reason.
func (s *marketplace) changeInstanceCheck(c *gin.Context, req *koogallery.ChangeInstanceCheckRequest) koogallery.ResultCode {
	ctx := c.Request.Context()
	reject := func(code koogallery.ResultCode, msg string) koogallery.ResultCode {
		s.answer(c, http.StatusOK, koogallery.Response{ResultCode: code, ResultMsg: msg})
		return code
	}
	views, err := s.cfg.Store.Instances.LookupInstances(ctx, []string{req.InstanceID})
	if err != nil {
		s.log.Error("changeInstanceCheck: read model unavailable", "error", err)
		return reject(koogallery.ResultInternalError, msgUnavailable)
	}
	v, ok := views[req.InstanceID]
	if !ok {
		return reject(koogallery.ResultInstanceNotFound, msgUnknown)
	}
	state := workflows.StateProvisioning
	if v.Instance != nil {
		state = workflows.State(v.Instance.State)
	}
	if state != workflows.StateActive && state != workflows.StateGrace && state != workflows.StateFrozen {
		return reject(koogallery.ResultChangeRejected, fmt.Sprintf("the instance is %s; its spec cannot be changed now", state))
	}

	target := workflows.ChangeCheckRequest{SkuCode: req.ProductInfo.SkuCode, ProductID: req.ProductInfo.ProductID}
	if lv := req.ProductInfo.LinearValue; lv != nil {
		n := int64(*lv)
		target.LinearValue = &n
	}
	// The workflow asks the merchant's application; the question waits at
	// most until the answer budget runs out (ctx's deadline).
	result, err := s.askChangeCheck(ctx, req.InstanceID, target)
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return reject(koogallery.ResultChangeRejected, "the instance is no longer running; its spec cannot be changed")
		}
		if ctx.Err() != nil {
			// Not decided in time: 000005 makes the buyer's console
			// ask again rather than take a guess for an answer.
			s.log.Warn("changeInstanceCheck: not decided within the answer budget", "instanceId", req.InstanceID)
			return reject(koogallery.ResultInternalError, msgNotDecidedInTime)
		}
		s.log.Error("changeInstanceCheck: instance workflow did not answer", "instanceId", req.InstanceID, "error", err)
		return reject(koogallery.ResultInternalError, msgUnavailable)
	}
	if !result.Allowed {
		reason := strings.TrimSpace(result.Reason)
		if reason == "" {
			reason = "the change does not fit the tenant's current usage"
		}
		return reject(koogallery.ResultChangeRejected, reason)
	}
	return reject(koogallery.ResultSuccess, "change allowed")
}

func (s *marketplace) askChangeCheck(ctx context.Context, instanceID string, target workflows.ChangeCheckRequest) (workflows.ChangeCheckResult, error) {
	handle, err := s.cfg.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.InstanceWorkflowID(instanceID),
		UpdateName:   workflows.ChangeCheckUpdate,
		Args:         []any{target},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return workflows.ChangeCheckResult{}, err
	}
	var result workflows.ChangeCheckResult
	err = handle.Get(ctx, &result)
	return result, err
}

// usageTotals is the usage queryInstance shows: cumulative, except for a
// package whose content resets, which shows what was consumed in its
// current cycle (its quota is counted per cycle).
func (s *marketplace) usageTotals(ctx context.Context, ids []string, views map[string]store.InstanceView) (map[string][]store.UsageTotal, error) {
	usage, err := s.cfg.Store.Metering.UsageTotals(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if cycle := packageCycle(views[id].Instance); cycle != nil {
			if usage[id], err = s.cfg.Store.Metering.PackageUsageSince(ctx, id, cycle.Start); err != nil {
				return nil, err
			}
		}
	}
	return usage, nil
}

// packageCycle is the current cycle of a package whose content resets, as
// its workflow wrote it in the read model; nil for anything else.
func packageCycle(inst *store.Instance) *activities.PackageCycleDetails {
	if inst == nil || inst.ChargingMode != "ON_DEMAND_PKG" || len(inst.Details) == 0 {
		return nil
	}
	var d activities.InstanceDetails
	if err := json.Unmarshal(inst.Details, &d); err != nil {
		return nil // written by the workflow: never malformed in practice
	}
	return d.PackageCycle
}

// usageInfo is the usage a pay-per-use instance or a package shows in
// queryInstance (contract §1.3): a pay-per-use instance its cumulative billed
// usage, a package what each instance it covers consumed. Both always
// carry usageValue and statisticalTime.
func (s *marketplace) usageInfo(inst *store.Instance, totals []store.UsageTotal) []koogallery.UsageInfo {
	if inst == nil || (inst.ChargingMode != "ON_DEMAND" && inst.ChargingMode != "ON_DEMAND_PKG") {
		return nil
	}
	now := koogallery.FormatTimeMillis(s.cfg.Now())
	if len(totals) == 0 {
		return []koogallery.UsageInfo{{UsageValue: 0, StatisticalTime: now}}
	}
	out := make([]koogallery.UsageInfo, 0, len(totals))
	for _, t := range totals {
		v, _ := strconv.ParseFloat(t.Quantity, 64) // Double(12,4) in the marketplace's table
		out = append(out, koogallery.UsageInfo{
			RelatedInstanceID: t.Related, UsageValue: v, StatisticalTime: koogallery.FormatTimeMillis(t.At),
		})
	}
	return out
}
