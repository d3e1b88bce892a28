package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Batched metering (schema 0014): the metered instances, the set-based close
// of their periods, and the pending periods of all instances pushed
// together. The metering rules (serial numbers, how usage draws on
// packages) stay with the caller, as for CloseUsagePeriod.

// PeriodBoundaryAfter is the first metering period boundary strictly after
// t. Boundaries are multiples of the period since Go's zero time, which for
// an hour or a day are the UTC clock's hours and midnights.
func PeriodBoundaryAfter(t time.Time, period time.Duration) time.Time {
	return t.Truncate(period).Add(period)
}

// Span is a stretch of time [Start, End).
type Span struct {
	Start time.Time
	End   time.Time
}

// PeriodSpans splits [from, to) at the period boundaries.
func PeriodSpans(from, to time.Time, period time.Duration) []Span {
	var out []Span
	for from.Before(to) {
		end := PeriodBoundaryAfter(from, period)
		if end.After(to) {
			end = to
		}
		out = append(out, Span{Start: from, End: end})
		from = end
	}
	return out
}

// MeteredInstance is an instance whose periods the collector closes.
type MeteredInstance struct {
	InstanceID string
	Period     time.Duration // whole milliseconds
	Delay      time.Duration // whole milliseconds: how long after a period ends it closes
	// OpenSince is the start of the open period (a whole second).
	OpenSince time.Time
	// PausedAt is set while the instance is frozen (not metered).
	PausedAt *time.Time
	// SNPrefix begins every period's metering_sn; the start of the period
	// as yyyyMMddHHmmss (UTC) ends it.
	SNPrefix string
}

// ErrNotMetered means an instance has no row in metered_instances.
var ErrNotMetered = errors.New("instance is not metered by the collector")

// RegisterMetered hands an instance's metering to the collector, from
// m.OpenSince on. A second registration of the same instance changes
// nothing (the row may have moved on since): it reports whether this one
// was recorded.
func (s *Metering) RegisterMetered(ctx context.Context, m MeteredInstance) (bool, error) {
	if m.Period < time.Second || m.Period%time.Millisecond != 0 || m.Delay < 0 || m.Delay%time.Millisecond != 0 {
		return false, fmt.Errorf("register metering of %s: period %s and delay %s must be whole milliseconds, the period at least 1s",
			m.InstanceID, m.Period, m.Delay)
	}
	first := PeriodBoundaryAfter(m.OpenSince, m.Period)
	res, err := s.x.ExecContext(ctx, `
		INSERT INTO metered_instances (instance_id, period_ms, delay_ms, open_since, first_boundary, close_at,
			paused_at, sn_prefix)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (instance_id) DO NOTHING`,
		m.InstanceID, m.Period.Milliseconds(), m.Delay.Milliseconds(), m.OpenSince, first, first.Add(m.Delay),
		m.PausedAt, m.SNPrefix)
	if err != nil {
		return false, fmt.Errorf("register metering of %s: %w", m.InstanceID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// CloseDueResult counts what a set-based close did.
type CloseDueResult struct {
	Instances int `db:"instances"` // instances whose due periods were closed
	Periods   int `db:"periods"`   // periods with usage to push (the empty ones are recorded too)
	Records   int `db:"records"`   // usage records assigned to them
}

// CloseDueUncovered closes, in one statement, the due periods of up to
// limit metered instances that no package covers (nor ever did): every
// period that ended at least the delay before now, from the open one on.
// A usage record goes to the period it occurred in, or to the first one
// closed if it occurred earlier (late usage), as CloseUsagePeriod does;
// the whole total is billed, and a period without usage is recorded empty.
// Rows another transaction holds
// (a freeze closing the same instance) are skipped and left for the next
// call. The caller calls again while Instances == limit.
func (s *Metering) CloseDueUncovered(ctx context.Context, now time.Time, limit int) (CloseDueResult, error) {
	var out CloseDueResult
	// Epoch milliseconds keep the period arithmetic exact: the boundaries
	// are first_boundary + k·period.
	err := s.x.GetContext(ctx, &out, `
		WITH due AS (
			SELECT m.instance_id, m.open_since, m.period_ms, m.delay_ms, m.sn_prefix,
				`+epochMS("m.first_boundary")+` AS first_ms,
				`+epochMS("m.first_boundary")+` + (`+epochMS("$1::timestamptz")+` - m.delay_ms - `+epochMS("m.first_boundary")+`)
					/ m.period_ms * m.period_ms AS close_to_ms
			FROM metered_instances m
			WHERE m.close_at <= $1 AND m.paused_at IS NULL AND m.stopped_at IS NULL
				AND NOT EXISTS (SELECT 1 FROM instances i JOIN usage_packages pk
					ON pk.customer_id = i.customer_id AND pk.sku_code = i.sku_code WHERE i.instance_id = m.instance_id)
			ORDER BY m.close_at
			LIMIT $2
			FOR UPDATE OF m SKIP LOCKED
		), assigned AS (
			UPDATE usage_records r SET billed = true, period_start = CASE
				WHEN r.occurred_at < `+fromEpochMS("d.first_ms")+` THEN d.open_since
				ELSE `+fromEpochMS("d.first_ms + ("+epochMS("r.occurred_at")+" - d.first_ms) / d.period_ms * d.period_ms")+`
				END
			FROM due d
			WHERE r.instance_id = d.instance_id AND r.period_start IS NULL AND r.occurred_at < `+fromEpochMS("d.close_to_ms")+`
			RETURNING r.instance_id, r.period_start, r.quantity
		), spans AS (
			SELECT d.instance_id, d.open_since AS period_start, `+fromEpochMS("d.first_ms")+` AS period_end FROM due d
			UNION ALL
			SELECT d.instance_id, `+fromEpochMS("s")+`, `+fromEpochMS("s + d.period_ms")+`
			FROM due d, generate_series(d.first_ms, d.close_to_ms - d.period_ms, d.period_ms) AS s
		), sums AS (
			SELECT instance_id, period_start, sum(quantity) AS quantity FROM assigned GROUP BY instance_id, period_start
		), periods AS (
			INSERT INTO usage_periods (instance_id, period_start, period_end, quantity, unbilled, metering_sn,
				relate_pkg_instance, state, closed_at)
			SELECT sp.instance_id, sp.period_start, sp.period_end, COALESCE(su.quantity, 0), 0,
				d.sn_prefix || to_char(sp.period_start AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS'), '',
				CASE WHEN su.quantity > 0 THEN 'pending' ELSE 'empty' END, $1
			FROM spans sp JOIN due d USING (instance_id) LEFT JOIN sums su USING (instance_id, period_start)
			RETURNING state
		), moved AS (
			UPDATE metered_instances m SET open_since = `+fromEpochMS("d.close_to_ms")+`,
				first_boundary = `+fromEpochMS("d.close_to_ms + d.period_ms")+`,
				close_at = `+fromEpochMS("d.close_to_ms + d.period_ms + d.delay_ms")+`
			FROM due d WHERE m.instance_id = d.instance_id
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM moved) AS instances, (SELECT count(*) FROM periods WHERE state = 'pending') AS periods,
			(SELECT count(*) FROM assigned) AS records`, now, limit)
	if err != nil {
		return CloseDueResult{}, fmt.Errorf("close due usage periods: %w", err)
	}
	return out, nil
}

// epochMS is the SQL for a timestamptz as whole Unix milliseconds (rounded
// down), fromEpochMS its inverse.
func epochMS(ts string) string { return "floor(extract(epoch FROM " + ts + ") * 1000)::bigint" }

func fromEpochMS(ms string) string { return "to_timestamp((" + ms + ")::numeric / 1000)" }

// DueCovered lists up to limit metered instances with due periods that a
// package covers (or did): their usage draws on the package quota, which
// CloseMetered does one instance at a time.
func (s *Metering) DueCovered(ctx context.Context, now time.Time, limit int) ([]string, error) {
	ids := []string{}
	if err := s.x.SelectContext(ctx, &ids, `
		SELECT m.instance_id FROM metered_instances m
		WHERE m.close_at <= $1 AND m.paused_at IS NULL AND m.stopped_at IS NULL
			AND EXISTS (SELECT 1 FROM instances i JOIN usage_packages pk
				ON pk.customer_id = i.customer_id AND pk.sku_code = i.sku_code WHERE i.instance_id = m.instance_id)
		ORDER BY m.close_at LIMIT $2`, now, limit); err != nil {
		return nil, fmt.Errorf("list due instances covered by packages: %w", err)
	}
	return ids, nil
}

// Metering changes, the Change of a CloseMetered.
const (
	MeteringDue   = ""      // close what is due at Now, if anything
	MeteringPause = "pause" // the instance is frozen at At: close until At, then stop metering
	MeteringStop  = "stop"  // released at At: close until At, metering is over
)

// CloseMetered asks to close one metered instance's periods.
type CloseMetered struct {
	InstanceID string
	Change     string
	// At is when a pause or stop happens (a whole second); Now is the
	// clock, for what is due and for closed_at.
	At, Now time.Time
	// Rules completes each period with its serial number and how its
	// usage draws on packages (CloseUsagePeriod's MeteringSN and Draw).
	Rules func(ClosePeriod) ClosePeriod
}

// ClosedMetered is what CloseMetered did.
type ClosedMetered struct {
	Periods          int
	PackageExhausted string
}

// CloseMetered closes one instance's periods under the lock of its row:
// what is due (MeteringDue), or everything until At before it pauses or
// stops. Each period goes through CloseUsagePeriod's rules, packages
// included. A paused instance has nothing to close; a stopped one nothing
// at all. Running it again changes nothing.
func (s *Metering) CloseMetered(ctx context.Context, in CloseMetered) (ClosedMetered, error) {
	var out ClosedMetered
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		m, paused, stopped, err := lockMetered(ctx, tx, in.InstanceID)
		if err != nil || stopped {
			return err
		}
		to := in.At
		if in.Change == MeteringDue {
			last := in.Now.Add(-m.Delay).Truncate(m.Period)
			if paused || !last.After(m.OpenSince) {
				return nil
			}
			to = last
		}
		if !paused {
			for _, span := range PeriodSpans(m.OpenSince, to, m.Period) {
				closed, err := closeUsagePeriod(ctx, tx, in.Rules(ClosePeriod{
					InstanceID: in.InstanceID, Start: span.Start, End: span.End, Billable: true, At: in.Now,
				}))
				if err != nil {
					return err
				}
				out.Periods++
				if closed.PackageExhausted != "" {
					out.PackageExhausted = closed.PackageExhausted
				}
			}
		}
		open := m.OpenSince
		if to.After(open) {
			open = to
		}
		first := PeriodBoundaryAfter(open, m.Period)
		_, err = tx.ExecContext(ctx, `UPDATE metered_instances SET open_since = $2, first_boundary = $3, close_at = $4,
			paused_at = CASE WHEN $5 AND paused_at IS NULL THEN $6::timestamptz ELSE paused_at END,
			stopped_at = CASE WHEN $7 THEN $6::timestamptz ELSE stopped_at END
			WHERE instance_id = $1`,
			in.InstanceID, open, first, first.Add(m.Delay), in.Change == MeteringPause, in.At, in.Change == MeteringStop)
		return err
	})
	if err != nil {
		return ClosedMetered{}, fmt.Errorf("close metering of %s: %w", in.InstanceID, err)
	}
	return out, nil
}

// ResumeMetered meters a paused instance again from at: the usage that
// occurred while it was frozen is excluded from billing (MarkUsageUnbilled)
// in the same transaction. An instance that is not paused is left as it is.
func (s *Metering) ResumeMetered(ctx context.Context, instanceID string, at time.Time) error {
	err := inTx(ctx, s.x, func(tx *sqlx.Tx) error {
		m, paused, stopped, err := lockMetered(ctx, tx, instanceID)
		if err != nil || !paused || stopped {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE usage_records SET period_start = $2, billed = false
			WHERE instance_id = $1 AND period_start IS NULL AND occurred_at >= $2 AND occurred_at < $3`,
			instanceID, *m.PausedAt, at); err != nil {
			return fmt.Errorf("exclude usage while frozen: %w", err)
		}
		first := PeriodBoundaryAfter(at, m.Period)
		_, err = tx.ExecContext(ctx, `UPDATE metered_instances SET paused_at = NULL, open_since = $2,
			first_boundary = $3, close_at = $4 WHERE instance_id = $1`, instanceID, at, first, first.Add(m.Delay))
		return err
	})
	if err != nil {
		return fmt.Errorf("resume metering of %s: %w", instanceID, err)
	}
	return nil
}

// lockMetered reads and locks an instance's row.
func lockMetered(ctx context.Context, tx *sqlx.Tx, instanceID string) (m MeteredInstance, paused, stopped bool, err error) {
	var row struct {
		PeriodMS  int64      `db:"period_ms"`
		DelayMS   int64      `db:"delay_ms"`
		OpenSince time.Time  `db:"open_since"`
		PausedAt  *time.Time `db:"paused_at"`
		StoppedAt *time.Time `db:"stopped_at"`
		SNPrefix  string     `db:"sn_prefix"`
	}
	err = tx.GetContext(ctx, &row, `SELECT period_ms, delay_ms, open_since, paused_at, stopped_at, sn_prefix
		FROM metered_instances WHERE instance_id = $1 FOR UPDATE`, instanceID)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, false, ErrNotMetered
	}
	if err != nil {
		return m, false, false, err
	}
	m = MeteredInstance{
		InstanceID: instanceID, Period: time.Duration(row.PeriodMS) * time.Millisecond,
		Delay: time.Duration(row.DelayMS) * time.Millisecond, OpenSince: row.OpenSince.UTC(),
		PausedAt: row.PausedAt, SNPrefix: row.SNPrefix,
	}
	return m, row.PausedAt != nil, row.StoppedAt != nil, nil
}

// NextMeteringClose is when the next metered instance's period closes, or
// nil when none is metered.
func (s *Metering) NextMeteringClose(ctx context.Context) (*time.Time, error) {
	var at *time.Time
	if err := s.x.GetContext(ctx, &at, `SELECT min(close_at) FROM metered_instances
		WHERE paused_at IS NULL AND stopped_at IS NULL`); err != nil {
		return nil, fmt.Errorf("find the next metering close: %w", err)
	}
	return at, nil
}

// OldestPendingPeriods returns up to limit pending periods of all
// instances, oldest first: the next usage push.
func (s *Metering) OldestPendingPeriods(ctx context.Context, limit int) ([]UsagePeriod, error) {
	out := []UsagePeriod{}
	if err := s.x.SelectContext(ctx, &out, `SELECT `+usagePeriodColumns+` FROM usage_periods
		WHERE state = 'pending' ORDER BY period_start, instance_id LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("list the oldest pending periods: %w", err)
	}
	return out, nil
}

// MarkPeriodsPushed records that the marketplace accepted the periods with
// these serial numbers.
func (s *Metering) MarkPeriodsPushed(ctx context.Context, sns []string, at time.Time) error {
	if _, err := s.x.ExecContext(ctx, `UPDATE usage_periods SET state = 'pushed', pushed_at = $2,
		attempts = attempts + 1, last_error = '' WHERE metering_sn = ANY($1) AND state = 'pending'`,
		pq.Array(sns), at); err != nil {
		return fmt.Errorf("mark %d periods pushed: %w", len(sns), err)
	}
	return nil
}

// MarkPeriodsPushFailed records a failed push of the periods with these
// serial numbers; they stay pending.
func (s *Metering) MarkPeriodsPushFailed(ctx context.Context, sns []string, reason string) error {
	if _, err := s.x.ExecContext(ctx, `UPDATE usage_periods SET attempts = attempts + 1, last_error = $2
		WHERE metering_sn = ANY($1) AND state = 'pending'`, pq.Array(sns), reason); err != nil {
		return fmt.Errorf("mark %d periods failed: %w", len(sns), err)
	}
	return nil
}

// HoldPeriod takes the pending period with this serial number out of the
// pushes, with the reason (HoldUsagePeriod by serial number).
func (s *Metering) HoldPeriod(ctx context.Context, sn, reason string) (bool, error) {
	res, err := s.x.ExecContext(ctx, `UPDATE usage_periods SET state = 'held', last_error = $2
		WHERE metering_sn = $1 AND state = 'pending'`, sn, reason)
	if err != nil {
		return false, fmt.Errorf("hold period %s: %w", sn, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ExpiredPeriods counts, by instance, the periods ExpireAllUsagePeriods
// marked expired.
type ExpiredPeriods struct {
	InstanceID string `db:"instance_id"`
	Periods    int    `db:"periods"`
}

// ExpireAllUsagePeriods marks the pending periods of every instance that
// began before the given time as expired (too old for the marketplace).
func (s *Metering) ExpireAllUsagePeriods(ctx context.Context, before time.Time) ([]ExpiredPeriods, error) {
	out := []ExpiredPeriods{}
	if err := s.x.SelectContext(ctx, &out, `
		WITH expired AS (UPDATE usage_periods SET state = 'expired'
			WHERE state = 'pending' AND period_start < $1 RETURNING instance_id)
		SELECT instance_id, count(*) AS periods FROM expired GROUP BY instance_id ORDER BY instance_id`, before); err != nil {
		return nil, fmt.Errorf("expire old usage periods: %w", err)
	}
	return out, nil
}
