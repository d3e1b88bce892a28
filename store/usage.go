package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Usage is one usage record reported by the merchant's application. Its
// billed flag (in the table) says whether its period was billable at all;
// how much of a period a package covered is on the period (quantity and
// unbilled).
// Quantity is a decimal string (at most 4 decimals), kept exact.
type Usage struct {
	IdempotencyKey string    `db:"idempotency_key" json:"idempotencyKey"`
	InstanceID     string    `db:"instance_id" json:"instanceId"`
	Meter          string    `db:"meter" json:"meter"`
	Quantity       string    `db:"quantity" json:"quantity"`
	OccurredAt     time.Time `db:"occurred_at" json:"time"`
}

// UsageRefusal is a usage record the store refused, by its position in
// the batch.
type UsageRefusal struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// InsertUsage stores a batch of usage records, all or nothing. A record
// whose idempotency key is already stored with the same values is a
// duplicate, skipped; one stored with other values (instance, meter,
// quantity or time) is refused. So is every record of an instance whose
// usage not yet metered would then exceed maxOpen: a period sums what is
// open when it closes, and no period may hold more than one record can
// carry. Refused records are returned and nothing is stored; otherwise it
// returns how many records were new.
func (s *Metering) InsertUsage(ctx context.Context, records []Usage, maxOpen string) (int, []UsageRefusal, error) {
	if len(records) == 0 {
		return 0, nil, nil
	}
	keys := make([]string, len(records))
	instances := make([]string, len(records))
	meters := make([]string, len(records))
	quantities := make([]string, len(records))
	times := make([]time.Time, len(records))
	for i, r := range records {
		keys[i], instances[i], meters[i], quantities[i], times[i] = r.IdempotencyKey, r.InstanceID, r.Meter, r.Quantity, r.OccurredAt
	}
	var inserted int
	var refused []UsageRefusal
	errRefused := errors.New("usage refused")
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		// Two batches for one instance at once must not both pass the
		// open-usage check: serialise them per instance (in a fixed
		// order, so they cannot deadlock), without holding the instance
		// row that callbacks lock.
		if _, err := tx.ExecContext(ctx, `
			SELECT pg_advisory_xact_lock(hashtextextended('usage/' || id, 0))
			FROM (SELECT DISTINCT unnest($1::text[]) AS id ORDER BY 1) ids`, pq.Array(instances)); err != nil {
			return fmt.Errorf("lock instances: %w", err)
		}
		// One statement for the whole batch: thousands of records a call.
		var newKeys []string
		if err := tx.SelectContext(ctx, &newKeys, `
			INSERT INTO usage_records (idempotency_key, instance_id, meter, quantity, occurred_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::timestamptz[])
			ON CONFLICT (idempotency_key) DO NOTHING
			RETURNING idempotency_key`,
			pq.Array(keys), pq.Array(instances), pq.Array(meters), pq.Array(quantities), pq.Array(times)); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		inserted = len(newKeys)
		if err := tx.SelectContext(ctx, &refused, `
			SELECT (n.idx - 1)::int AS index,
				'idempotencyKey is already used by a record with other values (instance, meter, quantity or time)' AS error
			FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::timestamptz[]) WITH ORDINALITY
				AS n(key, instance_id, meter, quantity, occurred_at, idx)
			JOIN usage_records u ON u.idempotency_key = n.key
			WHERE NOT n.key = ANY($6::text[])
			  AND (u.instance_id <> n.instance_id OR u.meter <> n.meter OR u.quantity <> n.quantity OR u.occurred_at <> n.occurred_at)
			ORDER BY n.idx`,
			pq.Array(keys), pq.Array(instances), pq.Array(meters), pq.Array(quantities), pq.Array(times), pq.Array(newKeys)); err != nil {
			return fmt.Errorf("compare reused keys: %w", err)
		}
		var over []UsageRefusal
		if err := tx.SelectContext(ctx, &over, `
			WITH open AS (
				SELECT instance_id, sum(quantity) AS total FROM usage_records
				WHERE instance_id = ANY($1::text[]) AND period_start IS NULL GROUP BY instance_id)
			SELECT (n.idx - 1)::int AS index,
				'the usage of this instance not yet metered would be ' || o.total::text ||
				', more than one usage record can carry (' || $4 || '); report it again after the current period is pushed' AS error
			FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS n(instance_id, key, idx)
			JOIN open o ON o.instance_id = n.instance_id
			WHERE o.total > $4::numeric AND n.key = ANY($3::text[])
			ORDER BY n.idx`,
			pq.Array(instances), pq.Array(keys), pq.Array(newKeys), maxOpen); err != nil {
			return fmt.Errorf("sum open usage: %w", err)
		}
		refused = append(refused, over...)
		if len(refused) > 0 {
			return errRefused
		}
		return nil
	})
	if errors.Is(err, errRefused) {
		slices.SortFunc(refused, func(a, b UsageRefusal) int { return a.Index - b.Index })
		return 0, refused, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("insert %d usage records: %w", len(records), err)
	}
	return inserted, nil, nil
}

// ClaimBillingItem records that an instance serves a pay-per-use order's
// billing item (orderId + productId) and returns the instance that does:
// this one, or the one that claimed it first.
func (s *Metering) ClaimBillingItem(ctx context.Context, orderID, productID, instanceID string) (string, error) {
	var owner string
	err := s.x.GetContext(ctx, &owner, `
		WITH claimed AS (
			INSERT INTO billing_items (order_id, product_id, instance_id) VALUES ($1, $2, $3)
			ON CONFLICT (order_id, product_id) DO NOTHING RETURNING instance_id)
		SELECT instance_id FROM claimed
		UNION ALL
		SELECT instance_id FROM billing_items WHERE order_id = $1 AND product_id = $2
		LIMIT 1`, orderID, productID, instanceID)
	if err != nil {
		return "", fmt.Errorf("claim billing item %s/%s: %w", orderID, productID, err)
	}
	return owner, nil
}

// UsageTarget is what usage intake checks of an instance.
type UsageTarget struct {
	InstanceID   string `db:"instance_id"`
	ChargingMode string `db:"charging_mode"`
	State        string `db:"state"`
}

// UsageTargets returns the read model's charging mode and state of the
// given instances that exist.
func (s *Metering) UsageTargets(ctx context.Context, ids []string) (map[string]UsageTarget, error) {
	var rows []UsageTarget
	if err := s.x.SelectContext(ctx, &rows, `
		SELECT k.instance_id, COALESCE(i.charging_mode, '') AS charging_mode, COALESCE(i.state, '') AS state
		FROM instance_keys k LEFT JOIN instances i ON i.instance_id = k.instance_id
		WHERE k.instance_id = ANY($1)`, pq.Array(ids)); err != nil {
		return nil, fmt.Errorf("look up usage targets: %w", err)
	}
	out := make(map[string]UsageTarget, len(rows))
	for _, r := range rows {
		out[r.InstanceID] = r
	}
	return out, nil
}

// Usage period states.
const (
	PeriodPending = "pending" // closed, to push
	PeriodPushed  = "pushed"  // the marketplace has it
	PeriodEmpty   = "empty"   // nothing to bill: no usage, or none billable
	PeriodExpired = "expired" // older than 21 days before it could be pushed: not billable any more
	// PeriodHeld: its usage cannot be pushed as it is (more than one
	// record can carry); it waits for an operator, and the periods after
	// it are pushed meanwhile.
	PeriodHeld = "held"
	// PeriodWrittenOff: an operator decided a held period is not billed.
	PeriodWrittenOff = "written_off"
)

// UsagePeriod is one metering period of an instance.
type UsagePeriod struct {
	InstanceID        string     `db:"instance_id" json:"instanceId"`
	PeriodStart       time.Time  `db:"period_start" json:"begin"`
	PeriodEnd         time.Time  `db:"period_end" json:"end"`
	Quantity          string     `db:"quantity" json:"quantity"`
	Unbilled          string     `db:"unbilled" json:"unbilled"`
	MeteringSN        string     `db:"metering_sn" json:"meteringSn"`
	RelatePkgInstance string     `db:"relate_pkg_instance" json:"relatePkgInstance,omitempty"`
	State             string     `db:"state" json:"state"`
	Attempts          int        `db:"attempts" json:"attempts"`
	LastError         string     `db:"last_error" json:"lastError,omitempty"`
	ClosedAt          time.Time  `db:"closed_at" json:"closedAt"`
	PushedAt          *time.Time `db:"pushed_at" json:"pushedAt,omitempty"`
}

const usagePeriodColumns = `instance_id, period_start, period_end, quantity::text AS quantity, unbilled::text AS unbilled,
	metering_sn, relate_pkg_instance, state, attempts, last_error, closed_at, pushed_at`

// ClosePeriod asks to close one metering period of an instance.
type ClosePeriod struct {
	InstanceID string
	Start, End time.Time
	// Billable is false for a span in which the instance was frozen: the
	// usage is recorded as not billed.
	Billable bool
	At       time.Time
	// MeteringSN is the period's serial number for the marketplace.
	MeteringSN string
	// Draw decides how the period's total is billed, given the customer's
	// packages for the instance (the metering rules own that decision;
	// the store applies it in the same transaction).
	Draw func(total string, billable bool, packages Packages) (Draw, error)
}

// Packages is what the store knows of the usage packages that cover an
// instance (its customer's, for its skuCode) when a period closes.
type Packages struct {
	// Open are the active packages with quota left, oldest first; they
	// are locked until the period is closed.
	Open []PackageQuota
	// Newest is the newest package ever bought (used up, released or
	// not), or "" when there never was one.
	Newest string
}

// PackageQuota is a package with quota left.
type PackageQuota struct {
	ID   string `db:"package_instance_id"`
	Left string `db:"left"`
}

// Draw is how a period's usage is billed. Quantities are decimal strings.
type Draw struct {
	Billable string // pushed to the marketplace
	Unbilled string // not charged: over the quota, or while frozen
	// Package is the package drawn on (relate_pkg_instance): Billable is
	// added to its consumption. Empty for plain pay-per-use.
	Package string
	// Exhausted is set when no package covering the instance has quota
	// left and the instance used some: the service must stop.
	Exhausted string
}

// ClosedPeriod is the result of closing a period.
type ClosedPeriod struct {
	UsagePeriod
	// PackageExhausted is the package whose quota this period used up.
	PackageExhausted string
}

// CloseUsagePeriod closes a period: the records that occurred before its
// end and belong to no period yet (late ones included) are assigned to it
// and summed, and in.Draw splits the total between what is billed and a
// package's quota. Closing a period again returns it as it was, so a
// retried activity changes nothing.
func (s *Metering) CloseUsagePeriod(ctx context.Context, in ClosePeriod) (ClosedPeriod, error) {
	var out ClosedPeriod
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		var err error
		out, err = closeUsagePeriod(ctx, tx, in)
		return err
	})
	if err != nil {
		return ClosedPeriod{}, err
	}
	return out, nil
}

// closeUsagePeriod is CloseUsagePeriod in the caller's transaction.
func closeUsagePeriod(ctx context.Context, tx *sqlx.Tx, in ClosePeriod) (ClosedPeriod, error) {
	var out ClosedPeriod
	err := func() error {
		err := tx.GetContext(ctx, &out.UsagePeriod, `SELECT `+usagePeriodColumns+` FROM usage_periods
			WHERE instance_id = $1 AND period_start = $2`, in.InstanceID, in.Start)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var total string
		if err := tx.GetContext(ctx, &total, `
			WITH assigned AS (
				UPDATE usage_records SET period_start = $2, billed = $4
				WHERE instance_id = $1 AND period_start IS NULL AND occurred_at < $3
				RETURNING quantity)
			SELECT COALESCE(sum(quantity), 0)::text FROM assigned`,
			in.InstanceID, in.Start, in.End, in.Billable); err != nil {
			return fmt.Errorf("assign records: %w", err)
		}
		var packages Packages
		if in.Billable {
			if packages, err = packagesCovering(ctx, tx, in.InstanceID); err != nil {
				return err
			}
		}
		draw, err := in.Draw(total, in.Billable, packages)
		if err != nil {
			return err
		}
		if draw.Package != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE usage_packages SET consumed = consumed + $2::numeric
				WHERE package_instance_id = $1`, draw.Package, draw.Billable); err != nil {
				return fmt.Errorf("draw on package %s: %w", draw.Package, err)
			}
		}
		state := PeriodPending
		if isZero(draw.Billable) {
			state = PeriodEmpty
		}
		if err := tx.GetContext(ctx, &out.UsagePeriod, `
			INSERT INTO usage_periods (instance_id, period_start, period_end, quantity, unbilled, metering_sn,
				relate_pkg_instance, state, closed_at)
			VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6, $7, $8, $9)
			RETURNING `+usagePeriodColumns,
			in.InstanceID, in.Start, in.End, draw.Billable, draw.Unbilled, in.MeteringSN,
			draw.Package, state, in.At); err != nil {
			return fmt.Errorf("insert period: %w", err)
		}
		out.PackageExhausted = draw.Exhausted
		return nil
	}()
	if err != nil {
		return ClosedPeriod{}, fmt.Errorf("close period %s of %s: %w", in.Start.UTC().Format(time.RFC3339), in.InstanceID, err)
	}
	return out, nil
}

// packagesCovering reads the packages covering an instance, locking those
// with quota left until the transaction ends.
func packagesCovering(ctx context.Context, tx *sqlx.Tx, instanceID string) (Packages, error) {
	var p Packages
	if err := tx.SelectContext(ctx, &p.Open, `
		SELECT pk.package_instance_id, (pk.quota - pk.consumed)::text AS left
		FROM usage_packages pk JOIN instances i ON i.customer_id = pk.customer_id AND i.sku_code = pk.sku_code
		WHERE i.instance_id = $1 AND pk.active AND pk.consumed < pk.quota
		ORDER BY pk.created_at, pk.package_instance_id FOR UPDATE OF pk`, instanceID); err != nil {
		return Packages{}, fmt.Errorf("find packages: %w", err)
	}
	err := tx.GetContext(ctx, &p.Newest, `
		SELECT pk.package_instance_id
		FROM usage_packages pk JOIN instances i ON i.customer_id = pk.customer_id AND i.sku_code = pk.sku_code
		WHERE i.instance_id = $1 ORDER BY pk.created_at DESC, pk.package_instance_id DESC LIMIT 1`, instanceID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Packages{}, fmt.Errorf("look for packages: %w", err)
	}
	return p, nil
}

func isZero(decimal string) bool {
	for _, c := range decimal {
		if c != '0' && c != '.' {
			return false
		}
	}
	return true
}

// PendingUsagePeriods returns up to limit periods to push, oldest first.
func (s *Metering) PendingUsagePeriods(ctx context.Context, instanceID string, limit int) ([]UsagePeriod, error) {
	out := []UsagePeriod{}
	if err := s.x.SelectContext(ctx, &out, `SELECT `+usagePeriodColumns+` FROM usage_periods
		WHERE instance_id = $1 AND state = 'pending' ORDER BY period_start LIMIT $2`, instanceID, limit); err != nil {
		return nil, fmt.Errorf("list pending periods of %s: %w", instanceID, err)
	}
	return out, nil
}

// PendingUsageCount counts the periods of every instance waiting to be
// pushed (a metric).
func (s *Metering) PendingUsageCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.x.GetContext(ctx, &n, `SELECT count(*) FROM usage_periods WHERE state = 'pending'`); err != nil {
		return 0, fmt.Errorf("count pending usage periods: %w", err)
	}
	return n, nil
}

// HeldUsageCount counts the held periods of every instance (a metric).
func (s *Metering) HeldUsageCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.x.GetContext(ctx, &n, `SELECT count(*) FROM usage_periods WHERE state = 'held'`); err != nil {
		return 0, fmt.Errorf("count held usage periods: %w", err)
	}
	return n, nil
}

// ErrNotHeld means the period does not exist or is not held.
var ErrNotHeld = errors.New("no such held usage period")

// PeriodPart is one part of a held period split for pushing.
type PeriodPart struct {
	Start, End time.Time
	Quantity   string
	MeteringSN string
}

// SplitHeldPeriod replaces a held period by parts that cover the same span
// (the first starting where it starts), each pending, with a metering_sn of
// its own start. The usage records stay assigned to the first part.
func (s *Metering) SplitHeldPeriod(ctx context.Context, instanceID string, start time.Time, parts []PeriodPart) ([]UsagePeriod, error) {
	var out []UsagePeriod
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		var held UsagePeriod
		err := tx.GetContext(ctx, &held, `SELECT `+usagePeriodColumns+` FROM usage_periods
			WHERE instance_id = $1 AND period_start = $2 AND state = 'held' FOR UPDATE`, instanceID, start)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotHeld
		}
		if err != nil {
			return err
		}
		if len(parts) < 2 || !parts[0].Start.Equal(held.PeriodStart) || !parts[len(parts)-1].End.Equal(held.PeriodEnd) {
			return fmt.Errorf("the parts must cover the period %s–%s", held.PeriodStart.Format(time.RFC3339), held.PeriodEnd.Format(time.RFC3339))
		}
		first := parts[0]
		var p UsagePeriod
		if err := tx.GetContext(ctx, &p, `UPDATE usage_periods SET period_end = $3, quantity = $4::numeric,
			state = 'pending', last_error = '' WHERE instance_id = $1 AND period_start = $2 RETURNING `+usagePeriodColumns,
			instanceID, start, first.End, first.Quantity); err != nil {
			return fmt.Errorf("shorten the held period: %w", err)
		}
		out = append(out, p)
		for _, part := range parts[1:] {
			if err := tx.GetContext(ctx, &p, `
				INSERT INTO usage_periods (instance_id, period_start, period_end, quantity, unbilled, metering_sn,
					relate_pkg_instance, state, closed_at)
				VALUES ($1, $2, $3, $4::numeric, 0, $5, $6, 'pending', $7)
				RETURNING `+usagePeriodColumns,
				instanceID, part.Start, part.End, part.Quantity, part.MeteringSN,
				held.RelatePkgInstance, held.ClosedAt); err != nil {
				return fmt.Errorf("insert the part from %s: %w", part.Start.Format(time.RFC3339), err)
			}
			out = append(out, p)
		}
		return nil
	})
	if errors.Is(err, ErrNotHeld) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("split period %s of %s: %w", start.UTC().Format(time.RFC3339), instanceID, err)
	}
	return out, nil
}

// WriteOffHeldPeriod closes a held period without billing it: its usage
// counts as not billed, with the operator's reason.
func (s *Metering) WriteOffHeldPeriod(ctx context.Context, instanceID string, start time.Time, reason string) (UsagePeriod, error) {
	var p UsagePeriod
	if err := getOne(ctx, s.x, &p, ErrNotHeld, fmt.Sprintf("write off period %s of %s", start.UTC().Format(time.RFC3339), instanceID),
		`UPDATE usage_periods SET state = 'written_off', last_error = $3,
		unbilled = unbilled + quantity, quantity = 0
		WHERE instance_id = $1 AND period_start = $2 AND state = 'held' RETURNING `+usagePeriodColumns,
		instanceID, start, reason); err != nil {
		return UsagePeriod{}, err
	}
	return p, nil
}

// ExpireUsagePeriods marks the pending periods that began before the given
// time as expired (too old for the marketplace) and returns them.
func (s *Metering) ExpireUsagePeriods(ctx context.Context, instanceID string, before time.Time) ([]UsagePeriod, error) {
	out := []UsagePeriod{}
	if err := s.x.SelectContext(ctx, &out, `UPDATE usage_periods SET state = 'expired'
		WHERE instance_id = $1 AND state = 'pending' AND period_start < $2 RETURNING `+usagePeriodColumns,
		instanceID, before); err != nil {
		return nil, fmt.Errorf("expire periods of %s: %w", instanceID, err)
	}
	return out, nil
}

// MarkUsageUnbilled excludes the usage that occurred while the instance was
// frozen, in [from, to), from billing. Usage from before the freeze that is
// reported late stays to be billed in the next period closed.
func (s *Metering) MarkUsageUnbilled(ctx context.Context, instanceID string, from, to time.Time) (int, error) {
	res, err := s.x.ExecContext(ctx, `UPDATE usage_records SET period_start = $2, billed = false
		WHERE instance_id = $1 AND period_start IS NULL AND occurred_at >= $2 AND occurred_at < $3`, instanceID, from, to)
	if err != nil {
		return 0, fmt.Errorf("exclude usage of %s while frozen: %w", instanceID, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// UsagePeriodsOf lists an instance's periods in a time range, oldest first.
func (s *Metering) UsagePeriodsOf(ctx context.Context, instanceID string, from, to time.Time, limit int) ([]UsagePeriod, error) {
	out := []UsagePeriod{}
	if err := s.x.SelectContext(ctx, &out, `SELECT `+usagePeriodColumns+` FROM usage_periods
		WHERE instance_id = $1 AND period_start >= $2 AND period_start < $3 ORDER BY period_start LIMIT $4`,
		instanceID, from, to, limit); err != nil {
		return nil, fmt.Errorf("list periods of %s: %w", instanceID, err)
	}
	return out, nil
}

// UsageSummary totals an instance's usage by state.
type UsageSummary struct {
	Reported   string `db:"reported" json:"reported"`
	Unassigned string `db:"unassigned" json:"notYetClosed"`
	// Closed is the usage closed into periods that are pushed or pending
	// (to be pushed): what the marketplace is or will be told, which it
	// may still refuse. Held and expired periods are not counted.
	Closed string `db:"closed" json:"closed"`
	// Billed is Closed under its former name, which said more than the
	// server knows; kept in the answer for the clients that read it.
	//
	// Deprecated: read Closed ("closed").
	Billed       string     `db:"-" json:"billed"`
	Pushed       string     `db:"pushed" json:"pushed"`
	Pending      int        `db:"pending" json:"pendingPeriods"`
	Expired      int        `db:"expired" json:"expiredPeriods"`
	Held         int        `db:"held" json:"heldPeriods"`
	Unbilled     string     `db:"unbilled" json:"notBilled"`
	LastClosedAt *time.Time `db:"last_closed" json:"lastClosedAt,omitempty"`
	LastError    string     `db:"last_error" json:"lastError,omitempty"`
}

// UsageSummaryOf totals an instance's usage.
func (s *Metering) UsageSummaryOf(ctx context.Context, instanceID string) (UsageSummary, error) {
	var sum UsageSummary
	err := s.x.GetContext(ctx, &sum, `SELECT
		(SELECT COALESCE(sum(quantity), 0)::numeric(24, 4)::text FROM usage_records WHERE instance_id = $1) AS reported,
		(SELECT COALESCE(sum(quantity), 0)::numeric(24, 4)::text FROM usage_records WHERE instance_id = $1 AND period_start IS NULL) AS unassigned,
		COALESCE(sum(quantity) FILTER (WHERE state IN ('pending', 'pushed')), 0)::numeric(24, 4)::text AS closed,
		COALESCE(sum(quantity) FILTER (WHERE state = 'pushed'), 0)::numeric(24, 4)::text AS pushed,
		count(*) FILTER (WHERE state = 'pending') AS pending,
		count(*) FILTER (WHERE state = 'expired') AS expired,
		count(*) FILTER (WHERE state = 'held') AS held,
		(COALESCE(sum(unbilled), 0) + COALESCE(sum(quantity) FILTER (WHERE state = 'expired'), 0))::numeric(24, 4)::text AS unbilled,
		max(closed_at) AS last_closed,
		COALESCE((SELECT last_error FROM usage_periods WHERE instance_id = $1 AND state IN ('pending', 'held') AND last_error <> ''
			ORDER BY period_start DESC LIMIT 1), '') AS last_error
		FROM usage_periods WHERE instance_id = $1`, instanceID)
	if err != nil {
		return UsageSummary{}, fmt.Errorf("sum usage of %s: %w", instanceID, err)
	}
	sum.Billed = sum.Closed
	return sum, nil
}

// UsageTotal is an instance's cumulative billed usage, for queryInstance.
type UsageTotal struct {
	InstanceID string    `db:"instance_id"`
	Related    string    `db:"related"`
	Quantity   string    `db:"quantity"`
	At         time.Time `db:"at"`
}

// UsageTotals returns the cumulative billed usage of pay-per-use instances,
// and for packages the amount each covered instance consumed.
func (s *Metering) UsageTotals(ctx context.Context, ids []string) (map[string][]UsageTotal, error) {
	var rows []UsageTotal
	if err := s.x.SelectContext(ctx, &rows, `
		SELECT instance_id, '' AS related, sum(quantity)::text AS quantity, max(closed_at) AS at
		FROM usage_periods WHERE instance_id = ANY($1) AND state IN ('pending', 'pushed')
		GROUP BY instance_id
		UNION ALL
		SELECT relate_pkg_instance AS instance_id, instance_id AS related, sum(quantity)::text, max(closed_at)
		FROM usage_periods WHERE relate_pkg_instance = ANY($1) AND state IN ('pending', 'pushed')
		GROUP BY relate_pkg_instance, instance_id
		ORDER BY 1, 2`, pq.Array(ids)); err != nil {
		return nil, fmt.Errorf("total usage: %w", err)
	}
	out := map[string][]UsageTotal{}
	for _, r := range rows {
		out[r.InstanceID] = append(out[r.InstanceID], r)
	}
	return out, nil
}

// UsagePackage is a quota bought for a customer's instances of a skuCode.
type UsagePackage struct {
	PackageInstanceID string `db:"package_instance_id"`
	CustomerID        string `db:"customer_id"`
	SkuCode           string `db:"sku_code"`
	Quota             string `db:"quota"`
	Consumed          string `db:"consumed"`
	Active            bool   `db:"active"`
}

// RegisterPackage records a package once, and returns the pay-per-use
// instances it covers (the customer's instances of its skuCode).
func (s *Metering) RegisterPackage(ctx context.Context, p UsagePackage) ([]string, error) {
	if _, err := s.x.ExecContext(ctx, `
		INSERT INTO usage_packages (package_instance_id, customer_id, sku_code, quota) VALUES ($1, $2, $3, $4::numeric)
		ON CONFLICT (package_instance_id) DO NOTHING`, p.PackageInstanceID, p.CustomerID, p.SkuCode, p.Quota); err != nil {
		return nil, fmt.Errorf("register package %s: %w", p.PackageInstanceID, err)
	}
	return s.coveredBy(ctx, p)
}

// ResetPackage starts a package's new cycle at cycleStart: what it has
// consumed becomes what periods ending after cycleStart drew on it (none,
// when it runs at the boundary; a period that straddles the boundary counts
// in the new cycle, which is also where it is drawn when it closes after
// the reset). Computed, not set to zero, so that a retry after periods were
// drawn in the new cycle loses none of them. It returns the pay-per-use
// instances the package covers.
func (s *Metering) ResetPackage(ctx context.Context, packageInstanceID string, cycleStart time.Time) ([]string, error) {
	var p UsagePackage
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		// Locked first, as a closing period locks it to draw on it: the
		// sum below then sees every period drawn before.
		if err := getOne(ctx, tx, &p, ErrNotFound, fmt.Sprintf("lock package %s", packageInstanceID), `
			SELECT package_instance_id, customer_id, sku_code, quota::text AS quota, consumed::text AS consumed, active
			FROM usage_packages WHERE package_instance_id = $1 FOR UPDATE`, packageInstanceID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			UPDATE usage_packages SET consumed = (SELECT COALESCE(sum(quantity), 0) FROM usage_periods
				WHERE relate_pkg_instance = $1 AND period_end > $2)
			WHERE package_instance_id = $1`, packageInstanceID, cycleStart)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reset package %s at %s: %w", packageInstanceID, cycleStart.UTC().Format(time.RFC3339), err)
	}
	return s.coveredBy(ctx, p)
}

// coveredBy lists the pay-per-use instances a package covers: its
// customer's instances of its skuCode.
func (s *Metering) coveredBy(ctx context.Context, p UsagePackage) ([]string, error) {
	covered := []string{}
	if err := s.x.SelectContext(ctx, &covered, `SELECT instance_id FROM instances
		WHERE customer_id = $1 AND sku_code = $2 AND charging_mode = 'ON_DEMAND' AND instance_id <> $3
		ORDER BY instance_id`, p.CustomerID, p.SkuCode, p.PackageInstanceID); err != nil {
		return nil, fmt.Errorf("list instances covered by %s: %w", p.PackageInstanceID, err)
	}
	return covered, nil
}

// PackageUsageSince is what each instance a package covers drew on it in
// periods ending after since (the current cycle of a package whose content
// resets), like UsageTotals for a package.
func (s *Metering) PackageUsageSince(ctx context.Context, packageInstanceID string, since time.Time) ([]UsageTotal, error) {
	rows := []UsageTotal{}
	if err := s.x.SelectContext(ctx, &rows, `
		SELECT relate_pkg_instance AS instance_id, instance_id AS related, sum(quantity)::text AS quantity, max(closed_at) AS at
		FROM usage_periods WHERE relate_pkg_instance = $1 AND period_end > $2 AND state IN ('pending', 'pushed')
		GROUP BY relate_pkg_instance, instance_id ORDER BY 2`, packageInstanceID, since); err != nil {
		return nil, fmt.Errorf("usage of package %s since %s: %w", packageInstanceID, since.UTC().Format(time.RFC3339), err)
	}
	return rows, nil
}

// DeactivatePackage stops a package (released or expired).
func (s *Metering) DeactivatePackage(ctx context.Context, packageInstanceID string) error {
	if _, err := s.x.ExecContext(ctx, `UPDATE usage_packages SET active = false WHERE package_instance_id = $1`, packageInstanceID); err != nil {
		return fmt.Errorf("deactivate package %s: %w", packageInstanceID, err)
	}
	return nil
}

// Package returns a package, or ErrNotFound.
func (s *Metering) Package(ctx context.Context, packageInstanceID string) (UsagePackage, error) {
	var p UsagePackage
	if err := getOne(ctx, s.x, &p, ErrNotFound, fmt.Sprintf("read package %s", packageInstanceID),
		`SELECT package_instance_id, customer_id, sku_code, quota::text AS quota,
		consumed::text AS consumed, active FROM usage_packages WHERE package_instance_id = $1`, packageInstanceID); err != nil {
		return UsagePackage{}, err
	}
	return p, nil
}
