-- Foundation: the inbox of marketplace callbacks, the instance read model and
-- the built-in demo provisioner's tenants.

-- Nonces of verified production-interface calls (SPEC §2.2), kept for as long
-- as a replay of the call could still pass the timestamp check. Shared by
-- every API replica and kept across restarts.
CREATE TABLE koogallery_nonces (
    nonce      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX koogallery_nonces_expires_at ON koogallery_nonces (expires_at);

-- The instanceId given to each order line, allocated by the API when it
-- records the first newInstance (the first request's businessId, SPEC §1.2).
-- last_status/status_episode number the FREEZE/UNFREEZE alternations so that
-- a retried FREEZE is one callback while a FREEZE a year later is another.
CREATE TABLE instance_keys (
    instance_id    text PRIMARY KEY,
    order_id       text NOT NULL,
    order_line_id  text NOT NULL,
    debug          boolean NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_status    text,
    status_episode integer NOT NULL DEFAULT 0,
    UNIQUE (order_id, order_line_id)
);

-- The durable inbox. A callback is answered 000000 only once its row is
-- committed; the relay signals rows whose delivered_at is still empty.
CREATE TABLE callbacks (
    seq              bigserial PRIMARY KEY,
    dedup_key        text NOT NULL UNIQUE,
    activity         text NOT NULL,
    instance_id      text REFERENCES instance_keys (instance_id),
    order_id         text NOT NULL DEFAULT '',
    order_line_id    text NOT NULL DEFAULT '',
    debug            boolean NOT NULL,
    body             text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    redeliveries     integer NOT NULL DEFAULT 0,
    last_received_at timestamptz NOT NULL DEFAULT now(),
    deliver_after    timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT '',
    delivered_at     timestamptz,
    outcome          text NOT NULL DEFAULT ''
);
CREATE INDEX callbacks_pending ON callbacks (deliver_after, seq) WHERE delivered_at IS NULL;
CREATE INDEX callbacks_instance ON callbacks (instance_id, seq);

-- The read model of every instance. Written only by the activities of the
-- instance's workflow; revision grows with every write so that a late,
-- retried write can never overwrite a newer one.
CREATE TABLE instances (
    instance_id    text PRIMARY KEY,
    order_id       text NOT NULL,
    order_line_id  text NOT NULL,
    state          text NOT NULL,
    reason         text NOT NULL DEFAULT '',
    debug          boolean NOT NULL DEFAULT false,
    charging_mode  text NOT NULL DEFAULT '',
    order_type     text NOT NULL DEFAULT '',
    sku_code       text NOT NULL DEFAULT '',
    product_id     text NOT NULL DEFAULT '',
    linear_value   bigint,
    period_type    text NOT NULL DEFAULT '',
    period_number  integer NOT NULL DEFAULT 0,
    customer_id    text NOT NULL DEFAULT '',
    customer_name  text NOT NULL DEFAULT '',
    expire_time    timestamptz,
    front_end_url  text NOT NULL DEFAULT '',
    admin_url      text NOT NULL DEFAULT '',
    memo           text NOT NULL DEFAULT '',
    revision       bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_state ON instances (state, instance_id);
CREATE INDEX instances_order ON instances (order_id);

-- The initial credentials of each instance's tenant, sealed with the
-- marketplace field encryption (SPEC §2.6, AES-256) so that neither a
-- database dump nor the workflow history ever holds them in clear.
CREATE TABLE instance_credentials (
    instance_id   text PRIMARY KEY,
    user_name_enc text NOT NULL,
    password_enc  text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The timeline of each instance: what its workflow did and why. Keys make
-- every append idempotent.
CREATE TABLE instance_events (
    id          bigserial PRIMARY KEY,
    instance_id text NOT NULL,
    event_key   text NOT NULL,
    kind        text NOT NULL,
    message     text NOT NULL,
    occurred_at timestamptz NOT NULL,
    UNIQUE (instance_id, event_key)
);
CREATE INDEX instance_events_instance ON instance_events (instance_id, occurred_at, id);

-- The tenants of the built-in demo provisioner: a stand-in for the
-- merchant's own application. Passwords are stored as salted SHA-256 of a
-- random 96-bit secret, never in clear.
CREATE TABLE demo_tenants (
    tenant_id      text PRIMARY KEY,
    instance_id    text NOT NULL UNIQUE,
    state          text NOT NULL,
    debug          boolean NOT NULL,
    sku_code       text NOT NULL DEFAULT '',
    product_id     text NOT NULL DEFAULT '',
    linear_value   bigint,
    used_quantity  bigint NOT NULL DEFAULT 1,
    user_name      text NOT NULL,
    password_salt  bytea NOT NULL,
    password_hash  bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
