package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// knownStates are the states the admin API accepts as a filter.
var knownStates = workflows.States

// auth requires "Authorization: Bearer <FULFILLMENT_ADMIN_TOKEN>".
// Digests of equal length are compared in constant time, so neither the
// token's content nor its length leaks through timing.
func (s *operatorAPI) auth() gin.HandlerFunc {
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return func(c *gin.Context) {
		if s.cfg.AdminToken == "" {
			c.Header("WWW-Authenticate", `Bearer realm="fulfillment"`)
			fault.Respond(c, s.log, fault.Unauthorized("the admin API is disabled: set FULFILLMENT_ADMIN_TOKEN"))
			return
		}
		token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="fulfillment"`)
			fault.Respond(c, s.log, fault.Unauthorized("missing or wrong bearer token"))
			return
		}
		c.Next()
	}
}

// InstanceView is the admin API's view of an instance.
type InstanceView struct {
	InstanceID  string       `json:"instanceId"`
	OrderID     string       `json:"orderId"`
	OrderLineID string       `json:"orderLineId"`
	State       string       `json:"state"`
	Reason      string       `json:"reason,omitempty"`
	Debug       bool         `json:"debug"`
	ExpireTime  *time.Time   `json:"expireTime"`
	Order       *OrderView   `json:"order,omitempty"`
	AppInfo     *AppInfoView `json:"appInfo,omitempty"`
	// What the workflow shows beyond the state: policy, who froze it,
	// the parked step, supervision, and the coming deadlines with why.
	activities.InstanceDetails
	Revision  int64          `json:"revision"`
	CreatedAt time.Time      `json:"createdAt"`
	UpdatedAt *time.Time     `json:"updatedAt,omitempty"`
	Events    []TimelineItem `json:"events,omitempty"`
	// OperatorActions is the audit trail of the admin API's signals.
	OperatorActions []store.OperatorAction `json:"operatorActions,omitempty"`
}

// OrderView is what the instance knows of its order.
type OrderView struct {
	OrderType    string `json:"orderType,omitempty"`
	ChargingMode string `json:"chargingMode,omitempty"`
	SkuCode      string `json:"skuCode,omitempty"`
	ProductID    string `json:"productId,omitempty"`
	LinearValue  *int64 `json:"linearValue,omitempty"`
	PeriodType   string `json:"periodType,omitempty"`
	PeriodNumber int    `json:"periodNumber,omitempty"`
	CustomerID   string `json:"customerId,omitempty"`
	CustomerName string `json:"customerName,omitempty"`
}

// AppInfoView is the buyer's access information, without the password.
type AppInfoView struct {
	FrontEndURL string `json:"frontEndUrl"`
	AdminURL    string `json:"adminUrl,omitempty"`
	UserName    string `json:"userName,omitempty"`
	Memo        string `json:"memo,omitempty"`
}

// TimelineItem is one entry of an instance's timeline: a callback as it was
// received, or a step of its workflow.
type TimelineItem struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
	Key     string    `json:"key,omitempty"`
}

// getInstance serves GET /v1/instances/{instanceId}.
func (s *operatorAPI) getInstance(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := instanceIDParam(c)
	if err != nil {
		fault.Respond(c, s.log, err)
		return
	}
	key, err := s.cfg.Store.Callbacks.InstanceKey(ctx, id)
	if errors.Is(err, store.ErrUnknownInstance) {
		fault.Respond(c, s.log, fault.NotFound("no such instance"))
		return
	}
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	view := InstanceView{
		InstanceID: key.InstanceID, OrderID: key.OrderID, OrderLineID: key.OrderLineID,
		State: string(workflows.StateProvisioning), Debug: key.Debug, CreatedAt: key.CreatedAt,
	}
	inst, err := s.cfg.Store.Instances.Instance(ctx, id)
	switch {
	case err == nil:
		s.fillInstance(&view, inst)
	case !errors.Is(err, store.ErrNotFound):
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	if view.AppInfo != nil {
		views, err := s.cfg.Store.Instances.LookupInstances(ctx, []string{id})
		if err != nil {
			fault.Respond(c, s.log, fault.Database(err))
			return
		}
		if creds := views[id].Credentials; creds != nil {
			user, _, err := s.sealer.Open(*creds)
			if err != nil {
				s.log.Error("Admin API: credentials unusable", "instanceId", id, "error", err)
			}
			view.AppInfo.UserName = user
		}
	}
	if view.Events, err = s.timeline(c, id); err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	if view.OperatorActions, err = s.cfg.Store.Audit.OperatorActions(ctx, id); err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	c.JSON(http.StatusOK, view)
}

func (s *operatorAPI) fillInstance(view *InstanceView, inst store.Instance) {
	view.State, view.Reason, view.Debug = inst.State, inst.Reason, inst.Debug
	view.ExpireTime, view.Revision = inst.ExpireTime, inst.Revision
	updated := inst.UpdatedAt
	view.UpdatedAt = &updated
	if inst.ChargingMode != "" || inst.OrderType != "" || inst.ProductID != "" {
		view.Order = &OrderView{
			OrderType: inst.OrderType, ChargingMode: inst.ChargingMode, SkuCode: inst.SkuCode,
			ProductID: inst.ProductID, LinearValue: inst.LinearValue, PeriodType: inst.PeriodType,
			PeriodNumber: inst.PeriodNumber, CustomerID: inst.CustomerID, CustomerName: inst.CustomerName,
		}
	}
	if inst.FrontEndURL != "" {
		view.AppInfo = &AppInfoView{FrontEndURL: inst.FrontEndURL, AdminURL: inst.AdminURL, Memo: inst.Memo}
	}
	if len(inst.Details) > 0 {
		if err := json.Unmarshal(inst.Details, &view.InstanceDetails); err != nil {
			s.log.Error("Admin API: instance details unreadable", "instanceId", inst.InstanceID, "error", err)
		}
	}
}

// timeline merges the callbacks as received with the workflow's steps.
func (s *operatorAPI) timeline(c *gin.Context, instanceID string) ([]TimelineItem, error) {
	ctx := c.Request.Context()
	callbacks, err := s.cfg.Store.Callbacks.CallbacksOf(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	events, err := s.cfg.Store.Instances.Events(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	items := make([]TimelineItem, 0, len(callbacks)+len(events))
	for _, cb := range callbacks {
		msg := cb.Activity + " received"
		if cb.Redeliveries > 0 {
			msg += fmt.Sprintf(" (sent %d more times)", cb.Redeliveries)
		}
		switch {
		case cb.Delivered():
			msg += "; delivered: " + cb.Outcome
		case cb.LastError != "":
			msg += fmt.Sprintf("; not yet delivered after %d attempts: %s", cb.Attempts, cb.LastError)
		default:
			msg += "; delivery pending"
		}
		if cb.Debug {
			msg += " [debug]"
		}
		items = append(items, TimelineItem{At: cb.ReceivedAt.UTC(), Kind: "received", Message: msg, Key: cb.DedupKey})
	}
	for _, e := range events {
		items = append(items, TimelineItem{At: e.OccurredAt.UTC(), Kind: e.Kind, Message: e.Message, Key: e.Key})
	}
	slices.SortStableFunc(items, func(a, b TimelineItem) int { return a.At.Compare(b.At) })
	return items, nil
}

// listInstances serves GET /v1/instances?state=…&orderId=…&limit=…&after=….
func (s *operatorAPI) listInstances(c *gin.Context) {
	f := store.InstanceFilter{State: c.Query("state"), OrderID: c.Query("orderId"), After: c.Query("after"), Limit: 100}
	if f.State != "" && !slices.Contains(knownStates, workflows.State(f.State)) {
		fault.Respond(c, s.log, fault.Invalid("unknown state; use one of "+joinStates()))
		return
	}
	for name, value := range map[string]string{"orderId": f.OrderID, "after": f.After} {
		if value != "" && !validID(value) {
			fault.Respond(c, s.log, fault.Invalid(idError(name)))
			return
		}
	}
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 500 {
			fault.Respond(c, s.log, fault.Invalid("limit must be a number from 1 to 500"))
			return
		}
		f.Limit = n
	}
	// One row more than the page tells whether another page follows.
	page := f.Limit
	f.Limit++
	rows, err := s.cfg.Store.Instances.ListInstances(c.Request.Context(), f)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	more := len(rows) > page
	rows = rows[:min(len(rows), page)]
	out := make([]InstanceView, 0, len(rows))
	for _, inst := range rows {
		v := InstanceView{InstanceID: inst.InstanceID, OrderID: inst.OrderID, OrderLineID: inst.OrderLineID, CreatedAt: inst.CreatedAt}
		s.fillInstance(&v, inst)
		out = append(out, v)
	}
	next := ""
	if more {
		next = out[len(out)-1].InstanceID
	}
	c.JSON(http.StatusOK, gin.H{"instances": out, "next": next})
}

func joinStates() string {
	names := make([]string, len(knownStates))
	for i, st := range knownStates {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}
