-- The KooGallery emulator's and the demo provisioner's tables leave the
-- server's schema: each now keeps its own Postgres schema (emulator, demo),
-- made by its own migrations when it starts, whose first migration adopts
-- the old public table with its rows. So here an empty one is dropped, and
-- one that holds rows is left for its owner to adopt: no rehearsal and no
-- demo tenant a developer has is lost. On a new database this leaves none
-- of them: the server's migrations create only the server's tables.
DO $$
DECLARE
    leaving  text;
    has_rows boolean;
BEGIN
    FOREACH leaving IN ARRAY ARRAY['emulator_orders', 'emulator_purchases', 'emulator_app_info',
                                   'emulator_events', 'emulator_messages', 'emulator_usage',
                                   'demo_tenants', 'demo_settings'] LOOP
        CONTINUE WHEN to_regclass('public.' || leaving) IS NULL;
        -- Nothing may write a row between the look and the drop.
        EXECUTE format('LOCK TABLE public.%I IN ACCESS EXCLUSIVE MODE', leaving);
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM public.%I)', leaving) INTO has_rows;
        IF has_rows THEN
            RAISE NOTICE 'public.% holds rows: left for the emulator or the demo provisioner to adopt when it starts', leaving;
        ELSE
            EXECUTE format('DROP TABLE public.%I', leaving);
        END IF;
    END LOOP;
END $$;
