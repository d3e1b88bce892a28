package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// Limits of usage intake.
const (
	maxUsageRecords   = 10000
	maxUsageBodyBytes = 16 << 20
	maxUsageKey       = 128
	maxMeter          = 64
	// usageFutureSkew tolerates the application's clock running ahead.
	usageFutureSkew = 5 * time.Minute
)

// UsageIntake is the body of POST /v1/usage.
type UsageIntake struct {
	Records []UsageIn `json:"records"`
}

// UsageIn is one usage record from the merchant's application.
type UsageIn struct {
	InstanceID string `json:"instanceId"`
	// Meter names what is measured (a billing item); informational.
	Meter string `json:"meter"`
	// Quantity is a JSON number (or a numeric string): > 0, at most 4
	// decimals.
	Quantity json.RawMessage `json:"quantity"`
	// Time is when the usage happened, RFC 3339: it decides the period.
	Time string `json:"time"`
	// IdempotencyKey makes a resent record a duplicate, not new usage.
	IdempotencyKey string `json:"idempotencyKey"`
}

// UsageRejection says why a record was refused, by its index in the batch:
// by validation here, or by the store (a reused idempotency key, usage a
// record could not carry).
type UsageRejection = store.UsageRefusal

// auth admits the admin token or the usage token (the one the
// merchant's application reports usage with).
func (s *usageIntake) auth() gin.HandlerFunc {
	return bearerAuth(s.log, "FULFILLMENT_USAGE_TOKEN or FULFILLMENT_ADMIN_TOKEN", s.cfg.UsageToken, s.cfg.AdminToken)
}

// post serves POST /v1/usage: a batch of usage records, all validated
// before any is stored, stored once per idempotency key.
func (s *usageIntake) post(c *gin.Context) {
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxUsageBodyBytes))
	if err != nil {
		fault.Respond(c, s.log, fault.TooLarge(fmt.Sprintf("the body must be at most %d bytes", maxUsageBodyBytes)))
		return
	}
	var in UsageIntake
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fault.Respond(c, s.log, fault.Invalid(`the body must be {"records": [{"instanceId", "meter", "quantity", "time", "idempotencyKey"}, …]}`))
		return
	}
	if len(in.Records) == 0 || len(in.Records) > maxUsageRecords {
		fault.Respond(c, s.log, fault.Invalid(fmt.Sprintf("send from 1 to %d records", maxUsageRecords)))
		return
	}
	records, rejected, err := s.validateUsage(c, in.Records)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	if len(rejected) > 0 {
		s.refuseUsage(c, len(in.Records), rejected)
		return
	}
	accepted, refused, err := s.cfg.Store.Metering.InsertUsage(c.Request.Context(), records, koogallery.MaxUsageValue)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	if len(refused) > 0 {
		s.refuseUsage(c, len(in.Records), refused)
		return
	}
	c.JSON(http.StatusOK, gin.H{"accepted": accepted, "duplicates": len(records) - accepted})
}

// refuseUsage answers 400 for a batch with refused records (at most 50
// listed, by their index in the batch); nothing of it was stored.
func (s *usageIntake) refuseUsage(c *gin.Context, total int, refused []UsageRejection) {
	err := fault.Invalid(fmt.Sprintf("%d of %d records are invalid; nothing was stored", len(refused), total))
	fault.Respond(c, s.log, err.With("records", refused[:min(len(refused), 50)]))
}

// validateUsage checks every record; instances are looked up at once.
func (s *usageIntake) validateUsage(c *gin.Context, in []UsageIn) ([]store.Usage, []UsageRejection, error) {
	ids := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, r := range in {
		// Only IDs that can exist are looked up: PostgreSQL would fail the
		// whole lookup on one with a NUL character.
		if !seen[r.InstanceID] && validID(r.InstanceID) {
			seen[r.InstanceID] = true
			ids = append(ids, r.InstanceID)
		}
	}
	targets, err := s.cfg.Store.Metering.UsageTargets(c.Request.Context(), ids)
	if err != nil {
		return nil, nil, err
	}
	now := s.cfg.Now()
	out := make([]store.Usage, 0, len(in))
	var rejected []UsageRejection
	keys := map[string]int{}
	for i, r := range in {
		u, err := validUsage(r, targets, now)
		if err == nil {
			if first, dup := keys[r.IdempotencyKey]; dup && !sameUsage(in[first], r) {
				err = fmt.Errorf("idempotencyKey is also used by record %d with other values", first)
			}
			keys[r.IdempotencyKey] = i
		}
		if err != nil {
			rejected = append(rejected, UsageRejection{Index: i, Error: err.Error()})
			continue
		}
		out = append(out, u)
	}
	return out, rejected, nil
}

func sameUsage(a, b UsageIn) bool {
	return a.InstanceID == b.InstanceID && a.Meter == b.Meter && a.Time == b.Time && bytes.Equal(a.Quantity, b.Quantity)
}

func validUsage(r UsageIn, targets map[string]store.UsageTarget, now time.Time) (store.Usage, error) {
	switch {
	case r.IdempotencyKey == "":
		return store.Usage{}, errors.New("idempotencyKey is required")
	case len(r.IdempotencyKey) > maxUsageKey || !utf8.ValidString(r.IdempotencyKey) || strings.ContainsRune(r.IdempotencyKey, 0):
		return store.Usage{}, fmt.Errorf("idempotencyKey must be valid text of at most %d bytes", maxUsageKey)
	case r.Meter == "" || len(r.Meter) > maxMeter || !utf8.ValidString(r.Meter) || strings.ContainsRune(r.Meter, 0):
		return store.Usage{}, fmt.Errorf("meter is required: text of at most %d bytes", maxMeter)
	}
	target, ok := targets[r.InstanceID]
	switch {
	case r.InstanceID != "" && !validID(r.InstanceID):
		return store.Usage{}, errors.New(idError("instanceId"))
	case !ok:
		return store.Usage{}, errors.New("instanceId is unknown")
	case target.ChargingMode != "ON_DEMAND":
		return store.Usage{}, errors.New("instanceId is not a pay-per-use instance")
	case target.State == string(workflows.StateReleased):
		return store.Usage{}, errors.New("instanceId is released")
	}
	q, err := usageQuantity(r.Quantity)
	if err != nil {
		return store.Usage{}, err
	}
	at, err := time.Parse(time.RFC3339Nano, r.Time)
	switch {
	case err != nil:
		return store.Usage{}, errors.New("time must be RFC 3339, such as 2026-11-20T10:15:00Z")
	case at.After(now.Add(usageFutureSkew)):
		return store.Usage{}, errors.New("time is in the future")
	case now.Sub(at) > koogallery.UsageMaxAge:
		return store.Usage{}, errors.New("time is older than 21 days: the marketplace no longer accepts it")
	}
	return store.Usage{IdempotencyKey: r.IdempotencyKey, InstanceID: r.InstanceID, Meter: r.Meter, Quantity: q, OccurredAt: at.UTC()}, nil
}

// usageQuantity reads a quantity given as a JSON number or numeric string.
func usageQuantity(raw json.RawMessage) (string, error) {
	text := strings.TrimSpace(string(raw))
	if unquoted, ok := strings.CutPrefix(text, `"`); ok {
		text = strings.TrimSuffix(unquoted, `"`)
	}
	v, err := koogallery.ParseUsageValue(text)
	if err == nil {
		err = v.Validate()
	}
	if err != nil {
		return "", fmt.Errorf("quantity must be a number greater than 0 with at most 4 decimals, at most %s (one record's limit)",
			koogallery.MaxUsageValue)
	}
	return v.String(), nil
}

// UsageView is GET /v1/instances/{id}/usage.
type UsageView struct {
	InstanceID string              `json:"instanceId"`
	Summary    store.UsageSummary  `json:"summary"`
	Periods    []store.UsagePeriod `json:"periods"`
	// Package is set for a package instance: its quota and what is left.
	Package *PackageUsage `json:"package,omitempty"`
}

// PackageUsage is a package's quota, what the instances it covers drew on
// it and what is left: in the current cycle for a package whose content
// resets (Cycle), over its whole life otherwise.
type PackageUsage struct {
	Quota     string `json:"quota"`
	Used      string `json:"used"`
	Remaining string `json:"remaining"`
	Active    bool   `json:"active"`
	// Cycle is the current cycle of a package whose content resets
	// monthly or yearly: Used and Remaining count from its start.
	Cycle *activities.PackageCycleDetails `json:"cycle,omitempty"`
}

// packageUsage reads a package instance's quota and cycle; nil for an
// instance that is no package.
func (s *operatorAPI) packageUsage(ctx context.Context, id string) (*PackageUsage, error) {
	p, err := s.cfg.Store.Metering.Package(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	quota, _ := new(big.Rat).SetString(p.Quota)
	used, _ := new(big.Rat).SetString(p.Consumed)
	if quota == nil || used == nil {
		return nil, fmt.Errorf("package %s: quota %q or consumption %q is not a decimal", id, p.Quota, p.Consumed)
	}
	left := new(big.Rat).Sub(quota, used)
	if left.Sign() < 0 {
		left.SetInt64(0)
	}
	out := &PackageUsage{Quota: p.Quota, Used: p.Consumed, Remaining: left.FloatString(4), Active: p.Active}
	inst, err := s.cfg.Store.Instances.Instance(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err == nil {
		out.Cycle = packageCycle(&inst)
	}
	return out, nil
}

// getUsage serves GET /v1/instances/{id}/usage?from=…&to=…&limit=…: the
// instance's metering periods (what was pushed under which metering_sn,
// what is pending or expired) and its totals.
func (s *operatorAPI) getUsage(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := instanceIDParam(c)
	if err != nil {
		fault.Respond(c, s.log, err)
		return
	}
	if _, err := s.cfg.Store.Callbacks.InstanceKey(ctx, id); err != nil {
		if errors.Is(err, store.ErrUnknownInstance) {
			fault.Respond(c, s.log, fault.NotFound("no such instance"))
			return
		}
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	from, to := time.Unix(0, 0).UTC(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, into := range map[string]*time.Time{"from": &from, "to": &to} {
		if raw := c.Query(name); raw != "" {
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				fault.Respond(c, s.log, fault.Invalid(name+" must be an RFC 3339 time"))
				return
			}
			*into = t
		}
	}
	limit := 1000
	if raw := c.Query("limit"); raw != "" {
		var n int
		if _, err := fmt.Sscanf(raw, "%d", &n); err != nil || n < 1 || n > 10000 || fmt.Sprint(n) != raw {
			fault.Respond(c, s.log, fault.Invalid("limit must be a number from 1 to 10000"))
			return
		}
		limit = n
	}
	summary, err := s.cfg.Store.Metering.UsageSummaryOf(ctx, id)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	periods, err := s.cfg.Store.Metering.UsagePeriodsOf(ctx, id, from, to, limit)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	pkg, err := s.packageUsage(ctx, id)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	c.JSON(http.StatusOK, UsageView{InstanceID: id, Summary: summary, Periods: periods, Package: pkg})
}
