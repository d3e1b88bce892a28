package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Instance is the read model of one instance, as last saved by its workflow.
type Instance struct {
	InstanceID   string     `db:"instance_id" json:"instanceId"`
	OrderID      string     `db:"order_id" json:"orderId"`
	OrderLineID  string     `db:"order_line_id" json:"orderLineId"`
	State        string     `db:"state" json:"state"`
	Reason       string     `db:"reason" json:"reason,omitempty"`
	Debug        bool       `db:"debug" json:"debug"`
	ChargingMode string     `db:"charging_mode" json:"chargingMode,omitempty"`
	OrderType    string     `db:"order_type" json:"orderType,omitempty"`
	SkuCode      string     `db:"sku_code" json:"skuCode,omitempty"`
	ProductID    string     `db:"product_id" json:"productId,omitempty"`
	LinearValue  *int64     `db:"linear_value" json:"linearValue,omitempty"`
	PeriodType   string     `db:"period_type" json:"periodType,omitempty"`
	PeriodNumber int        `db:"period_number" json:"periodNumber,omitempty"`
	CustomerID   string     `db:"customer_id" json:"customerId,omitempty"`
	CustomerName string     `db:"customer_name" json:"customerName,omitempty"`
	ExpireTime   *time.Time `db:"expire_time" json:"expireTime"`
	FrontEndURL  string     `db:"front_end_url" json:"-"`
	AdminURL     string     `db:"admin_url" json:"-"`
	Memo         string     `db:"memo" json:"-"`
	// Details is what the workflow shows beyond the state (InstanceDetails).
	Details          []byte     `db:"details" json:"-"`
	NextDeadlineKind string     `db:"next_deadline_kind" json:"-"`
	NextDeadlineAt   *time.Time `db:"next_deadline_at" json:"-"`
	Revision         int64      `db:"revision" json:"revision"`
	CreatedAt        time.Time  `db:"created_at" json:"createdAt"`
	UpdatedAt        time.Time  `db:"updated_at" json:"updatedAt"`
}

const instanceColumns = `instance_id, order_id, order_line_id, state, reason, debug, charging_mode,
	order_type, sku_code, product_id, linear_value, period_type, period_number, customer_id,
	customer_name, expire_time, front_end_url, admin_url, memo, details, next_deadline_kind,
	next_deadline_at, revision, created_at, updated_at`

// Event is one entry of an instance's timeline.
type Event struct {
	ID         int64     `db:"id" json:"-"`
	InstanceID string    `db:"instance_id" json:"-"`
	Key        string    `db:"event_key" json:"key"`
	Kind       string    `db:"kind" json:"kind"`
	Message    string    `db:"message" json:"message"`
	OccurredAt time.Time `db:"occurred_at" json:"at"`
}

// SaveInstance writes the instance's read model and appends timeline
// events, in one transaction. A write whose revision is not newer than the
// stored one is ignored (a retried activity that lost a race); events are
// appended once per key either way. It reports whether the row was written.
func (s *Instances) SaveInstance(ctx context.Context, in Instance, events []Event) (bool, error) {
	if len(in.Details) == 0 {
		in.Details = []byte(`{}`)
	}
	var written bool
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		res, err := tx.NamedExecContext(ctx, `
			INSERT INTO instances (instance_id, order_id, order_line_id, state, reason, debug,
				charging_mode, order_type, sku_code, product_id, linear_value, period_type,
				period_number, customer_id, customer_name, expire_time, front_end_url, admin_url,
				memo, details, next_deadline_kind, next_deadline_at, revision, updated_at)
			VALUES (:instance_id, :order_id, :order_line_id, :state, :reason, :debug,
				:charging_mode, :order_type, :sku_code, :product_id, :linear_value, :period_type,
				:period_number, :customer_id, :customer_name, :expire_time, :front_end_url, :admin_url,
				:memo, :details, :next_deadline_kind, :next_deadline_at, :revision, now())
			ON CONFLICT (instance_id) DO UPDATE SET
				state = EXCLUDED.state, reason = EXCLUDED.reason, debug = EXCLUDED.debug,
				charging_mode = EXCLUDED.charging_mode, order_type = EXCLUDED.order_type,
				sku_code = EXCLUDED.sku_code, product_id = EXCLUDED.product_id,
				linear_value = EXCLUDED.linear_value, period_type = EXCLUDED.period_type,
				period_number = EXCLUDED.period_number, customer_id = EXCLUDED.customer_id,
				customer_name = EXCLUDED.customer_name, expire_time = EXCLUDED.expire_time,
				front_end_url = EXCLUDED.front_end_url, admin_url = EXCLUDED.admin_url,
				memo = EXCLUDED.memo, details = EXCLUDED.details,
				next_deadline_kind = EXCLUDED.next_deadline_kind, next_deadline_at = EXCLUDED.next_deadline_at,
				revision = EXCLUDED.revision, updated_at = now()
			WHERE instances.revision < EXCLUDED.revision`, in)
		if err != nil {
			return fmt.Errorf("upsert instance: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		written = n == 1
		for _, e := range events {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO instance_events (instance_id, event_key, kind, message, occurred_at)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (instance_id, event_key) DO NOTHING`,
				in.InstanceID, e.Key, e.Kind, e.Message, e.OccurredAt); err != nil {
				return fmt.Errorf("append event %s: %w", e.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save instance %s revision %d: %w", in.InstanceID, in.Revision, err)
	}
	return written, nil
}

// Instance returns the read model of one instance, or ErrNotFound when its
// workflow has not saved it yet.
func (s *Instances) Instance(ctx context.Context, instanceID string) (Instance, error) {
	var out Instance
	if err := getOne(ctx, s.x, &out, ErrNotFound, fmt.Sprintf("read instance %s", instanceID),
		`SELECT `+instanceColumns+` FROM instances WHERE instance_id = $1`, instanceID); err != nil {
		return Instance{}, err
	}
	return out, nil
}

// InstanceFilter selects instances to list. Empty fields match everything.
type InstanceFilter struct {
	State   string
	OrderID string
	// After continues a listing after this instanceId (keyset paging).
	After string
	Limit int
}

// ListInstances lists instances ordered by instanceId.
func (s *Instances) ListInstances(ctx context.Context, f InstanceFilter) ([]Instance, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	out := []Instance{}
	err := s.x.SelectContext(ctx, &out, `SELECT `+instanceColumns+` FROM instances
		WHERE ($1 = '' OR state = $1) AND ($2 = '' OR order_id = $2) AND instance_id > $3
		ORDER BY instance_id LIMIT $4`, f.State, f.OrderID, f.After, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return out, nil
}

// Events returns an instance's timeline, oldest first.
func (s *Instances) Events(ctx context.Context, instanceID string) ([]Event, error) {
	out := []Event{}
	err := s.x.SelectContext(ctx, &out, `SELECT id, instance_id, event_key, kind, message, occurred_at
		FROM instance_events WHERE instance_id = $1 ORDER BY occurred_at, id`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("list events of %s: %w", instanceID, err)
	}
	return out, nil
}

// SealedCredentials are an instance's initial credentials, encrypted at rest.
type SealedCredentials struct {
	UserName string `db:"user_name_enc"`
	Password string `db:"password_enc"`
}

// SaveCredentials stores an instance's sealed initial credentials.
func (s *Instances) SaveCredentials(ctx context.Context, instanceID string, c SealedCredentials) error {
	_, err := s.x.ExecContext(ctx, `
		INSERT INTO instance_credentials (instance_id, user_name_enc, password_enc) VALUES ($1, $2, $3)
		ON CONFLICT (instance_id) DO UPDATE
		SET user_name_enc = EXCLUDED.user_name_enc, password_enc = EXCLUDED.password_enc, updated_at = now()`,
		instanceID, c.UserName, c.Password)
	if err != nil {
		return fmt.Errorf("save credentials of %s: %w", instanceID, err)
	}
	return nil
}

// InstanceView is what queryInstance and the admin API know of an
// allocated instance: its key, its read model once saved, and its sealed
// credentials once provisioned.
type InstanceView struct {
	Key         InstanceKey
	Instance    *Instance
	Credentials *SealedCredentials
}

// LookupInstances returns the views of the given instanceIds that exist.
func (s *Instances) LookupInstances(ctx context.Context, ids []string) (map[string]InstanceView, error) {
	var rows []struct {
		InstanceKey
		State    sql.NullString `db:"state"`
		UserName sql.NullString `db:"user_name_enc"`
		Password sql.NullString `db:"password_enc"`
	}
	err := s.x.SelectContext(ctx, &rows, `
		SELECT k.instance_id, k.order_id, k.order_line_id, k.debug, k.created_at,
			i.state, c.user_name_enc, c.password_enc
		FROM instance_keys k
		LEFT JOIN instances i ON i.instance_id = k.instance_id
		LEFT JOIN instance_credentials c ON c.instance_id = k.instance_id
		WHERE k.instance_id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("look up instances: %w", err)
	}
	out := make(map[string]InstanceView, len(rows))
	var saved []string
	for _, r := range rows {
		v := InstanceView{Key: r.InstanceKey}
		if r.UserName.Valid {
			v.Credentials = &SealedCredentials{UserName: r.UserName.String, Password: r.Password.String}
		}
		if r.State.Valid {
			saved = append(saved, r.InstanceID)
		}
		out[r.InstanceID] = v
	}
	if len(saved) > 0 {
		var insts []Instance
		if err := s.x.SelectContext(ctx, &insts, `SELECT `+instanceColumns+` FROM instances
			WHERE instance_id = ANY($1)`, pq.Array(saved)); err != nil {
			return nil, fmt.Errorf("look up instances: %w", err)
		}
		for i := range insts {
			v := out[insts[i].InstanceID]
			v.Instance = &insts[i]
			out[insts[i].InstanceID] = v
		}
	}
	return out, nil
}

// CountByState counts instances per state (for the metrics that alert on
// parked and overdue instances).
func (s *Instances) CountByState(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		State string `db:"state"`
		N     int64  `db:"n"`
	}
	if err := s.x.SelectContext(ctx, &rows, `SELECT state, count(*) AS n FROM instances GROUP BY state`); err != nil {
		return nil, fmt.Errorf("count instances by state: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, nil
}
