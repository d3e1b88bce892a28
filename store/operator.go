package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// OperatorAction is one operator action requested through the admin API.
type OperatorAction struct {
	ID          string    `db:"id" json:"id"`
	InstanceID  string    `db:"instance_id" json:"instanceId"`
	Action      string    `db:"action" json:"action"`
	Reason      string    `db:"reason" json:"reason"`
	Params      []byte    `db:"params" json:"-"`
	Actor       string    `db:"actor" json:"actor"`
	RequestedAt time.Time `db:"requested_at" json:"requestedAt"`
	Outcome     string    `db:"outcome" json:"outcome"`
}

// RecordOperatorAction audits an action before it is sent to the workflow;
// SetOperatorOutcome records whether it got there.
func (s *Audit) RecordOperatorAction(ctx context.Context, a OperatorAction, params any) error {
	raw, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("encode parameters of action %s: %w", a.ID, err)
	}
	_, err = s.x.ExecContext(ctx, `
		INSERT INTO operator_actions (id, instance_id, action, reason, params, actor, requested_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		a.ID, a.InstanceID, a.Action, a.Reason, raw, a.Actor, a.RequestedAt)
	if err != nil {
		return fmt.Errorf("audit action %s on %s: %w", a.Action, a.InstanceID, err)
	}
	return nil
}

// SetOperatorOutcome records what became of an audited action.
func (s *Audit) SetOperatorOutcome(ctx context.Context, id, outcome string) error {
	if _, err := s.x.ExecContext(ctx, `UPDATE operator_actions SET outcome = $2 WHERE id = $1`, id, outcome); err != nil {
		return fmt.Errorf("record outcome of action %s: %w", id, err)
	}
	return nil
}

// OperatorActions lists an instance's audited actions, oldest first.
func (s *Audit) OperatorActions(ctx context.Context, instanceID string) ([]OperatorAction, error) {
	out := []OperatorAction{}
	if err := s.x.SelectContext(ctx, &out, `SELECT id, instance_id, action, reason, params, actor, requested_at, outcome
		FROM operator_actions WHERE instance_id = $1 ORDER BY requested_at, id`, instanceID); err != nil {
		return nil, fmt.Errorf("list actions on %s: %w", instanceID, err)
	}
	return out, nil
}
