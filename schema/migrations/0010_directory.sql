-- The 联营 kit's synchronisations (contract §12): the enterprises bound to
-- an instance, the app credentials the marketplace issued for them, the
-- users authorised to use the app and the enterprises' departments.

-- A kit sync is a callback like the others. What it carries does not fit
-- columns of its own: payload is the sync as the server read it (its own
-- JSON, not the body), and an applicationSync's clientSecret, decrypted at
-- intake, is kept sealed apart from it (never in the payload or the body's
-- plain text, which holds only the marketplace's ciphertext).
ALTER TABLE callbacks
    ADD COLUMN payload       jsonb,
    ADD COLUMN sealed_secret text NOT NULL DEFAULT '';

-- The directory of each instance, as the syncs applied to the merchant's
-- application left it. Rows are never deleted by a sync: a delete marks them
-- (state), so that the admin API shows what happened; a released instance
-- drops its directory with its data. applied_seq is the callback that last
-- changed the row.
CREATE TABLE directory_tenants (
    instance_id  text NOT NULL REFERENCES instance_keys (instance_id),
    tenant_id    text NOT NULL,
    tenant_code  text NOT NULL DEFAULT '',
    name         text NOT NULL DEFAULT '',
    domain_name  text NOT NULL DEFAULT '',
    state        text NOT NULL CHECK (state IN ('active', 'deleted')),
    applied_seq  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, tenant_id)
);

CREATE TABLE directory_apps (
    instance_id          text NOT NULL REFERENCES instance_keys (instance_id),
    tenant_id            text NOT NULL,
    app_id               text NOT NULL,
    client_id            text NOT NULL DEFAULT '',
    -- The secret, sealed like the instances' credentials; its SHA-256 is
    -- what the admin API shows.
    client_secret_sealed text NOT NULL DEFAULT '',
    client_secret_sha256 text NOT NULL DEFAULT '',
    -- Which configured private key (1 = the first) and OAEP variant
    -- decrypted the secret the marketplace sent.
    decrypted_with       text NOT NULL DEFAULT '',
    state                text NOT NULL CHECK (state IN ('active', 'deleted')),
    applied_seq          bigint NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, tenant_id, app_id)
);

CREATE TABLE directory_users (
    instance_id  text NOT NULL REFERENCES instance_keys (instance_id),
    tenant_id    text NOT NULL,
    app_id       text NOT NULL,
    user_name    text NOT NULL,
    name         text NOT NULL DEFAULT '',
    org_code     text NOT NULL DEFAULT '',
    role         text NOT NULL DEFAULT '',
    enable       boolean NOT NULL DEFAULT true,
    -- The optional fields (position, employeeCode, employeeType, mobile,
    -- email, workPlace, entryDate).
    details      jsonb NOT NULL DEFAULT '{}',
    state        text NOT NULL CHECK (state IN ('authorized', 'revoked', 'deleted')),
    -- currentSyncTime of the sync that set the row (yyyyMMddHHmmssSSS,
    -- East-8): an older sync for the same user is ignored.
    sync_time    text NOT NULL DEFAULT '',
    applied_seq  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, tenant_id, app_id, user_name)
);

CREATE TABLE directory_orgs (
    instance_id  text NOT NULL REFERENCES instance_keys (instance_id),
    tenant_id    text NOT NULL,
    org_code     text NOT NULL,
    org_name     text NOT NULL DEFAULT '',
    parent_code  text NOT NULL DEFAULT '',
    state        text NOT NULL CHECK (state IN ('active', 'deleted')),
    applied_seq  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, tenant_id, org_code)
);
