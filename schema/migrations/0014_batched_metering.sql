-- Batched metering (contract §6.2). One collector closes the periods of
-- every metered instance with set-based SQL and pushes what is pending in
-- calls of up to 1,000 records, oldest first, instead of one workflow
-- timer, two activities and one open-API call per instance and period.
-- Each metered instance has a row here saying where its open period
-- starts; its metering workflow only writes the freezes, unfreezes and the
-- release, so nothing costs Temporal work per instance and period.
CREATE TABLE metered_instances (
    instance_id    text PRIMARY KEY,
    -- In milliseconds: an hour or a day in production, seconds in
    -- rehearsals on a fast clock.
    period_ms      bigint NOT NULL CHECK (period_ms > 0),
    delay_ms       bigint NOT NULL CHECK (delay_ms >= 0),
    -- The open period runs from open_since to first_boundary, the first
    -- period boundary after it. It is closed, with
    -- every whole period after it that has ended, once close_at
    -- (first_boundary plus the delay for late usage) has come.
    open_since     timestamptz NOT NULL,
    first_boundary timestamptz NOT NULL,
    close_at       timestamptz NOT NULL,
    -- Frozen since (not metered), and released (metering is over).
    paused_at      timestamptz,
    stopped_at     timestamptz,
    -- A period's metering_sn is sn_prefix followed by its start as
    -- yyyyMMddHHmmss (UTC), the same serial number the instance's own
    -- metering used, so that a period is never billed twice across the
    -- upgrade.
    sn_prefix      text NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX metered_instances_due ON metered_instances (close_at) WHERE paused_at IS NULL AND stopped_at IS NULL;

-- The collector pushes the oldest pending periods of all instances.
CREATE INDEX usage_periods_pending_oldest ON usage_periods (period_start, instance_id) WHERE state = 'pending';
