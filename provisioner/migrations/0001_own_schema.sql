-- The demo provisioner's tables, in the Postgres schema demo, so that the
-- server's migrations never create them. They used to be public.demo_tenants
-- and public.demo_settings (the server's migrations 0001 and 0004). A
-- database that still has one keeps its rows: the table moves here under its
-- new name, its constraints and indexes renamed alike, and the CREATE ... IF
-- NOT EXISTS below leave it as it is. The others are created.

-- The server's migration rehearsal_tables_leave drops the public demo tables
-- that are empty.
-- Waiting for the server's migration lock (schema.lockID) keeps it and this
-- adoption from reaching for the same table at once when several processes
-- start together.
SELECT pg_advisory_xact_lock(7140625001);

DO $$
DECLARE
    old_name text;
    moved    record;
BEGIN
    FOREACH old_name IN ARRAY ARRAY['demo_tenants', 'demo_settings'] LOOP
        CONTINUE WHEN to_regclass('public.' || old_name) IS NULL;
        EXECUTE format('ALTER TABLE public.%I SET SCHEMA demo', old_name);
        EXECUTE format('ALTER TABLE demo.%I RENAME TO %I', old_name, regexp_replace(old_name, '^demo_', ''));
        RAISE NOTICE 'public.% adopted as demo.%', old_name, regexp_replace(old_name, '^demo_', '');
    END LOOP;
    -- Renaming a constraint renames its index too.
    FOR moved IN
        SELECT t.relname AS table_name, c.conname AS name
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        WHERE c.connamespace = 'demo'::regnamespace AND c.conname LIKE 'demo\_%'
    LOOP
        EXECUTE format('ALTER TABLE demo.%I RENAME CONSTRAINT %I TO %I',
            moved.table_name, moved.name, regexp_replace(moved.name, '^demo_', ''));
    END LOOP;
    FOR moved IN
        SELECT relname AS name, CASE relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'INDEX' END AS kind
        FROM pg_class
        WHERE relnamespace = 'demo'::regnamespace AND relkind IN ('i', 'S') AND relname LIKE 'demo\_%'
    LOOP
        EXECUTE format('ALTER %s demo.%I RENAME TO %I',
            moved.kind, moved.name, regexp_replace(moved.name, '^demo_', ''));
    END LOOP;
END $$;

-- The tenants of the built-in demo provisioner: a stand-in for the
-- merchant's own application. Passwords are stored as salted SHA-256 of a
-- random 96-bit secret, never in clear.
CREATE TABLE IF NOT EXISTS demo.tenants (
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

-- The demo application's settings. "maintenance" is its switch: while on,
-- it refuses to provision, freeze, unfreeze or release, as a merchant's
-- application down for maintenance would, so that anyone can see a step
-- park and an operator's retry finish it.
CREATE TABLE IF NOT EXISTS demo.settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
