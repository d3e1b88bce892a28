-- License codes (License授权码 2.0) the emulated marketplace sold: the buyer
-- receives the code, the merchant's software activates it through the open
-- API, and its validity counts from the activation.
CREATE TABLE IF NOT EXISTS emulator.license_codes (
    license      text PRIMARY KEY,
    purchase_id  text NOT NULL UNIQUE,
    product_id   text NOT NULL,
    order_id     text NOT NULL,
    amount       bigint NOT NULL,
    -- the real duration of the code's validity, on the emulated clock
    valid_for_ms bigint NOT NULL,
    activated_at timestamptz,
    released     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
