-- When the marketplace sent a callback: the signed timestamp of the request
-- that first recorded it (a redelivery keeps the first). Callbacks spooled on
-- different replicas while the database was away are recorded in whatever
-- order the replicas drain their spools; expiry changes are ordered by this
-- time instead, which is the marketplace's. Empty for callbacks recorded
-- before it was kept.
ALTER TABLE callbacks ADD COLUMN sent_at timestamptz;
