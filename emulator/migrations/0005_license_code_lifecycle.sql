-- A license code's life after it is issued: its validity moves with
-- renewals and refunded renewal periods (valid_for_ms), it is released at
-- the end of its retention or by unsubscription (released), and the
-- console lists the callbacks the marketplace sent about it (calls). The
-- purchase's workflow writes them; revision keeps an older write from
-- overwriting a newer one.
ALTER TABLE emulator.license_codes
    ADD COLUMN IF NOT EXISTS calls jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN IF NOT EXISTS revision bigint NOT NULL DEFAULT 0;
