package emulator

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the Postgres driver

	"github.com/fulfillment-server/fulfillment/schema"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the emulator's own migrations: its tables live in the
// Postgres schema emulator, never in the server's (fulfillment migrate
// creates none of them), tracked in emulator.schema_migrations under a lock
// of their own.
func Migrations() schema.Set {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(fmt.Sprintf("emulator: embedded migrations: %v", err)) // a constant, valid path
	}
	return schema.Set{Name: "emulator", Files: files, Schema: "emulator", LockID: 7_140_625_002}
}

// Store is the emulator's database: the orders it sold, its purchases with
// their timelines, the access information the merchant handed over, the
// failed production-interface calls and the usage pushed to the open API.
type Store struct {
	x *sqlx.DB
}

// OpenStore connects to the database at url and checks that it answers.
// Migrate creates or updates the emulator's tables.
func OpenStore(ctx context.Context, url string) (*Store, error) {
	x, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// The emulator usually shares the server's Postgres: a bounded pool
	// keeps a burst of its activities from taking the connections the
	// server needs.
	x.SetMaxOpenConns(20)
	x.SetMaxIdleConns(20)
	x.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := x.PingContext(pingCtx); err != nil {
		x.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &Store{x: x}, nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.x.Close() }

// Migrate applies the emulator's pending migrations and returns their names.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	return Migrations().Migrate(ctx, s.x.DB)
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.x.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Order is an order the emulator sold: a purchase's first order,
// or a renewal, change, conversion or unsubscription of it.
type Order struct {
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

const orderColumns = `order_id, order_line_id, purchase_id, order_type, charging_mode, period_type,
	period_number, sku_code, product_id, linear_value, expire_time, customer_id, customer_name, created_at`

// SaveOrder stores an order once; saving it again changes nothing.
func (s *Store) SaveOrder(ctx context.Context, o Order) error {
	_, err := s.x.NamedExecContext(ctx, `
		INSERT INTO emulator.orders (order_id, order_line_id, purchase_id, order_type, charging_mode,
			period_type, period_number, sku_code, product_id, linear_value, expire_time, customer_id, customer_name)
		VALUES (:order_id, :order_line_id, :purchase_id, :order_type, :charging_mode,
			:period_type, :period_number, :sku_code, :product_id, :linear_value, :expire_time, :customer_id, :customer_name)
		ON CONFLICT (order_id) DO NOTHING`, o)
	if err != nil {
		return fmt.Errorf("save emulator order %s: %w", o.OrderID, err)
	}
	return nil
}

// Order returns an order by ID, or ErrNotFound.
func (s *Store) Order(ctx context.Context, orderID string) (Order, error) {
	var o Order
	err := s.x.GetContext(ctx, &o, `SELECT `+orderColumns+` FROM emulator.orders WHERE order_id = $1`, orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("read emulator order %s: %w", orderID, err)
	}
	return o, nil
}

// OrdersOf lists a purchase's orders, oldest first.
func (s *Store) OrdersOf(ctx context.Context, purchaseID string) ([]Order, error) {
	out := []Order{}
	if err := s.x.SelectContext(ctx, &out, `SELECT `+orderColumns+` FROM emulator.orders
		WHERE purchase_id = $1 ORDER BY created_at, order_id`, purchaseID); err != nil {
		return nil, fmt.Errorf("list orders of emulated purchase %s: %w", purchaseID, err)
	}
	return out, nil
}

// Purchase is a purchase as the emulated marketplace sees it.
type Purchase struct {
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
	// Kit is the enterprise the app is bound to (联营 listings).
	Kit *KitView `db:"kit" json:"kit,omitempty"`
	// Licenses are the licence requests of an online licence purchase
	// (contract §13), with the uploads the console adds.
	Licenses  LicenseRequests `db:"licenses" json:"licenses,omitempty"`
	CreatedAt time.Time       `db:"created_at" json:"createdAt"`
	UpdatedAt time.Time       `db:"updated_at" json:"updatedAt"`
}

const purchaseColumns = `purchase_id, state, charging_mode, product_id, supervised, debug, instance_id,
	expire_time, emulated_expire_time, supervision_stage, revision, kit, licenses, created_at, updated_at`

// Event is one entry of an emulated purchase's timeline.
type Event struct {
	PurchaseID string    `db:"purchase_id" json:"-"`
	Key        string    `db:"event_key" json:"key"`
	At         time.Time `db:"at" json:"at"`
	EmulatedAt time.Time `db:"emulated_at" json:"emulatedAt"`
	Kind       string    `db:"kind" json:"kind"`
	Message    string    `db:"message" json:"message"`
}

// SavePurchase writes a purchase and appends timeline events, in one
// transaction; an older revision does not overwrite a newer one and events
// are appended once per key. The first write sets created_at, the origin
// of the purchase's emulated clock (p.CreatedAt; now when zero), and no
// later write changes it.
func (s *Store) SavePurchase(ctx context.Context, p Purchase, events []Event) error {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now()
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.NamedExecContext(ctx, `
			INSERT INTO emulator.purchases AS purchases (purchase_id, state, charging_mode, product_id, supervised, debug,
				instance_id, expire_time, emulated_expire_time, supervision_stage, revision, kit, licenses, created_at, updated_at)
			VALUES (:purchase_id, :state, :charging_mode, :product_id, :supervised, :debug,
				:instance_id, :expire_time, :emulated_expire_time, :supervision_stage, :revision, :kit, :licenses, :created_at, now())
			ON CONFLICT (purchase_id) DO UPDATE SET
				state = EXCLUDED.state, instance_id = EXCLUDED.instance_id, expire_time = EXCLUDED.expire_time,
				emulated_expire_time = EXCLUDED.emulated_expire_time, kit = EXCLUDED.kit, licenses = EXCLUDED.licenses,
				supervision_stage = EXCLUDED.supervision_stage, revision = EXCLUDED.revision, updated_at = now()
			WHERE purchases.revision < EXCLUDED.revision`, p); err != nil {
			return fmt.Errorf("upsert: %w", err)
		}
		for _, e := range events {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO emulator.events (purchase_id, event_key, at, emulated_at, kind, message)
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

// Purchase returns a purchase, or ErrNotFound.
func (s *Store) Purchase(ctx context.Context, purchaseID string) (Purchase, error) {
	var p Purchase
	err := s.x.GetContext(ctx, &p, `SELECT `+purchaseColumns+` FROM emulator.purchases WHERE purchase_id = $1`, purchaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return Purchase{}, ErrNotFound
	}
	if err != nil {
		return Purchase{}, fmt.Errorf("read emulated purchase %s: %w", purchaseID, err)
	}
	return p, nil
}

// Purchases lists purchases, newest first.
func (s *Store) Purchases(ctx context.Context, limit int) ([]Purchase, error) {
	out := []Purchase{}
	if err := s.x.SelectContext(ctx, &out, `SELECT `+purchaseColumns+` FROM emulator.purchases
		ORDER BY created_at DESC, purchase_id LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("list emulated purchases: %w", err)
	}
	return out, nil
}

// Events returns a purchase's timeline, oldest first.
func (s *Store) Events(ctx context.Context, purchaseID string) ([]Event, error) {
	out := []Event{}
	if err := s.x.SelectContext(ctx, &out, `SELECT purchase_id, event_key, at, emulated_at, kind, message
		FROM emulator.events WHERE purchase_id = $1 ORDER BY at, id`, purchaseID); err != nil {
		return nil, fmt.Errorf("list events of emulated purchase %s: %w", purchaseID, err)
	}
	return out, nil
}

// AppInfo is what queryInstance handed over; UserName and Password
// as received (encrypted unless the merchant sends them plain).
type AppInfo struct {
	PurchaseID  string    `db:"purchase_id"`
	FrontEndURL string    `db:"front_end_url"`
	AdminURL    string    `db:"admin_url"`
	UserName    string    `db:"user_name"`
	Password    string    `db:"password"`
	Memo        string    `db:"memo"`
	ReceivedAt  time.Time `db:"received_at"`
}

// SaveAppInfo records a purchase's access information.
func (s *Store) SaveAppInfo(ctx context.Context, a AppInfo) error {
	_, err := s.x.NamedExecContext(ctx, `
		INSERT INTO emulator.app_info (purchase_id, front_end_url, admin_url, user_name, password, memo)
		VALUES (:purchase_id, :front_end_url, :admin_url, :user_name, :password, :memo)
		ON CONFLICT (purchase_id) DO UPDATE SET front_end_url = EXCLUDED.front_end_url,
			admin_url = EXCLUDED.admin_url, user_name = EXCLUDED.user_name, password = EXCLUDED.password,
			memo = EXCLUDED.memo, received_at = now()`, a)
	if err != nil {
		return fmt.Errorf("save app info of emulated purchase %s: %w", a.PurchaseID, err)
	}
	return nil
}

// AppInfo returns a purchase's access information, or ErrNotFound.
func (s *Store) AppInfo(ctx context.Context, purchaseID string) (AppInfo, error) {
	var a AppInfo
	err := s.x.GetContext(ctx, &a, `SELECT purchase_id, front_end_url, admin_url, user_name, password, memo, received_at
		FROM emulator.app_info WHERE purchase_id = $1`, purchaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return AppInfo{}, ErrNotFound
	}
	if err != nil {
		return AppInfo{}, fmt.Errorf("read app info of emulated purchase %s: %w", purchaseID, err)
	}
	return a, nil
}

// Message is a production-interface call that failed (生产接口消息):
// the console lists it and an operator can restart it.
type Message struct {
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

// Message statuses.
const (
	MessageFailed   = "failed"
	MessageResolved = "resolved"
)

const messageColumns = `id, purchase_id, activity, body, error, attempts, status, first_failed_at, last_failed_at, resolved_at`

// RecordFailure records a failed attempt of a call.
func (s *Store) RecordFailure(ctx context.Context, id, purchaseID, activity, body, reason string, at time.Time) error {
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO emulator.messages AS messages (id, purchase_id, activity, body, error, attempts, status, first_failed_at, last_failed_at)
		VALUES ($1, $2, $3, $4, $5, 1, 'failed', $6, $6)
		ON CONFLICT (id) DO UPDATE SET error = EXCLUDED.error, attempts = messages.attempts + 1,
			status = 'failed', last_failed_at = EXCLUDED.last_failed_at, resolved_at = NULL`,
		id, purchaseID, activity, body, reason, at)
	if err != nil {
		return fmt.Errorf("record failed call %s: %w", id, err)
	}
	return nil
}

// ResolveMessage marks a failed call as finally answered.
func (s *Store) ResolveMessage(ctx context.Context, id string, at time.Time) error {
	if _, err := s.x.ExecContext(ctx, `UPDATE emulator.messages SET status = 'resolved', resolved_at = $2
		WHERE id = $1 AND status <> 'resolved'`, id, at); err != nil {
		return fmt.Errorf("resolve call %s: %w", id, err)
	}
	return nil
}

// Messages lists failed calls, newest first; status "" lists all.
func (s *Store) Messages(ctx context.Context, status string, limit int) ([]Message, error) {
	out := []Message{}
	if err := s.x.SelectContext(ctx, &out, `SELECT `+messageColumns+` FROM emulator.messages
		WHERE ($1 = '' OR status = $1) ORDER BY last_failed_at DESC, id LIMIT $2`, status, limit); err != nil {
		return nil, fmt.Errorf("list failed calls: %w", err)
	}
	return out, nil
}

// Message returns one failed call, or ErrNotFound.
func (s *Store) Message(ctx context.Context, id string) (Message, error) {
	var m Message
	err := s.x.GetContext(ctx, &m, `SELECT `+messageColumns+` FROM emulator.messages WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	if err != nil {
		return Message{}, fmt.Errorf("read failed call %s: %w", id, err)
	}
	return m, nil
}

// ReceivedUsage is one usage record pushed to the emulator's open API.
type ReceivedUsage struct {
	MeteringSN        string    `db:"metering_sn" json:"meteringSn"`
	InstanceID        string    `db:"instance_id" json:"instanceId"`
	BeginTime         time.Time `db:"begin_time" json:"beginTime"`
	EndTime           time.Time `db:"end_time" json:"endTime"`
	RecordTime        time.Time `db:"record_time" json:"recordTime"`
	UsageValue        string    `db:"usage_value" json:"usageValue"`
	RelatePkgInstance string    `db:"relate_pkg_instance" json:"relatePkgInstance,omitempty"`
	ReceivedAt        time.Time `db:"received_at" json:"receivedAt"`
	// SignedForm is the form of the push's body its signature covered
	// (koogallery.UsageSignatureForm); ValueForm the JSON type usage_value
	// came as (number or string).
	SignedForm string `db:"signed_form" json:"signedForm,omitempty"`
	ValueForm  string `db:"value_form" json:"valueForm,omitempty"`
	// PushID names the push that first delivered the record (blank for
	// records received before pushes were noted); PushRecords and
	// PushInstances are that push's counts, read with the record, so that
	// a record shows at a glance whether its push carried other instances.
	PushID        string `db:"push_id" json:"pushId,omitempty"`
	PushRecords   int    `db:"push_records" json:"pushRecords,omitempty"`
	PushInstances int    `db:"push_instances" json:"pushInstances,omitempty"`
}

// ReceivedPush is one usage push (one call) the open API accepted.
type ReceivedPush struct {
	PushID     string    `db:"push_id" json:"pushId"`
	ReceivedAt time.Time `db:"received_at" json:"receivedAt"`
	// Records counts the records in the call, NewRecords those stored as
	// new (0 for a resent batch), Instances the distinct instance_ids.
	Records    int `db:"records" json:"records"`
	NewRecords int `db:"new_records" json:"newRecords"`
	Instances  int `db:"instances" json:"instances"`
	// SignedForm is the form of the body the call's signature covered;
	// ValueForm the JSON type its usage_values came as: number, string, or
	// mixed.
	SignedForm string `db:"signed_form" json:"signedForm"`
	ValueForm  string `db:"value_form" json:"valueForm"`
}

const pushColumns = `push_id, received_at, records, new_records, instances, signed_form, value_form`

// InstanceExists reports whether an emulated purchase has the
// instance.
func (s *Store) InstanceExists(ctx context.Context, instanceID string) (bool, error) {
	var ok bool
	if err := s.x.GetContext(ctx, &ok, `SELECT EXISTS (SELECT 1 FROM emulator.purchases WHERE instance_id = $1)`, instanceID); err != nil {
		return false, fmt.Errorf("look up emulated instance %s: %w", instanceID, err)
	}
	return ok, nil
}

// RecordUsage stores one accepted push: its new records, each naming the
// push, and the push with its counts, in one transaction, so that the
// console never lists a push without its records or records without their
// push. A metering_sn seen before, or an (instance, begin, end) already
// recorded, is ignored: the first one wins (contract §6.2), and keeps the
// push that delivered it first. push gives the ID, the time and the forms;
// RecordUsage counts the rest and returns the push as stored.
func (s *Store) RecordUsage(ctx context.Context, push ReceivedPush, rows []ReceivedUsage) (ReceivedPush, error) {
	instances := map[string]bool{}
	for _, r := range rows {
		instances[r.InstanceID] = true
	}
	push.Records, push.NewRecords, push.Instances = len(rows), 0, len(instances)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		for _, r := range rows {
			r.PushID = push.PushID
			res, err := tx.NamedExecContext(ctx, `
				INSERT INTO emulator.usage (metering_sn, instance_id, begin_time, end_time, record_time,
					usage_value, relate_pkg_instance, received_at, signed_form, value_form, push_id)
				VALUES (:metering_sn, :instance_id, :begin_time, :end_time, :record_time,
					:usage_value, :relate_pkg_instance, :received_at, :signed_form, :value_form, :push_id)
				ON CONFLICT DO NOTHING`, r)
			if err != nil {
				return fmt.Errorf("record usage %s: %w", r.MeteringSN, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			push.NewRecords += int(n)
		}
		if _, err := tx.NamedExecContext(ctx, `INSERT INTO emulator.usage_pushes (`+pushColumns+`)
			VALUES (:push_id, :received_at, :records, :new_records, :instances, :signed_form, :value_form)`, push); err != nil {
			return fmt.Errorf("record usage push %s: %w", push.PushID, err)
		}
		return nil
	})
	if err != nil {
		return ReceivedPush{}, err
	}
	return push, nil
}

// usageColumns are a usage record's columns (u) with its push's counts
// (p, joined on push_id; 0 for records received before pushes were noted).
const usageColumns = `u.metering_sn, u.instance_id, u.begin_time, u.end_time, u.record_time,
	u.usage_value::text AS usage_value, u.relate_pkg_instance, u.received_at, u.signed_form, u.value_form,
	u.push_id, COALESCE(p.records, 0) AS push_records, COALESCE(p.instances, 0) AS push_instances`

// UsageOf lists an instance's usage records by period.
func (s *Store) UsageOf(ctx context.Context, instanceID string) ([]ReceivedUsage, error) {
	out := []ReceivedUsage{}
	if err := s.x.SelectContext(ctx, &out, `SELECT `+usageColumns+`
		FROM emulator.usage u LEFT JOIN emulator.usage_pushes p ON p.push_id = u.push_id
		WHERE u.instance_id = $1 ORDER BY u.begin_time, u.metering_sn`, instanceID); err != nil {
		return nil, fmt.Errorf("list usage of %s: %w", instanceID, err)
	}
	return out, nil
}

// UsagePushes lists the latest accepted usage pushes, newest first.
func (s *Store) UsagePushes(ctx context.Context, limit int) ([]ReceivedPush, error) {
	out := []ReceivedPush{}
	if err := s.x.SelectContext(ctx, &out, `SELECT `+pushColumns+` FROM emulator.usage_pushes
		ORDER BY received_at DESC, push_id DESC LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("list usage pushes: %w", err)
	}
	return out, nil
}

// UsagePush returns an accepted push and the records it delivered first,
// by instance then period, or ErrNotFound. A record the push repeated is
// listed under the push that delivered it first.
func (s *Store) UsagePush(ctx context.Context, pushID string) (ReceivedPush, []ReceivedUsage, error) {
	var p ReceivedPush
	err := s.x.GetContext(ctx, &p, `SELECT `+pushColumns+` FROM emulator.usage_pushes WHERE push_id = $1`, pushID)
	if errors.Is(err, sql.ErrNoRows) {
		return ReceivedPush{}, nil, ErrNotFound
	}
	if err != nil {
		return ReceivedPush{}, nil, fmt.Errorf("read usage push %s: %w", pushID, err)
	}
	rows := []ReceivedUsage{}
	if err := s.x.SelectContext(ctx, &rows, `SELECT `+usageColumns+`
		FROM emulator.usage u LEFT JOIN emulator.usage_pushes p ON p.push_id = u.push_id
		WHERE u.push_id = $1 ORDER BY u.instance_id, u.begin_time, u.metering_sn`, pushID); err != nil {
		return ReceivedPush{}, nil, fmt.Errorf("list the records of usage push %s: %w", pushID, err)
	}
	return p, rows, nil
}

// PurchaseOfInstance returns the purchase that has an instance, or
// ErrNotFound.
func (s *Store) PurchaseOfInstance(ctx context.Context, instanceID string) (Purchase, error) {
	var p Purchase
	err := s.x.GetContext(ctx, &p, `SELECT `+purchaseColumns+` FROM emulator.purchases
		WHERE instance_id = $1 ORDER BY created_at DESC, purchase_id LIMIT 1`, instanceID)
	if errors.Is(err, sql.ErrNoRows) {
		return Purchase{}, ErrNotFound
	}
	if err != nil {
		return Purchase{}, fmt.Errorf("read emulated purchase of instance %s: %w", instanceID, err)
	}
	return p, nil
}
