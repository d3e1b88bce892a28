-- The demo application's license codes: what it was told of each code the
-- buyer's software activated (the provisioner's license-code operation).
-- A released code's entitlement is deleted; the row stays as its record.
CREATE TABLE demo.license_codes (
    license        text PRIMARY KEY,
    status         text NOT NULL,
    last_event     text NOT NULL,
    expire_time    timestamptz,
    product_id     text NOT NULL DEFAULT '',
    -- the last operation applied: a retry of it changes nothing
    operation_id   text NOT NULL,
    entitled       boolean NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
