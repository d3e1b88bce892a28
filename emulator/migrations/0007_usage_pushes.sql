-- The usage pushes the open API accepted, one row per call: a merchant
-- that batches its pushes sends the records of many instances in one call
-- (up to 1,000 records, contract §6.2), and the seller console must show
-- which records travelled together. records counts the records in the
-- call, new_records those stored as new (a resent batch is still listed,
-- with new_records 0: the marketplace answered it MKT.0000 too), instances
-- the distinct instance_ids it named. signed_form is the form of the body
-- its signature covered; value_form the JSON type its usage_values came as
-- (number, string, or mixed when the call had both). Refused calls are
-- not listed: the marketplace keeps no record of them.
CREATE TABLE IF NOT EXISTS emulator.usage_pushes (
    push_id     text PRIMARY KEY,
    received_at timestamptz NOT NULL,
    records     int NOT NULL,
    new_records int NOT NULL,
    instances   int NOT NULL,
    signed_form text NOT NULL DEFAULT '',
    value_form  text NOT NULL DEFAULT ''
);
-- The console lists the newest pushes first.
CREATE INDEX IF NOT EXISTS usage_pushes_received ON emulator.usage_pushes (received_at DESC, push_id DESC);

-- The push that first delivered each record: a duplicate in a later push
-- changes nothing, so the record keeps the first one. Records received
-- before pushes were noted are left blank, which is why this is no
-- foreign key.
ALTER TABLE emulator.usage ADD COLUMN IF NOT EXISTS push_id text NOT NULL DEFAULT '';
-- A push's records, for the console's push view.
CREATE INDEX IF NOT EXISTS usage_push ON emulator.usage (push_id);
