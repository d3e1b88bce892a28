-- The fields an instance's workflow is given are kept in columns of their
-- own, so that delivering a callback never parses its body again (the body
-- stays as received, for the audit trail).
ALTER TABLE callbacks
    ADD COLUMN status      text NOT NULL DEFAULT '',
    ADD COLUMN scene       text NOT NULL DEFAULT '',
    ADD COLUMN expire_time text NOT NULL DEFAULT '',
    ADD COLUMN product_id  text NOT NULL DEFAULT '';

-- Callbacks recorded before this migration and not delivered yet get their
-- fields from their body. A body the database cannot read as JSON (it was
-- read by the server's own parser when it arrived) keeps empty fields:
-- its delivery then parks it for an operator instead of guessing.
DO $$
DECLARE
    r   record;
    doc jsonb;
BEGIN
    FOR r IN SELECT seq, activity, body FROM callbacks
             WHERE delivered_at IS NULL AND activity IN ('refreshInstance', 'updateInstanceStatus')
    LOOP
        BEGIN
            doc := r.body::jsonb;
        EXCEPTION WHEN others THEN
            CONTINUE;
        END;
        IF r.activity = 'updateInstanceStatus' THEN
            UPDATE callbacks SET status = COALESCE(doc ->> 'status', '') WHERE seq = r.seq;
        ELSE
            UPDATE callbacks SET scene = COALESCE(doc ->> 'scene', ''),
                                 expire_time = COALESCE(doc ->> 'expireTime', ''),
                                 product_id = COALESCE(doc ->> 'productId', '')
            WHERE seq = r.seq;
        END IF;
    END LOOP;
END
$$;
