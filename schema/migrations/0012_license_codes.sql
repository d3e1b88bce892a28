-- License codes (License授权码 2.0, contract §13.6): the codes the merchant's
-- software activated through this server, with what the marketplace said of
-- them. One row per code; the first activation creates it.
CREATE TABLE IF NOT EXISTS license_codes (
    license            text PRIMARY KEY,
    -- active, frozen, expired or released
    status             text NOT NULL,
    -- ALIVE, EXPIRED or RELEASED, as the open API last reported it
    marketplace_status text NOT NULL,
    product_id         text NOT NULL DEFAULT '',
    order_id           text NOT NULL DEFAULT '',
    amount             bigint NOT NULL DEFAULT 0,
    effective_time     timestamptz,
    expire_time        timestamptz,
    activated_at       timestamptz NOT NULL,
    checked_at         timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
