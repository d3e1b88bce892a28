package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// The KooGallery emulator's tables (schema/migrations/0003_emulator.sql).

// EmulatorOrder is an order the emulator sold: a purchase's first order,
// or a renewal, change, conversion or unsubscription of it.
type EmulatorOrder struct {
	OrderID      string     `db:"order_id"`
	OrderLineID  string     `db:"order_line_id"`
	PurchaseID   string     `db:"purchase_id"`
	OrderType    string     `db:"order_type"`
	ChargingMode string     `db:"charging_mode"`
	PeriodType   string     `db:"period_type"`
	PeriodNumber int        `db:"period_number"`
	SkuCode      string     `db:"sku_code"`
	ProductID    string     `db:"product_id"`
	LinearValue  *int64     `db:"linear_value"`
	ExpireTime   *time.Time `db:"expire_time"`
	CustomerID   string     `db:"customer_id"`
	CustomerName string     `db:"customer_name"`
	CreatedAt    time.Time  `db:"created_at"`
}

const emulatorOrderColumns = `order_id, order_line_id, purchase_id, order_type, charging_mode, period_type,
	period_number, sku_code, product_id, linear_value, expire_time, customer_id, customer_name, created_at`

// SaveEmulatorOrder stores an order once; saving it again changes nothing.
func (d *DB) SaveEmulatorOrder(ctx context.Context, o EmulatorOrder) error {
	_, err := d.x.NamedExecContext(ctx, `
		INSERT INTO emulator_orders (order_id, order_line_id, purchase_id, order_type, charging_mode,
			period_type, period_number, sku_code, product_id, linear_value, expire_time, customer_id, customer_name)
		VALUES (:order_id, :order_line_id, :purchase_id, :order_type, :charging_mode,
			:period_type, :period_number, :sku_code, :product_id, :linear_value, :expire_time, :customer_id, :customer_name)
		ON CONFLICT (order_id) DO NOTHING`, o)
	if err != nil {
		return fmt.Errorf("save emulator order %s: %w", o.OrderID, err)
	}
	return nil
}

// EmulatorOrder returns an order by ID, or ErrNotFound.
func (d *DB) EmulatorOrder(ctx context.Context, orderID string) (EmulatorOrder, error) {
	var o EmulatorOrder
	err := d.x.GetContext(ctx, &o, `SELECT `+emulatorOrderColumns+` FROM emulator_orders WHERE order_id = $1`, orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return EmulatorOrder{}, ErrNotFound
	}
	if err != nil {
		return EmulatorOrder{}, fmt.Errorf("read emulator order %s: %w", orderID, err)
	}
	return o, nil
}

// EmulatorOrdersOf lists a purchase's orders, oldest first.
func (d *DB) EmulatorOrdersOf(ctx context.Context, purchaseID string) ([]EmulatorOrder, error) {
	out := []EmulatorOrder{}
	if err := d.x.SelectContext(ctx, &out, `SELECT `+emulatorOrderColumns+` FROM emulator_orders
		WHERE purchase_id = $1 ORDER BY created_at, order_id`, purchaseID); err != nil {
		return nil, fmt.Errorf("list orders of emulated purchase %s: %w", purchaseID, err)
	}
	return out, nil
}

// EmulatorPurchase is a purchase as the emulated marketplace sees it.
type EmulatorPurchase struct {
	PurchaseID         string     `db:"purchase_id" json:"purchaseId"`
	State              string     `db:"state" json:"state"`
	ChargingMode       string     `db:"charging_mode" json:"chargingMode"`
	ProductID          string     `db:"product_id" json:"productId"`
	Supervised         bool       `db:"supervised" json:"supervised"`
	Debug              bool       `db:"debug" json:"debug"`
	InstanceID         string     `db:"instance_id" json:"instanceId,omitempty"`
	ExpireTime         *time.Time `db:"expire_time" json:"expireTime,omitempty"`
	EmulatedExpireTime *time.Time `db:"emulated_expire_time" json:"emulatedExpireTime,omitempty"`
	SupervisionStage   string     `db:"supervision_stage" json:"supervisionStage,omitempty"`
	Revision           int64      `db:"revision" json:"revision"`
	CreatedAt          time.Time  `db:"created_at" json:"createdAt"`
	UpdatedAt          time.Time  `db:"updated_at" json:"updatedAt"`
}

const emulatorPurchaseColumns = `purchase_id, state, charging_mode, product_id, supervised, debug, instance_id,
	expire_time, emulated_expire_time, supervision_stage, revision, created_at, updated_at`

// EmulatorEvent is one entry of an emulated purchase's timeline.
type EmulatorEvent struct {
	PurchaseID string    `db:"purchase_id" json:"-"`
	Key        string    `db:"event_key" json:"key"`
	At         time.Time `db:"at" json:"at"`
	EmulatedAt time.Time `db:"emulated_at" json:"emulatedAt"`
	Kind       string    `db:"kind" json:"kind"`
	Message    string    `db:"message" json:"message"`
}

// SaveEmulatorPurchase writes a purchase and appends timeline events, in one
// transaction; an older revision does not overwrite a newer one and events
// are appended once per key.
func (d *DB) SaveEmulatorPurchase(ctx context.Context, p EmulatorPurchase, events []EmulatorEvent) error {
	err := inTx(ctx, d.x, func(tx *sqlx.Tx) error {
		if _, err := tx.NamedExecContext(ctx, `
			INSERT INTO emulator_purchases (purchase_id, state, charging_mode, product_id, supervised, debug,
				instance_id, expire_time, emulated_expire_time, supervision_stage, revision, updated_at)
			VALUES (:purchase_id, :state, :charging_mode, :product_id, :supervised, :debug,
				:instance_id, :expire_time, :emulated_expire_time, :supervision_stage, :revision, now())
			ON CONFLICT (purchase_id) DO UPDATE SET
				state = EXCLUDED.state, instance_id = EXCLUDED.instance_id, expire_time = EXCLUDED.expire_time,
				emulated_expire_time = EXCLUDED.emulated_expire_time,
				supervision_stage = EXCLUDED.supervision_stage, revision = EXCLUDED.revision, updated_at = now()
			WHERE emulator_purchases.revision < EXCLUDED.revision`, p); err != nil {
			return fmt.Errorf("upsert: %w", err)
		}
		for _, e := range events {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO emulator_events (purchase_id, event_key, at, emulated_at, kind, message)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (purchase_id, event_key) DO NOTHING`,
				p.PurchaseID, e.Key, e.At, e.EmulatedAt, e.Kind, e.Message); err != nil {
				return fmt.Errorf("append event %s: %w", e.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save emulated purchase %s: %w", p.PurchaseID, err)
	}
	return nil
}

// EmulatorPurchase returns a purchase, or ErrNotFound.
func (d *DB) EmulatorPurchase(ctx context.Context, purchaseID string) (EmulatorPurchase, error) {
	var p EmulatorPurchase
	err := d.x.GetContext(ctx, &p, `SELECT `+emulatorPurchaseColumns+` FROM emulator_purchases WHERE purchase_id = $1`, purchaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return EmulatorPurchase{}, ErrNotFound
	}
	if err != nil {
		return EmulatorPurchase{}, fmt.Errorf("read emulated purchase %s: %w", purchaseID, err)
	}
	return p, nil
}

// EmulatorPurchases lists purchases, newest first.
func (d *DB) EmulatorPurchases(ctx context.Context, limit int) ([]EmulatorPurchase, error) {
	out := []EmulatorPurchase{}
	if err := d.x.SelectContext(ctx, &out, `SELECT `+emulatorPurchaseColumns+` FROM emulator_purchases
		ORDER BY created_at DESC, purchase_id LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("list emulated purchases: %w", err)
	}
	return out, nil
}

// EmulatorEvents returns a purchase's timeline, oldest first.
func (d *DB) EmulatorEvents(ctx context.Context, purchaseID string) ([]EmulatorEvent, error) {
	out := []EmulatorEvent{}
	if err := d.x.SelectContext(ctx, &out, `SELECT purchase_id, event_key, at, emulated_at, kind, message
		FROM emulator_events WHERE purchase_id = $1 ORDER BY at, id`, purchaseID); err != nil {
		return nil, fmt.Errorf("list events of emulated purchase %s: %w", purchaseID, err)
	}
	return out, nil
}

// EmulatorAppInfo is what queryInstance handed over; UserName and Password
// as received (encrypted unless the merchant sends them plain).
type EmulatorAppInfo struct {
	PurchaseID  string    `db:"purchase_id"`
	FrontEndURL string    `db:"front_end_url"`
	AdminURL    string    `db:"admin_url"`
	UserName    string    `db:"user_name"`
	Password    string    `db:"password"`
	Memo        string    `db:"memo"`
	ReceivedAt  time.Time `db:"received_at"`
}

// SaveEmulatorAppInfo records a purchase's access information.
func (d *DB) SaveEmulatorAppInfo(ctx context.Context, a EmulatorAppInfo) error {
	_, err := d.x.NamedExecContext(ctx, `
		INSERT INTO emulator_app_info (purchase_id, front_end_url, admin_url, user_name, password, memo)
		VALUES (:purchase_id, :front_end_url, :admin_url, :user_name, :password, :memo)
		ON CONFLICT (purchase_id) DO UPDATE SET front_end_url = EXCLUDED.front_end_url,
			admin_url = EXCLUDED.admin_url, user_name = EXCLUDED.user_name, password = EXCLUDED.password,
			memo = EXCLUDED.memo, received_at = now()`, a)
	if err != nil {
		return fmt.Errorf("save app info of emulated purchase %s: %w", a.PurchaseID, err)
	}
	return nil
}

// EmulatorAppInfo returns a purchase's access information, or ErrNotFound.
func (d *DB) EmulatorAppInfo(ctx context.Context, purchaseID string) (EmulatorAppInfo, error) {
	var a EmulatorAppInfo
	err := d.x.GetContext(ctx, &a, `SELECT purchase_id, front_end_url, admin_url, user_name, password, memo, received_at
		FROM emulator_app_info WHERE purchase_id = $1`, purchaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return EmulatorAppInfo{}, ErrNotFound
	}
	if err != nil {
		return EmulatorAppInfo{}, fmt.Errorf("read app info of emulated purchase %s: %w", purchaseID, err)
	}
	return a, nil
}

// EmulatorMessage is a production-interface call that failed (生产接口消息):
// the console lists it and an operator can restart it.
type EmulatorMessage struct {
	ID            string     `db:"id" json:"id"`
	PurchaseID    string     `db:"purchase_id" json:"purchaseId"`
	Activity      string     `db:"activity" json:"activity"`
	Body          string     `db:"body" json:"body"`
	Error         string     `db:"error" json:"error"`
	Attempts      int        `db:"attempts" json:"attempts"`
	Status        string     `db:"status" json:"status"`
	FirstFailedAt time.Time  `db:"first_failed_at" json:"firstFailedAt"`
	LastFailedAt  time.Time  `db:"last_failed_at" json:"lastFailedAt"`
	ResolvedAt    *time.Time `db:"resolved_at" json:"resolvedAt,omitempty"`
}

// Emulator message statuses.
const (
	MessageFailed   = "failed"
	MessageResolved = "resolved"
)

const emulatorMessageColumns = `id, purchase_id, activity, body, error, attempts, status, first_failed_at, last_failed_at, resolved_at`

// RecordEmulatorFailure records a failed attempt of a call.
func (d *DB) RecordEmulatorFailure(ctx context.Context, id, purchaseID, activity, body, reason string, at time.Time) error {
	_, err := d.x.ExecContext(ctx, `
		INSERT INTO emulator_messages (id, purchase_id, activity, body, error, attempts, status, first_failed_at, last_failed_at)
		VALUES ($1, $2, $3, $4, $5, 1, 'failed', $6, $6)
		ON CONFLICT (id) DO UPDATE SET error = EXCLUDED.error, attempts = emulator_messages.attempts + 1,
			status = 'failed', last_failed_at = EXCLUDED.last_failed_at, resolved_at = NULL`,
		id, purchaseID, activity, body, reason, at)
	if err != nil {
		return fmt.Errorf("record failed call %s: %w", id, err)
	}
	return nil
}

// ResolveEmulatorMessage marks a failed call as finally answered.
func (d *DB) ResolveEmulatorMessage(ctx context.Context, id string, at time.Time) error {
	if _, err := d.x.ExecContext(ctx, `UPDATE emulator_messages SET status = 'resolved', resolved_at = $2
		WHERE id = $1 AND status <> 'resolved'`, id, at); err != nil {
		return fmt.Errorf("resolve call %s: %w", id, err)
	}
	return nil
}

// EmulatorMessages lists failed calls, newest first; status "" lists all.
func (d *DB) EmulatorMessages(ctx context.Context, status string, limit int) ([]EmulatorMessage, error) {
	out := []EmulatorMessage{}
	if err := d.x.SelectContext(ctx, &out, `SELECT `+emulatorMessageColumns+` FROM emulator_messages
		WHERE ($1 = '' OR status = $1) ORDER BY last_failed_at DESC, id LIMIT $2`, status, limit); err != nil {
		return nil, fmt.Errorf("list failed calls: %w", err)
	}
	return out, nil
}

// EmulatorMessage returns one failed call, or ErrNotFound.
func (d *DB) EmulatorMessage(ctx context.Context, id string) (EmulatorMessage, error) {
	var m EmulatorMessage
	err := d.x.GetContext(ctx, &m, `SELECT `+emulatorMessageColumns+` FROM emulator_messages WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return EmulatorMessage{}, ErrNotFound
	}
	if err != nil {
		return EmulatorMessage{}, fmt.Errorf("read failed call %s: %w", id, err)
	}
	return m, nil
}

// EmulatorUsage is one usage record pushed to the emulator.
type EmulatorUsage struct {
	MeteringSN        string    `db:"metering_sn" json:"meteringSn"`
	InstanceID        string    `db:"instance_id" json:"instanceId"`
	BeginTime         time.Time `db:"begin_time" json:"beginTime"`
	EndTime           time.Time `db:"end_time" json:"endTime"`
	RecordTime        time.Time `db:"record_time" json:"recordTime"`
	UsageValue        string    `db:"usage_value" json:"usageValue"`
	RelatePkgInstance string    `db:"relate_pkg_instance" json:"relatePkgInstance,omitempty"`
	ReceivedAt        time.Time `db:"received_at" json:"receivedAt"`
}

// EmulatorInstanceExists reports whether an emulated purchase has the
// instance.
func (d *DB) EmulatorInstanceExists(ctx context.Context, instanceID string) (bool, error) {
	var ok bool
	if err := d.x.GetContext(ctx, &ok, `SELECT EXISTS (SELECT 1 FROM emulator_purchases WHERE instance_id = $1)`, instanceID); err != nil {
		return false, fmt.Errorf("look up emulated instance %s: %w", instanceID, err)
	}
	return ok, nil
}

// RecordEmulatorUsage stores pushed usage. A metering_sn seen before, or an
// (instance, begin, end) already recorded, is ignored: the first one wins
// (SPEC §6.2). It returns how many records were new.
func (d *DB) RecordEmulatorUsage(ctx context.Context, rows []EmulatorUsage) (int, error) {
	accepted := 0
	err := inTx(ctx, d.x, func(tx *sqlx.Tx) error {
		for _, r := range rows {
			res, err := tx.NamedExecContext(ctx, `
				INSERT INTO emulator_usage (metering_sn, instance_id, begin_time, end_time, record_time,
					usage_value, relate_pkg_instance, received_at)
				VALUES (:metering_sn, :instance_id, :begin_time, :end_time, :record_time,
					:usage_value, :relate_pkg_instance, :received_at)
				ON CONFLICT DO NOTHING`, r)
			if err != nil {
				return fmt.Errorf("record usage %s: %w", r.MeteringSN, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			accepted += int(n)
		}
		return nil
	})
	return accepted, err
}

// EmulatorUsageOf lists an instance's usage records by period.
func (d *DB) EmulatorUsageOf(ctx context.Context, instanceID string) ([]EmulatorUsage, error) {
	out := []EmulatorUsage{}
	if err := d.x.SelectContext(ctx, &out, `SELECT metering_sn, instance_id, begin_time, end_time, record_time,
		usage_value::text AS usage_value, relate_pkg_instance, received_at
		FROM emulator_usage WHERE instance_id = $1 ORDER BY begin_time, metering_sn`, instanceID); err != nil {
		return nil, fmt.Errorf("list usage of %s: %w", instanceID, err)
	}
	return out, nil
}

// EmulatorPurchaseOfInstance returns the purchase that has an instance, or
// ErrNotFound.
func (d *DB) EmulatorPurchaseOfInstance(ctx context.Context, instanceID string) (EmulatorPurchase, error) {
	var p EmulatorPurchase
	err := d.x.GetContext(ctx, &p, `SELECT `+emulatorPurchaseColumns+` FROM emulator_purchases
		WHERE instance_id = $1 ORDER BY created_at DESC, purchase_id LIMIT 1`, instanceID)
	if errors.Is(err, sql.ErrNoRows) {
		return EmulatorPurchase{}, ErrNotFound
	}
	if err != nil {
		return EmulatorPurchase{}, fmt.Errorf("read emulated purchase of instance %s: %w", instanceID, err)
	}
	return p, nil
}
