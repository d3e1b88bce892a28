package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// ErrUnknownInstance is returned when a callback names an instanceId that no
// newInstance ever allocated.
var ErrUnknownInstance = errors.New("unknown instance")

// ErrInstanceIDTaken is returned when a newInstance for a new order line
// carries a businessId already used as another line's instanceId.
var ErrInstanceIDTaken = errors.New("businessId already names another order line's instance")

// InstanceKey is the identity of an instance: the order line it was bought
// by, as allocated when its first newInstance was recorded.
type InstanceKey struct {
	InstanceID  string    `db:"instance_id"`
	OrderID     string    `db:"order_id"`
	OrderLineID string    `db:"order_line_id"`
	Debug       bool      `db:"debug"`
	CreatedAt   time.Time `db:"created_at"`
}

// Callback is one row of the inbox: a marketplace call that was verified and
// recorded, with the state of its delivery to the instance's workflow.
type Callback struct {
	Seq        int64  `db:"seq"`
	DedupKey   string `db:"dedup_key"`
	Activity   string `db:"activity"`
	InstanceID string `db:"instance_id"`
	// License is the license code a license-code callback concerns
	// (contract §13.5); such a callback names no instance.
	License        string       `db:"license"`
	OrderID        string       `db:"order_id"`
	OrderLineID    string       `db:"order_line_id"`
	Debug          bool         `db:"debug"`
	Body           string       `db:"body"`
	ReceivedAt     time.Time    `db:"received_at"`
	Redeliveries   int          `db:"redeliveries"`
	LastReceivedAt time.Time    `db:"last_received_at"`
	DeliverAfter   time.Time    `db:"deliver_after"`
	Attempts       int          `db:"attempts"`
	LastError      string       `db:"last_error"`
	DeliveredAt    sql.NullTime `db:"delivered_at"`
	Outcome        string       `db:"outcome"`
	// ParkedAt is set while the callback waits for an operator: it could
	// never be delivered (ParkCallback).
	ParkedAt sql.NullTime `db:"parked_at"`
	// SentAt is the marketplace's signed timestamp of the request that
	// first recorded the callback; null for older rows.
	SentAt sql.NullTime `db:"sent_at"`
	// The fields a workflow needs besides the order (NewCallback).
	Status     string `db:"status"`
	Scene      string `db:"scene"`
	ExpireTime string `db:"expire_time"`
	ProductID  string `db:"product_id"`
}

// Delivered reports whether the callback reached its destination.
func (c Callback) Delivered() bool { return c.DeliveredAt.Valid }

// Owner names the workflow the callback is delivered to, whose callbacks
// are delivered one at a time in seq order: "instance/<id>" or
// "license-code/<code>"; empty for a callback delivered nowhere (a notice).
func (c Callback) Owner() string {
	switch {
	case c.License != "":
		return "license-code/" + c.License
	case c.InstanceID != "":
		return "instance/" + c.InstanceID
	}
	return ""
}

const callbackColumns = `seq, dedup_key, activity, COALESCE(instance_id, '') AS instance_id, COALESCE(license, '') AS license,
	order_id, order_line_id, debug, body, received_at, redeliveries, last_received_at,
	deliver_after, attempts, last_error, delivered_at, outcome, parked_at, sent_at,
	status, scene, expire_time, product_id`

// NewCallback is a verified callback to record: its key, the fields its
// instance's workflow is given, and the body as received (for the audit
// trail; nothing reads the fields back from it).
type NewCallback struct {
	// DedupKey identifies the callback across redeliveries. For status
	// changes StatusChange gives it instead.
	DedupKey   string
	Activity   string
	InstanceID string
	// License is a license-code callback's code; InstanceID is then empty.
	License     string
	OrderID     string
	OrderLineID string
	Debug       bool
	Body        []byte
	// Status is FREEZE or UNFREEZE for updateInstanceStatus, else empty.
	Status string
	// Scene, ExpireTime (as the marketplace wrote it) and ProductID are a
	// refreshInstance's.
	Scene      string
	ExpireTime string
	ProductID  string
	// Payload is what a callback carries that has no column of its own
	// (a 联营 kit sync, as the server read it), as JSON; nil for others.
	Payload []byte
	// SealedSecret is a kit applicationSync's clientSecret, sealed.
	SealedSecret string
	// StatusChange, for a status change, decides from the instance's last
	// recorded status episode which episode this call belongs to, and its
	// key. It runs while the instance's row is locked.
	StatusChange func(instanceDebug bool, last StatusEpisode) (StatusEpisode, string)
	// SentAt is when the marketplace sent it (the request's signed
	// timestamp); zero when unknown.
	SentAt time.Time
	// DeliverAfter delays the relay's first attempt, leaving the immediate
	// delivery to the request that recorded it.
	DeliverAfter time.Time
}

// StatusEpisode numbers the alternations of an instance's FREEZE and
// UNFREEZE calls: Number counts them, Status is the last one's.
type StatusEpisode struct {
	Status string
	Number int
}

// Recorded is the outcome of recording a callback.
type Recorded struct {
	Key      InstanceKey
	Callback Callback
	// Fresh is false when the same callback had been recorded before; its
	// redelivery count was raised instead.
	Fresh bool
}

// RecordNewInstance records a newInstance callback. The first one for an
// order line allocates the instanceId (the request's businessId, contract §1.2);
// every later one, with any businessId, gets the same instance back.
func (s *Callbacks) RecordNewInstance(ctx context.Context, businessID string, in NewCallback) (Recorded, error) {
	var out Recorded
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO instance_keys (instance_id, order_id, order_line_id, debug)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`,
			businessID, in.OrderID, in.OrderLineID, in.Debug); err != nil {
			return fmt.Errorf("allocate instance for order line %s: %w", in.OrderLineID, err)
		}
		if err := getOne(ctx, tx, &out.Key, ErrInstanceIDTaken, fmt.Sprintf("read instance of order line %s", in.OrderLineID),
			`SELECT instance_id, order_id, order_line_id, debug, created_at
			FROM instance_keys WHERE order_id = $1 AND order_line_id = $2 FOR NO KEY UPDATE`,
			in.OrderID, in.OrderLineID); err != nil {
			return err
		}
		in.InstanceID = out.Key.InstanceID
		var err error
		out.Callback, out.Fresh, err = insertCallback(ctx, tx, in)
		return err
	})
	if errors.Is(err, ErrInstanceIDTaken) {
		return Recorded{}, err
	}
	if err != nil {
		return Recorded{}, fmt.Errorf("record newInstance %s: %w", in.DedupKey, err)
	}
	return out, nil
}

// RecordCallback records a callback for an existing instance, serialised
// with the instance's other callbacks by a row lock so that sequence numbers
// follow arrival order. It returns ErrUnknownInstance for an instanceId that
// was never allocated, or a callback without one.
func (s *Callbacks) RecordCallback(ctx context.Context, in NewCallback) (Recorded, error) {
	var out Recorded
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		var key struct {
			InstanceKey
			LastStatus    sql.NullString `db:"last_status"`
			StatusEpisode int            `db:"status_episode"`
		}
		// The row lock serializes an instance's callbacks. NO KEY: usage
		// intake's foreign-key checks (KEY SHARE) need not wait for it.
		if err := getOne(ctx, tx, &key, ErrUnknownInstance, fmt.Sprintf("read instance %s", in.InstanceID),
			`SELECT instance_id, order_id, order_line_id, debug, created_at, last_status, status_episode
			FROM instance_keys WHERE instance_id = $1 FOR NO KEY UPDATE`, in.InstanceID); err != nil {
			return err
		}
		out.Key = key.InstanceKey
		last := StatusEpisode{Status: key.LastStatus.String, Number: key.StatusEpisode}
		if err := keyStatusChange(ctx, tx, &in, key.Debug, last, `
			UPDATE instance_keys SET last_status = $2, status_episode = $3 WHERE instance_id = $1`, in.InstanceID); err != nil {
			return err
		}
		var err error
		out.Callback, out.Fresh, err = insertCallback(ctx, tx, in)
		return err
	})
	if errors.Is(err, ErrUnknownInstance) {
		return Recorded{}, err
	}
	if err != nil {
		return Recorded{}, fmt.Errorf("record callback %s: %w", in.DedupKey, err)
	}
	return out, nil
}

// keyStatusChange keys a status change (in.StatusChange) within its
// owner's episodes and saves the owner's new episode with advance (which
// takes the owner's id, status and number), while the owner's row is
// locked. Other callbacks keep their key.
func keyStatusChange(ctx context.Context, tx *sqlx.Tx, in *NewCallback, ownerDebug bool, last StatusEpisode, advance, owner string) error {
	if in.StatusChange == nil {
		return nil
	}
	episode, dedupKey := in.StatusChange(ownerDebug, last)
	if episode != last {
		if _, err := tx.ExecContext(ctx, advance, owner, episode.Status, episode.Number); err != nil {
			return fmt.Errorf("advance status episode of %s: %w", owner, err)
		}
	}
	in.DedupKey = dedupKey
	return nil
}

// RecordNotice records a callback that concerns no instance (orderNotify).
// It is complete once recorded, so it is stored as delivered.
func (s *Callbacks) RecordNotice(ctx context.Context, in NewCallback, outcome string) (Callback, bool, error) {
	var out Callback
	var fresh bool
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		var err error
		out, fresh, err = insertCallback(ctx, tx, in)
		if err != nil || !fresh {
			return err
		}
		return tx.GetContext(ctx, &out, `
			UPDATE callbacks SET delivered_at = now(), outcome = $2 WHERE seq = $1
			RETURNING `+callbackColumns, out.Seq, outcome)
	})
	if err != nil {
		return Callback{}, false, fmt.Errorf("record notice %s: %w", in.DedupKey, err)
	}
	return out, fresh, nil
}

// insertCallback inserts the callback or, when its key is known, counts the
// redelivery. xmax = 0 distinguishes an insert from an update.
func insertCallback(ctx context.Context, tx *sqlx.Tx, in NewCallback) (Callback, bool, error) {
	var row struct {
		Callback
		Inserted bool `db:"inserted"`
	}
	deliverAfter := in.DeliverAfter
	if deliverAfter.IsZero() {
		deliverAfter = time.Now()
	}
	var instanceID, license any
	if in.InstanceID != "" {
		instanceID = in.InstanceID
	}
	if in.License != "" {
		license = in.License
	}
	var sentAt any
	if !in.SentAt.IsZero() {
		sentAt = in.SentAt
	}
	var payload any
	if in.Payload != nil {
		payload = string(in.Payload)
	}
	err := tx.GetContext(ctx, &row, `
		INSERT INTO callbacks (dedup_key, activity, instance_id, order_id, order_line_id, debug, body, deliver_after, sent_at,
			status, scene, expire_time, product_id, payload, sealed_secret, license)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
		ON CONFLICT (dedup_key) DO UPDATE
		SET redeliveries = callbacks.redeliveries + 1, last_received_at = now()
		RETURNING `+callbackColumns+`, (xmax = 0) AS inserted`,
		in.DedupKey, in.Activity, instanceID, in.OrderID, in.OrderLineID, in.Debug, string(in.Body), deliverAfter, sentAt,
		in.Status, in.Scene, in.ExpireTime, in.ProductID, payload, in.SealedSecret, license)
	if err != nil {
		return Callback{}, false, fmt.Errorf("insert callback %s: %w", in.DedupKey, err)
	}
	return row.Callback, row.Inserted, nil
}

// Payload returns what a recorded callback carries beyond its columns (a
// kit sync) and its sealed secret, if any.
func (s *Callbacks) Payload(ctx context.Context, seq int64) (payload []byte, sealedSecret string, err error) {
	var row struct {
		Payload      string `db:"payload"`
		SealedSecret string `db:"sealed_secret"`
	}
	if err := getOne(ctx, s.x, &row, ErrNotFound, fmt.Sprintf("read the payload of callback %d", seq),
		`SELECT COALESCE(payload::text, '') AS payload, sealed_secret FROM callbacks WHERE seq = $1`, seq); err != nil {
		return nil, "", err
	}
	if row.Payload == "" {
		return nil, row.SealedSecret, nil
	}
	return []byte(row.Payload), row.SealedSecret, nil
}

// LatestPayload returns the payload of the newest callback of an instance
// that names orderID and carries one (a V1 purchase's or upgrade's order),
// or nil when there is none.
func (s *Callbacks) LatestPayload(ctx context.Context, instanceID, orderID string) ([]byte, error) {
	var payload []string
	if err := s.x.SelectContext(ctx, &payload, `
		SELECT payload::text FROM callbacks
		WHERE instance_id = $1 AND order_id = $2 AND payload IS NOT NULL
		ORDER BY seq DESC LIMIT 1`, instanceID, orderID); err != nil {
		return nil, fmt.Errorf("read the payload of order %s of instance %s: %w", orderID, instanceID, err)
	}
	if len(payload) == 0 {
		return nil, nil
	}
	return []byte(payload[0]), nil
}

// InstanceKey returns the identity of an allocated instance.
func (s *Callbacks) InstanceKey(ctx context.Context, instanceID string) (InstanceKey, error) {
	var k InstanceKey
	if err := getOne(ctx, s.x, &k, ErrUnknownInstance, fmt.Sprintf("read instance %s", instanceID),
		`SELECT instance_id, order_id, order_line_id, debug, created_at
		FROM instance_keys WHERE instance_id = $1`, instanceID); err != nil {
		return InstanceKey{}, err
	}
	return k, nil
}

// HasEarlierUndelivered reports whether the callback's owner (its instance
// or its license code) has a callback older than cb still waiting for
// delivery; cb must then wait too, so the workflow receives its callbacks
// in arrival order. A parked callback holds nothing back: it waits for an
// operator, and the workflow ignores an older change delivered after a
// newer one.
func (s *Callbacks) HasEarlierUndelivered(ctx context.Context, cb Callback) (bool, error) {
	column, owner := "instance_id", cb.InstanceID
	if cb.License != "" {
		column, owner = "license", cb.License
	}
	var exists bool
	err := s.x.GetContext(ctx, &exists, `
		SELECT EXISTS (SELECT 1 FROM callbacks
		WHERE `+column+` = $1 AND seq < $2 AND delivered_at IS NULL AND parked_at IS NULL)`, owner, cb.Seq)
	if err != nil {
		return false, fmt.Errorf("look for undelivered callbacks of %s: %w", cb.Owner(), err)
	}
	return exists, nil
}

// LeaseUndelivered takes up to limit callbacks due for delivery, oldest
// first, and hides them from other relays for the lease duration. Replicas
// racing for the same rows skip each other's locked rows.
func (s *Callbacks) LeaseUndelivered(ctx context.Context, limit int, lease time.Duration) ([]Callback, error) {
	var out []Callback
	err := s.x.SelectContext(ctx, &out, `
		UPDATE callbacks SET deliver_after = now() + $2 * interval '1 millisecond'
		WHERE seq IN (
			SELECT seq FROM callbacks
			WHERE delivered_at IS NULL AND parked_at IS NULL AND deliver_after <= now()
			ORDER BY seq LIMIT $1
			FOR UPDATE SKIP LOCKED)
		RETURNING `+callbackColumns, limit, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("lease undelivered callbacks: %w", err)
	}
	// RETURNING does not keep the subquery's order.
	slices.SortFunc(out, func(a, b Callback) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// MarkDelivered records that the callback reached its destination.
//
// Committed lazily (execLazy): a mark lost in a crash of PostgreSQL makes
// the relay deliver the callback again, which its workflow ignores (it
// knows the key).
func (s *Callbacks) MarkDelivered(ctx context.Context, seq int64, outcome string) error {
	_, err := execLazy(ctx, s.x, `
		UPDATE callbacks SET delivered_at = now(), outcome = $2, attempts = attempts + 1, last_error = ''
		WHERE seq = $1 AND delivered_at IS NULL`, seq, outcome)
	if err != nil {
		return fmt.Errorf("mark callback %d delivered: %w", seq, err)
	}
	return nil
}

// MarkDeliveryFailed records a failed delivery attempt and when to retry.
func (s *Callbacks) MarkDeliveryFailed(ctx context.Context, seq int64, reason string, retryAt time.Time) error {
	_, err := s.x.ExecContext(ctx, `
		UPDATE callbacks SET attempts = attempts + 1, last_error = $2, deliver_after = $3
		WHERE seq = $1 AND delivered_at IS NULL`, seq, reason, retryAt)
	if err != nil {
		return fmt.Errorf("mark callback %d failed: %w", seq, err)
	}
	return nil
}

// UndeliveredCount is the relay backlog: the callbacks still to deliver,
// parked ones apart.
func (s *Callbacks) UndeliveredCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.x.GetContext(ctx, &n, `
		SELECT count(*) FROM callbacks WHERE delivered_at IS NULL AND parked_at IS NULL`); err != nil {
		return 0, fmt.Errorf("count undelivered callbacks: %w", err)
	}
	return n, nil
}

// MakeDue makes an undelivered callback due for the relay now: the
// dispatcher left it, and the relay need not wait out its grace.
func (s *Callbacks) MakeDue(ctx context.Context, seq int64) error {
	_, err := s.x.ExecContext(ctx, `
		UPDATE callbacks SET deliver_after = now()
		WHERE seq = $1 AND delivered_at IS NULL AND parked_at IS NULL AND deliver_after > now()`, seq)
	if err != nil {
		return fmt.Errorf("make callback %d due: %w", seq, err)
	}
	return nil
}

// ParkCallback parks a callback that cannot be delivered, with the reason,
// counting the attempt that found it out. It reports whether it parked it
// (false: delivered or parked meanwhile).
func (s *Callbacks) ParkCallback(ctx context.Context, seq int64, reason string) (bool, error) {
	res, err := s.x.ExecContext(ctx, `
		UPDATE callbacks SET parked_at = now(), last_error = $2, attempts = attempts + 1
		WHERE seq = $1 AND delivered_at IS NULL AND parked_at IS NULL`, seq, reason)
	if err != nil {
		return false, fmt.Errorf("park callback %d: %w", seq, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ParkedCallbacks lists the parked callbacks, oldest first.
func (s *Callbacks) ParkedCallbacks(ctx context.Context, limit int) ([]Callback, error) {
	var out []Callback
	if err := s.x.SelectContext(ctx, &out, `SELECT `+callbackColumns+`
		FROM callbacks WHERE parked_at IS NOT NULL AND delivered_at IS NULL ORDER BY seq LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("list parked callbacks: %w", err)
	}
	return out, nil
}

// ParkedCount counts the parked callbacks.
func (s *Callbacks) ParkedCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.x.GetContext(ctx, &n, `
		SELECT count(*) FROM callbacks WHERE parked_at IS NOT NULL AND delivered_at IS NULL`); err != nil {
		return 0, fmt.Errorf("count parked callbacks: %w", err)
	}
	return n, nil
}

// ErrNotParked means the callback does not exist or is not parked.
var ErrNotParked = errors.New("no such parked callback")

// ParkedCallback returns a parked callback, or ErrNotParked.
func (s *Callbacks) ParkedCallback(ctx context.Context, seq int64) (Callback, error) {
	var cb Callback
	if err := getOne(ctx, s.x, &cb, ErrNotParked, fmt.Sprintf("read parked callback %d", seq),
		`SELECT `+callbackColumns+`
		FROM callbacks WHERE seq = $1 AND parked_at IS NOT NULL AND delivered_at IS NULL`, seq); err != nil {
		return Callback{}, err
	}
	return cb, nil
}

// UnparkCallback makes a parked callback due for delivery again (an
// operator's retry), or returns ErrNotParked.
func (s *Callbacks) UnparkCallback(ctx context.Context, seq int64) (Callback, error) {
	var cb Callback
	if err := getOne(ctx, s.x, &cb, ErrNotParked, fmt.Sprintf("unpark callback %d", seq),
		`
		UPDATE callbacks SET parked_at = NULL, deliver_after = now()
		WHERE seq = $1 AND parked_at IS NOT NULL AND delivered_at IS NULL
		RETURNING `+callbackColumns, seq); err != nil {
		return Callback{}, err
	}
	return cb, nil
}

// DiscardParkedCallback closes a parked callback without delivering it (an
// operator's decision), with the outcome saying who and why, or returns
// ErrNotParked.
func (s *Callbacks) DiscardParkedCallback(ctx context.Context, seq int64, outcome string) (Callback, error) {
	var cb Callback
	if err := getOne(ctx, s.x, &cb, ErrNotParked, fmt.Sprintf("discard callback %d", seq),
		`
		UPDATE callbacks SET delivered_at = now(), outcome = $2
		WHERE seq = $1 AND parked_at IS NOT NULL AND delivered_at IS NULL
		RETURNING `+callbackColumns, seq, outcome); err != nil {
		return Callback{}, err
	}
	return cb, nil
}

// CallbacksOf lists an instance's callbacks in arrival order.
func (s *Callbacks) CallbacksOf(ctx context.Context, instanceID string) ([]Callback, error) {
	var out []Callback
	if err := s.x.SelectContext(ctx, &out, `SELECT `+callbackColumns+`
		FROM callbacks WHERE instance_id = $1 ORDER BY seq`, instanceID); err != nil {
		return nil, fmt.Errorf("list callbacks of %s: %w", instanceID, err)
	}
	return out, nil
}

// ReturnLeases makes leased callbacks due again at the given time, without
// counting an attempt: the relay took them but left them for later (an
// older callback of their instance must go first).
func (s *Callbacks) ReturnLeases(ctx context.Context, seqs []int64, at time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	_, err := s.x.ExecContext(ctx, `
		UPDATE callbacks SET deliver_after = $2 WHERE seq = ANY($1) AND delivered_at IS NULL`,
		pq.Array(seqs), at)
	if err != nil {
		return fmt.Errorf("return %d leased callbacks: %w", len(seqs), err)
	}
	return nil
}
