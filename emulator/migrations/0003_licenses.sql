-- 在线开通License: the licence requests a purchase's devices made (what the
-- console shows; the workflow keeps the state), and the licences the
-- merchant uploaded through the open API, as received.
ALTER TABLE emulator.purchases ADD COLUMN IF NOT EXISTS licenses jsonb;

CREATE TABLE IF NOT EXISTS emulator.licenses (
    id          bigserial PRIMARY KEY,
    event_id    text NOT NULL,
    kind        text NOT NULL,
    file_name   text NOT NULL,
    sha256      text NOT NULL,
    content     bytea NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS licenses_event ON emulator.licenses (event_id);
