-- Lifecycle: what the workflow shows beyond the state (policy, deadlines,
-- parked step, supervision), and the audit trail of operators' actions.

ALTER TABLE instances
    ADD COLUMN details            jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN next_deadline_kind text NOT NULL DEFAULT '',
    ADD COLUMN next_deadline_at   timestamptz;
CREATE INDEX instances_next_deadline ON instances (next_deadline_at) WHERE next_deadline_at IS NOT NULL;

-- Every operator action requested through the admin API, with who asked,
-- why, and whether it reached the workflow. What the workflow then did is
-- in instance_events under the key operator/<id>.
CREATE TABLE operator_actions (
    id           text PRIMARY KEY,
    instance_id  text NOT NULL REFERENCES instance_keys (instance_id),
    action       text NOT NULL,
    reason       text NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}',
    actor        text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL DEFAULT 'pending'
);
CREATE INDEX operator_actions_instance ON operator_actions (instance_id, requested_at);
