-- The KooGallery emulator (fulfillment emulator): the marketplace's side of
-- local rehearsals. The orders it sold, each purchase as the marketplace
-- sees it, its timeline, the production-interface calls that failed
-- (the console's 生产接口消息), and the usage merchants pushed to it.

CREATE TABLE emulator_orders (
    order_id      text PRIMARY KEY,
    order_line_id text NOT NULL,
    purchase_id   text NOT NULL,
    order_type    text NOT NULL,
    charging_mode text NOT NULL,
    period_type   text NOT NULL DEFAULT '',
    period_number integer NOT NULL DEFAULT 0,
    sku_code      text NOT NULL,
    product_id    text NOT NULL,
    linear_value  bigint,
    expire_time   timestamptz,
    customer_id   text NOT NULL,
    customer_name text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX emulator_orders_purchase ON emulator_orders (purchase_id, created_at);

CREATE TABLE emulator_purchases (
    purchase_id          text PRIMARY KEY,
    state                text NOT NULL,
    charging_mode        text NOT NULL,
    product_id           text NOT NULL,
    supervised           boolean NOT NULL,
    debug                boolean NOT NULL,
    instance_id          text NOT NULL DEFAULT '',
    expire_time          timestamptz,
    emulated_expire_time timestamptz,
    supervision_stage    text NOT NULL DEFAULT '',
    revision             bigint NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- What queryInstance handed over, as the marketplace received it:
-- userName and password stay encrypted; the console decrypts them to show
-- the buyer.
CREATE TABLE emulator_app_info (
    purchase_id   text PRIMARY KEY,
    front_end_url text NOT NULL,
    admin_url     text NOT NULL DEFAULT '',
    user_name     text NOT NULL DEFAULT '',
    password      text NOT NULL DEFAULT '',
    memo          text NOT NULL DEFAULT '',
    received_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE emulator_events (
    id          bigserial PRIMARY KEY,
    purchase_id text NOT NULL,
    event_key   text NOT NULL,
    at          timestamptz NOT NULL,
    emulated_at timestamptz NOT NULL,
    kind        text NOT NULL,
    message     text NOT NULL,
    UNIQUE (purchase_id, event_key)
);
CREATE INDEX emulator_events_purchase ON emulator_events (purchase_id, at, id);

CREATE TABLE emulator_messages (
    id             text PRIMARY KEY,
    purchase_id    text NOT NULL,
    activity       text NOT NULL,
    body           text NOT NULL,
    error          text NOT NULL,
    attempts       integer NOT NULL,
    status         text NOT NULL,
    first_failed_at timestamptz NOT NULL,
    last_failed_at  timestamptz NOT NULL,
    resolved_at     timestamptz
);
CREATE INDEX emulator_messages_status ON emulator_messages (status, last_failed_at);

CREATE TABLE emulator_usage (
    metering_sn         text PRIMARY KEY,
    instance_id         text NOT NULL,
    begin_time          timestamptz NOT NULL,
    end_time            timestamptz NOT NULL,
    record_time         timestamptz NOT NULL,
    usage_value         numeric(24, 4) NOT NULL,
    relate_pkg_instance text NOT NULL DEFAULT '',
    received_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (instance_id, begin_time, end_time)
);
