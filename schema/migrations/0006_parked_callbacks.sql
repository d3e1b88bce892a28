-- A callback that can never be delivered to its workflow (Temporal refuses
-- it as invalid, or it fails again and again while others get through) is
-- parked for an operator instead of retried forever: the relay skips it, it
-- no longer holds back its instance's later callbacks, and the admin API
-- lists it for a retry or a discard.
ALTER TABLE callbacks ADD COLUMN parked_at timestamptz;
CREATE INDEX callbacks_parked ON callbacks (seq) WHERE parked_at IS NOT NULL AND delivered_at IS NULL;
