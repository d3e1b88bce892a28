-- 在线开通License (contract §13.2–§13.4): the licences issued for the
-- buyers' devices of an instance.

-- One row per licence request: (instance, eventId, device fingerprint). The
-- fingerprint may be 1024 characters, so the key holds its SHA-256. The
-- first licence stored for a request is the one kept: a retry of the
-- merchant's generator that answered otherwise never replaces it, so the
-- marketplace is never sent a second, different licence.
CREATE TABLE licenses (
    instance_id        text NOT NULL REFERENCES instance_keys (instance_id),
    event_id           text NOT NULL,
    fingerprint_sha256 text NOT NULL,
    device_fingerprint text NOT NULL DEFAULT '',
    -- The callback that asked for it first.
    seq                bigint NOT NULL,
    effective_at       timestamptz NOT NULL,
    expire_at          timestamptz,
    kind               text NOT NULL CHECK (kind IN ('CHARACTERS', 'FILE')),
    file_name          text NOT NULL DEFAULT '',
    content            bytea NOT NULL,
    sha256             text NOT NULL,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    -- The upload to the marketplace: attempts, the last failure, and when it
    -- succeeded with what answer.
    upload_attempts    integer NOT NULL DEFAULT 0,
    last_upload_error  text NOT NULL DEFAULT '',
    uploaded_at        timestamptz,
    upload_result      text NOT NULL DEFAULT '',
    PRIMARY KEY (instance_id, event_id, fingerprint_sha256)
);
