-- A suspended Tenant or Agent keeps its numbers: the route stays (nobody
-- else can claim the number) and calls to it hear the suspended message.
ALTER TABLE phone_routes ADD COLUMN suspended BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE phone_route_history DROP CONSTRAINT phone_route_history_change_check;
ALTER TABLE phone_route_history ADD CONSTRAINT phone_route_history_change_check
    CHECK (change IN ('routed', 'moved', 'removed', 'suspended', 'resumed'));

CREATE OR REPLACE FUNCTION record_phone_route_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO phone_route_history (number, tenant, namespace, agent, active_version, change)
        VALUES (OLD.number, OLD.tenant, OLD.namespace, OLD.agent, NULL, 'removed');
        RETURN OLD;
    END IF;
    INSERT INTO phone_route_history (number, tenant, namespace, agent, active_version, change)
    VALUES (NEW.number, NEW.tenant, NEW.namespace, NEW.agent, NEW.active_version,
            CASE
                WHEN TG_OP = 'INSERT' THEN 'routed'
                WHEN NEW.suspended AND NOT OLD.suspended THEN 'suspended'
                WHEN OLD.suspended AND NOT NEW.suspended THEN 'resumed'
                ELSE 'moved'
            END);
    RETURN NEW;
END;
$$;
