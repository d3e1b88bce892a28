-- Pay-per-use: the usage the merchant's application reports, the metering
-- periods pushed to the marketplace (SPEC §6.2), and the quotas of
-- packages that stop when used up (用完即停).

-- Usage as reported, once per idempotency key. period_start is set when
-- the record's metering period is closed; billed is false for usage that
-- is not charged (the tenant was frozen, or a package's quota ran out).
CREATE TABLE usage_records (
    idempotency_key text PRIMARY KEY,
    instance_id     text NOT NULL REFERENCES instance_keys (instance_id),
    meter           text NOT NULL,
    quantity        numeric(24, 4) NOT NULL CHECK (quantity > 0),
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    period_start    timestamptz,
    billed          boolean
);
CREATE INDEX usage_records_open ON usage_records (instance_id, occurred_at) WHERE period_start IS NULL;
CREATE INDEX usage_records_period ON usage_records (instance_id, period_start);

-- One row per instance and metering period: the ledger of what is pushed.
-- metering_sn is derived from the instance and the period, so a retried
-- push of a period carries the same serial number and can never bill twice.
CREATE TABLE usage_periods (
    instance_id         text NOT NULL,
    period_start        timestamptz NOT NULL,
    period_end          timestamptz NOT NULL,
    quantity            numeric(24, 4) NOT NULL,
    unbilled            numeric(24, 4) NOT NULL DEFAULT 0,
    metering_sn         text NOT NULL UNIQUE,
    relate_pkg_instance text NOT NULL DEFAULT '',
    state               text NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    last_error          text NOT NULL DEFAULT '',
    closed_at           timestamptz NOT NULL,
    pushed_at           timestamptz,
    PRIMARY KEY (instance_id, period_start)
);
CREATE INDEX usage_periods_pending ON usage_periods (instance_id, period_start) WHERE state = 'pending';
-- queryInstance totals what each covered instance drew on a package
-- (UsageTotals, by relate_pkg_instance) on every call: without this index
-- that is a scan of every period of every instance, which grows by one row
-- per pay-per-use instance and hour.
CREATE INDEX usage_periods_package ON usage_periods (relate_pkg_instance);

-- Packages: a quota bought for a customer's pay-per-use instances of one
-- skuCode, consumed oldest package first.
CREATE TABLE usage_packages (
    package_instance_id text PRIMARY KEY,
    customer_id         text NOT NULL,
    sku_code            text NOT NULL,
    quota               numeric(24, 4) NOT NULL,
    consumed            numeric(24, 4) NOT NULL DEFAULT 0,
    active              boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_packages_cover ON usage_packages (customer_id, sku_code, created_at) WHERE active;

-- Pay-per-use billing items: one instance per orderId + productId (SPEC
-- §1.2). newInstance is keyed by orderId + orderLineId; this claim makes
-- sure no two instances ever meter the same billing item.
CREATE TABLE billing_items (
    order_id    text NOT NULL,
    product_id  text NOT NULL,
    instance_id text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, product_id)
);
