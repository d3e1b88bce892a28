-- A switch of the built-in demo provisioner's application: while on, it
-- refuses to provision, freeze, unfreeze or release, as a merchant's
-- application down for maintenance would. It lets anyone see a step park
-- and an operator's retry finish it.
CREATE TABLE demo_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
