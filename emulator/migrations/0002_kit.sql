-- The 联营 kit: the enterprise an emulated purchase's app is bound to, its
-- users and departments, as the marketplace knows them (what the console
-- shows; the workflow keeps the state).
ALTER TABLE emulator.purchases ADD COLUMN IF NOT EXISTS kit jsonb;
