-- The demo application's directory: what the marketplace's 联营 kit
-- synchronised to it (the provisioner's Sync* operations). It keeps what a
-- real application would need to let the enterprise's users log in, and
-- shows the authorised users on the tenant's page. Of an app's secret it
-- keeps only the SHA-256.
CREATE TABLE demo.enterprises (
    instance_id  text NOT NULL,
    tenant_id    text NOT NULL,
    tenant_code  text NOT NULL DEFAULT '',
    name         text NOT NULL DEFAULT '',
    domain_name  text NOT NULL DEFAULT '',
    deleted      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (instance_id, tenant_id)
);

CREATE TABLE demo.app_credentials (
    instance_id    text NOT NULL,
    tenant_id      text NOT NULL,
    app_id         text NOT NULL,
    client_id      text NOT NULL DEFAULT '',
    secret_sha256  text NOT NULL DEFAULT '',
    deleted        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (instance_id, tenant_id, app_id)
);

CREATE TABLE demo.users (
    instance_id  text NOT NULL,
    tenant_id    text NOT NULL,
    app_id       text NOT NULL,
    user_name    text NOT NULL,
    name         text NOT NULL DEFAULT '',
    org_code     text NOT NULL DEFAULT '',
    role         text NOT NULL DEFAULT '',
    enabled      boolean NOT NULL DEFAULT true,
    -- upsert, revoke or delete: the last action applied to the user.
    state        text NOT NULL,
    PRIMARY KEY (instance_id, tenant_id, app_id, user_name)
);

CREATE TABLE demo.departments (
    instance_id  text NOT NULL,
    tenant_id    text NOT NULL,
    org_code     text NOT NULL,
    org_name     text NOT NULL DEFAULT '',
    parent_code  text NOT NULL DEFAULT '',
    deleted      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (instance_id, tenant_id, org_code)
);
