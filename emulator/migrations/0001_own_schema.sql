-- The emulator's tables, in the Postgres schema emulator, so that the
-- server's migrations never create them. They used to be public.emulator_*
-- (the server's migration 0003). A database that still has one keeps its
-- rows: the table moves here under its new name, its constraints, indexes
-- and sequence renamed alike, and the CREATE ... IF NOT EXISTS below leave
-- it as it is. The others are created.

-- The server's migration rehearsal_tables_leave drops the public.emulator_*
-- tables that are empty. Waiting for the server's migration lock
-- (schema.lockID) keeps it and this adoption from reaching for the same
-- table at once when the server and the emulator start together.
SELECT pg_advisory_xact_lock(7140625001);

DO $$
DECLARE
    old_name text;
    moved    record;
BEGIN
    FOREACH old_name IN ARRAY ARRAY['emulator_orders', 'emulator_purchases', 'emulator_app_info',
                                    'emulator_events', 'emulator_messages', 'emulator_usage'] LOOP
        CONTINUE WHEN to_regclass('public.' || old_name) IS NULL;
        EXECUTE format('ALTER TABLE public.%I SET SCHEMA emulator', old_name);
        EXECUTE format('ALTER TABLE emulator.%I RENAME TO %I', old_name, regexp_replace(old_name, '^emulator_', ''));
        RAISE NOTICE 'public.% adopted as emulator.%', old_name, regexp_replace(old_name, '^emulator_', '');
    END LOOP;
    -- Renaming a constraint renames its index too.
    FOR moved IN
        SELECT t.relname AS table_name, c.conname AS name
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        WHERE c.connamespace = 'emulator'::regnamespace AND c.conname LIKE 'emulator\_%'
    LOOP
        EXECUTE format('ALTER TABLE emulator.%I RENAME CONSTRAINT %I TO %I',
            moved.table_name, moved.name, regexp_replace(moved.name, '^emulator_', ''));
    END LOOP;
    FOR moved IN
        SELECT relname AS name, CASE relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'INDEX' END AS kind
        FROM pg_class
        WHERE relnamespace = 'emulator'::regnamespace AND relkind IN ('i', 'S') AND relname LIKE 'emulator\_%'
    LOOP
        EXECUTE format('ALTER %s emulator.%I RENAME TO %I',
            moved.kind, moved.name, regexp_replace(moved.name, '^emulator_', ''));
    END LOOP;
END $$;

-- The orders the emulator sold.
CREATE TABLE IF NOT EXISTS emulator.orders (
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
CREATE INDEX IF NOT EXISTS orders_purchase ON emulator.orders (purchase_id, created_at);

-- Each purchase as the marketplace sees it.
CREATE TABLE IF NOT EXISTS emulator.purchases (
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
CREATE TABLE IF NOT EXISTS emulator.app_info (
    purchase_id   text PRIMARY KEY,
    front_end_url text NOT NULL,
    admin_url     text NOT NULL DEFAULT '',
    user_name     text NOT NULL DEFAULT '',
    password      text NOT NULL DEFAULT '',
    memo          text NOT NULL DEFAULT '',
    received_at   timestamptz NOT NULL DEFAULT now()
);

-- Each purchase's timeline.
CREATE TABLE IF NOT EXISTS emulator.events (
    id          bigserial PRIMARY KEY,
    purchase_id text NOT NULL,
    event_key   text NOT NULL,
    at          timestamptz NOT NULL,
    emulated_at timestamptz NOT NULL,
    kind        text NOT NULL,
    message     text NOT NULL,
    UNIQUE (purchase_id, event_key)
);
CREATE INDEX IF NOT EXISTS events_purchase ON emulator.events (purchase_id, at, id);

-- The production-interface calls that failed (the console's 生产接口消息).
CREATE TABLE IF NOT EXISTS emulator.messages (
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
CREATE INDEX IF NOT EXISTS messages_status ON emulator.messages (status, last_failed_at);

-- The usage merchants pushed to the open API.
CREATE TABLE IF NOT EXISTS emulator.usage (
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
