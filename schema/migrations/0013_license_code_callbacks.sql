-- License-code callbacks (License授权码 2.0, contract §13.5): the inbox
-- records them like the instances' callbacks, under the code they concern
-- instead of an instance, and the code's workflow applies them in arrival
-- order. The code's row keeps what its lifecycle needs: the episode of its
-- FREEZE/UNFREEZE calls (as instance_keys does for instances), whether it
-- was a debugger's, and what the merchant's application was last told.
ALTER TABLE callbacks ADD COLUMN license text;
CREATE INDEX callbacks_license ON callbacks (license, seq) WHERE license IS NOT NULL;

ALTER TABLE license_codes
    ADD COLUMN last_status    text,
    ADD COLUMN status_episode integer NOT NULL DEFAULT 0,
    -- the revision of the state the code's workflow last saved; a save
    -- with an older revision changes nothing
    ADD COLUMN revision       bigint NOT NULL DEFAULT 0,
    ADD COLUMN frozen_at      timestamptz,
    ADD COLUMN released_at    timestamptz,
    -- when the data kept for a frozen code may be deleted (contract §13.5:
    -- 15 days of retention), as the workflow computes it
    ADD COLUMN retain_until   timestamptz,
    -- the last thing the merchant's application failed to be told, if any
    ADD COLUMN last_error     text NOT NULL DEFAULT '';
