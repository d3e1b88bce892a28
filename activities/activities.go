// Package activities holds the side effects of the instance workflows: Query
// Order through the marketplace's open API, the merchant application's
// tenant operations through a Provisioner, and the read-model writes. Each
// activity is idempotent and marks failures that retrying cannot fix as
// non-retryable, so the workflow records them instead of looping.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
)

// OrderSource reads orders from the marketplace (koogallery.OpenAPIClient).
type OrderSource interface {
	QueryOrder(ctx context.Context, orderID, orderLineID string) (*koogallery.QueryOrderResult, error)
}

// Activities are the instance workflows' activities, registered under the
// names in ActivityNames.
type Activities struct {
	Orders      OrderSource
	Provisioner provisioner.Provisioner
	Store       *store.DB
	Sealer      Sealer
	Lifecycle   LifecycleConfig
	Alerts      Alerter
	Usage       UsagePusher
	// UsageValueForm is the JSON type usage_value is pushed as (contract
	// §11.3); empty means a number.
	UsageValueForm koogallery.UsageValueForm
	// Licenses uploads online licences (contract §13.3).
	Licenses LicenseUploader
}

// Error types of non-retryable failures, visible in the workflow history.
const (
	errTypeOrder       = "OrderUnavailable"
	errTypeProvisioner = "ProvisionerRejected"
)

// FetchOrder reads one order line through Query Order (contract §6.1).
// A V1 order was sent in the request itself and is read from the inbox.
func (a *Activities) FetchOrder(ctx context.Context, in FetchOrderInput) (Order, error) {
	if strings.HasPrefix(in.OrderLineID, V1OrderLinePrefix) && a.Store != nil {
		order, found, err := a.v1Order(ctx, in)
		if err != nil || found {
			return a.claimed(ctx, order, err, in.ClaimFor)
		}
	}
	res, err := a.Orders.QueryOrder(ctx, in.OrderID, in.OrderLineID)
	if err != nil {
		msg := fmt.Sprintf("Query Order %s: %v", in.OrderID, err)
		if !koogallery.IsRetryable(err) {
			return Order{}, temporal.NewNonRetryableApplicationError(msg, errTypeOrder, nil)
		}
		return Order{}, errors.New(msg)
	}
	if res.OrderInfo == nil {
		return Order{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("Query Order %s answered without orderInfo", in.OrderID), errTypeOrder, nil)
	}
	line, ok := res.OrderInfo.Line(in.OrderLineID)
	if !ok {
		return Order{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("order %s has no line %s", in.OrderID, in.OrderLineID), errTypeOrder, nil)
	}
	order, err := orderFromLine(res.OrderInfo, line)
	return a.claimed(ctx, order, err, in.ClaimFor)
}

// v1Order reads the order a V1 newInstance or upgrade carried, recorded in
// the inbox under the instance its order line names; found is false when
// there is none (a V2 order line that happens to look like a V1 one).
func (a *Activities) v1Order(ctx context.Context, in FetchOrderInput) (Order, bool, error) {
	raw, err := a.Store.Callbacks.LatestPayload(ctx, in.OrderLineID, in.OrderID)
	if err != nil || raw == nil {
		return Order{}, false, err
	}
	var p V1OrderPayload
	if err := json.Unmarshal(raw, &p); err != nil || p.V1Order.OrderID == "" {
		return Order{}, false, nil
	}
	return p.V1Order, true, nil
}

// claimed returns the order once a pay-per-use one's billing item is
// claimed for the instance claimFor (when set).
func (a *Activities) claimed(ctx context.Context, order Order, err error, claimFor string) (Order, error) {
	if err != nil || claimFor == "" || order.ChargingMode != string(koogallery.ChargingOnDemand) {
		return order, err
	}
	// A pay-per-use order has one instance per billing item (contract §1.2):
	// a second instance for the same orderId + productId would meter and
	// bill it twice.
	owner, err := a.Store.Metering.ClaimBillingItem(ctx, order.OrderID, order.ProductID, claimFor)
	if err != nil {
		return Order{}, err
	}
	if owner != claimFor {
		return Order{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"billing item %s of order %s is already served by instance %s: a pay-per-use order has one instance per billing item; "+
				"skip to abandon this duplicate", order.ProductID, order.OrderID, owner), errTypeOrder, nil)
	}
	return order, nil
}

func orderFromLine(info *koogallery.OrderInfo, line koogallery.OrderLine) (Order, error) {
	product := line.Product()
	o := Order{
		OrderID:      info.OrderID,
		OrderLineID:  line.OrderLineID,
		OrderType:    string(info.OrderType),
		ChargingMode: string(line.ChargingMode),
		SkuCode:      product.SkuCode,
		ProductID:    product.ProductID,
		PeriodType:   line.PeriodType,
		PeriodNumber: line.PeriodNumber,
	}
	if product.LinearValue != nil {
		v := int64(*product.LinearValue)
		o.LinearValue = &v
	}
	if info.BuyerInfo != nil {
		o.CustomerID, o.CustomerName = info.BuyerInfo.CustomerID, info.BuyerInfo.CustomerName
	}
	expire, ok, err := line.ExpireAt()
	if err != nil {
		return Order{}, temporal.NewNonRetryableApplicationError(err.Error(), errTypeOrder, nil)
	}
	if ok {
		o.ExpireTime = &expire
	}
	return o, nil
}

// Provision creates the tenant and seals its initial credentials into the
// database; only the non-secret access information goes back to the
// workflow, so credentials never appear in the workflow history.
func (a *Activities) Provision(ctx context.Context, in ProvisionInput) (AppInfo, error) {
	defer heartbeatWhileRunning(ctx)()
	t, err := a.Provisioner.Provision(ctx, provisioner.ProvisionRequest{
		InstanceID:   in.InstanceID,
		OrderID:      in.Order.OrderID,
		OrderLineID:  in.Order.OrderLineID,
		ChargingMode: in.Order.ChargingMode,
		PeriodType:   in.Order.PeriodType,
		PeriodNumber: in.Order.PeriodNumber,
		ExpireTime:   in.Order.ExpireTime,
		Spec:         specOf(in.Order),
		Customer:     provisioner.Customer{ID: in.Order.CustomerID, Name: in.Order.CustomerName},
		Debug:        in.Debug,
	})
	if err != nil {
		return AppInfo{}, provisionerError(err)
	}
	app := AppInfo{FrontEndURL: t.FrontEndURL, AdminURL: t.AdminURL, Memo: t.Memo}
	if t.UserName != "" || t.Password != "" {
		sealed, err := a.Sealer.Seal(t.UserName, t.Password)
		if err != nil {
			return AppInfo{}, err
		}
		if err := a.Store.Instances.SaveCredentials(ctx, in.InstanceID, sealed); err != nil {
			return AppInfo{}, err
		}
		app.HasCredentials = true
	}
	return app, nil
}

// heartbeatWhileRunning heartbeats until the returned function is called,
// when the activity has a heartbeat timeout: the application may take a
// minute to answer, and the heartbeats tell Temporal that this worker is
// still waiting for it, so that a dead worker's call is retried elsewhere
// within the heartbeat timeout. The SDK throttles what it sends.
func heartbeatWhileRunning(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return func() {}
	}
	every := activity.GetInfo(ctx).HeartbeatTimeout / 3
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			activity.RecordHeartbeat(ctx)
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	// No heartbeat may follow the activity's result.
	return func() { close(done); <-exited }
}

// Freeze makes the tenant unusable, keeping its data.
func (a *Activities) Freeze(ctx context.Context, in TenantInput) error {
	defer heartbeatWhileRunning(ctx)()
	return provisionerError(a.Provisioner.Freeze(ctx, tenantRequest(in)))
}

// Unfreeze makes the tenant usable again.
func (a *Activities) Unfreeze(ctx context.Context, in TenantInput) error {
	defer heartbeatWhileRunning(ctx)()
	return provisionerError(a.Provisioner.Unfreeze(ctx, tenantRequest(in)))
}

// Release deletes the tenant and its data.
func (a *Activities) Release(ctx context.Context, in TenantInput) error {
	defer heartbeatWhileRunning(ctx)()
	return provisionerError(a.Provisioner.Release(ctx, tenantRequest(in)))
}

// Upgrade applies the spec of an upgrade order.
func (a *Activities) Upgrade(ctx context.Context, in UpgradeInput) error {
	defer heartbeatWhileRunning(ctx)()
	return provisionerError(a.Provisioner.Upgrade(ctx, provisioner.UpgradeRequest{
		InstanceID: in.InstanceID, OrderID: in.Order.OrderID, Debug: in.Debug, Spec: specOf(in.Order),
	}))
}

// CheckChange asks whether the tenant fits a target spec.
func (a *Activities) CheckChange(ctx context.Context, in CheckChangeInput) (ChangeCheckResult, error) {
	v, err := a.Provisioner.CheckChange(ctx, provisioner.ChangeRequest{
		InstanceID: in.InstanceID,
		Debug:      in.Debug,
		Current:    specOf(in.Current),
		Target:     provisioner.Spec{SkuCode: in.Target.SkuCode, ProductID: in.Target.ProductID, LinearValue: in.Target.LinearValue},
	})
	if err != nil {
		return ChangeCheckResult{}, provisionerError(err)
	}
	return ChangeCheckResult{Allowed: v.Allowed, Reason: v.Reason}, nil
}

// SaveInstance writes the read model and the timeline. It is idempotent: a
// revision already stored or an event key already appended changes nothing.
func (a *Activities) SaveInstance(ctx context.Context, in SaveInput) error {
	m := in.Snapshot
	row := store.Instance{
		InstanceID:  m.InstanceID,
		OrderID:     m.OrderID,
		OrderLineID: m.OrderLineID,
		State:       m.State,
		Reason:      m.Reason,
		Debug:       m.Debug,
		ExpireTime:  m.ExpireTime,
		Revision:    m.Revision,
	}
	if o := m.Order; o != nil {
		row.ChargingMode, row.OrderType = o.ChargingMode, o.OrderType
		row.SkuCode, row.ProductID, row.LinearValue = o.SkuCode, o.ProductID, o.LinearValue
		row.PeriodType, row.PeriodNumber = o.PeriodType, o.PeriodNumber
		row.CustomerID, row.CustomerName = o.CustomerID, o.CustomerName
	}
	if app := m.AppInfo; app != nil {
		row.FrontEndURL, row.AdminURL, row.Memo = app.FrontEndURL, app.AdminURL, app.Memo
	}
	if next := m.NextDeadline; next != nil {
		row.NextDeadlineKind, row.NextDeadlineAt = next.Kind, &next.At
	}
	details, err := json.Marshal(m.Details)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("encode instance details: "+err.Error(), "BadSnapshot", nil)
	}
	row.Details = details
	events := make([]store.Event, 0, len(in.Events))
	for _, e := range in.Events {
		events = append(events, store.Event{Key: e.Key, Kind: e.Kind, Message: e.Message, OccurredAt: e.At.UTC()})
	}
	_, err = a.Store.Instances.SaveInstance(ctx, row, events)
	return err
}

func specOf(o Order) provisioner.Spec {
	return provisioner.Spec{SkuCode: o.SkuCode, ProductID: o.ProductID, LinearValue: o.LinearValue}
}

func tenantRequest(in TenantInput) provisioner.TenantRequest {
	return provisioner.TenantRequest{InstanceID: in.InstanceID, Debug: in.Debug, Reason: in.Reason, OperationID: in.OperationID}
}

// provisionerError marks permanent provisioner failures non-retryable.
func provisionerError(err error) error {
	if err == nil || !provisioner.IsPermanent(err) {
		return err
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), errTypeProvisioner, nil)
}
