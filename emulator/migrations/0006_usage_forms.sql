-- How each usage record's push was written: the form of the body its
-- signature covered (raw, top-level-sorted or sorted) and the JSON type of
-- its usage_value (number or string), for the merchant to see which
-- readings of the usage push's signature rules its client follows
-- (contract §11). Records received before are left blank.
ALTER TABLE emulator.usage ADD COLUMN IF NOT EXISTS signed_form text NOT NULL DEFAULT '';
ALTER TABLE emulator.usage ADD COLUMN IF NOT EXISTS value_form text NOT NULL DEFAULT '';
