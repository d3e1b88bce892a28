package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/store"
)

// --- operator actions ---

func TestOperatorActionsAuditTrail(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	allocate(t, db, "inst-op")
	allocate(t, db, "inst-other")
	t0 := time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)
	actions := []struct {
		action store.OperatorAction
		params any
	}{
		// Recorded out of time order: the trail is ordered by requested_at.
		{store.OperatorAction{ID: "op-a", InstanceID: "inst-op", Action: "extend-grace", Reason: "buyer asked",
			Actor: "alice", RequestedAt: t0.Add(time.Minute)},
			map[string]any{"reason": "buyer asked", "duration": "72h"}},
		{store.OperatorAction{ID: "op-z", InstanceID: "inst-op", Action: "retry", Reason: "application fixed",
			Actor: "admin", RequestedAt: t0},
			struct {
				Reason string `json:"reason"`
			}{"application fixed"}},
		{store.OperatorAction{ID: "op-m", InstanceID: "inst-op", Action: "set-policy", Reason: "持有",
			Actor: "bob", RequestedAt: t0.Add(2 * time.Minute)},
			map[string]any{"reason": "持有", "releasePolicy": "hold"}},
		{store.OperatorAction{ID: "op-x", InstanceID: "inst-other", Action: "skip", Reason: "other",
			Actor: "admin", RequestedAt: t0}, map[string]any{"reason": "other"}},
	}
	for _, a := range actions {
		require.NoError(t, db.Audit.RecordOperatorAction(ctx, a.action, a.params))
	}
	require.NoError(t, db.Audit.SetOperatorOutcome(ctx, "op-a", "delivered"))
	require.NoError(t, db.Audit.SetOperatorOutcome(ctx, "op-m", "not delivered: Temporal unavailable"))

	got, err := db.Audit.OperatorActions(ctx, "inst-op")

	require.NoError(t, err)
	require.Len(t, got, 3)
	var ids, outcomes []string
	for _, a := range got {
		ids, outcomes = append(ids, a.ID), append(outcomes, a.Outcome)
		require.Equal(t, "inst-op", a.InstanceID)
	}
	require.Equal(t, []string{"op-z", "op-a", "op-m"}, ids, "oldest first, whatever the IDs")
	require.Equal(t, []string{"pending", "delivered", "not delivered: Temporal unavailable"}, outcomes,
		"an action is pending until its outcome is recorded")
	require.Equal(t, "retry", got[0].Action)
	require.Equal(t, "application fixed", got[0].Reason)
	require.Equal(t, "admin", got[0].Actor)
	require.True(t, t0.Equal(got[0].RequestedAt), "requested_at %s", got[0].RequestedAt)
	require.Equal(t, "alice", got[1].Actor)
	require.Equal(t, "extend-grace", got[1].Action)
	require.Equal(t, "持有", got[2].Reason)

	require.JSONEq(t, `{"reason":"application fixed"}`, string(got[0].Params))
	require.JSONEq(t, `{"reason":"buyer asked","duration":"72h"}`, string(got[1].Params))
	require.JSONEq(t, `{"reason":"持有","releasePolicy":"hold"}`, string(got[2].Params))

	other, err := db.Audit.OperatorActions(ctx, "inst-other")
	require.NoError(t, err)
	require.Len(t, other, 1)
	require.Equal(t, "op-x", other[0].ID)

	none, err := db.Audit.OperatorActions(ctx, "inst-nobody")
	require.NoError(t, err)
	require.NotNil(t, none, "an empty trail is an empty list, not null")
	require.Empty(t, none)
}

func TestOperatorActionsSameTimeOrderedByID(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	allocate(t, db, "inst-same")
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"op-c", "op-a", "op-b"} {
		require.NoError(t, db.Audit.RecordOperatorAction(ctx, store.OperatorAction{ID: id, InstanceID: "inst-same",
			Action: "retry", Reason: "r", Actor: "admin", RequestedAt: at}, map[string]string{"reason": "r"}))
	}

	got, err := db.Audit.OperatorActions(ctx, "inst-same")

	require.NoError(t, err)
	var ids []string
	for _, a := range got {
		ids = append(ids, a.ID)
	}
	require.Equal(t, []string{"op-a", "op-b", "op-c"}, ids)
}

func TestRecordOperatorActionRefusals(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	allocate(t, db, "inst-ref")
	valid := store.OperatorAction{ID: "op-1", InstanceID: "inst-ref", Action: "retry", Reason: "r", Actor: "admin",
		RequestedAt: time.Now()}
	require.NoError(t, db.Audit.RecordOperatorAction(ctx, valid, map[string]string{"reason": "r"}))

	tests := []struct {
		name     string
		action   store.OperatorAction
		params   any
		pqCode   pqerror.Code // the constraint that refuses it; empty: refused before the database
		contains string
	}{
		{"unknown instance", store.OperatorAction{ID: "op-2", InstanceID: "inst-nobody", Action: "retry", Reason: "r",
			Actor: "admin", RequestedAt: time.Now()}, map[string]string{}, "23503", "inst-nobody"},
		{"same id twice", valid, map[string]string{}, "23505", "inst-ref"},
		{"params not encodable", store.OperatorAction{ID: "op-3", InstanceID: "inst-ref", Action: "retry", Reason: "r",
			Actor: "admin", RequestedAt: time.Now()}, map[string]any{"f": func() {}}, "", "op-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := db.Audit.RecordOperatorAction(ctx, tc.action, tc.params)

			require.Error(t, err)
			require.ErrorContains(t, err, tc.contains)
			if tc.pqCode != "" {
				var pqErr *pq.Error
				require.True(t, errors.As(err, &pqErr), "%v", err)
				require.Equal(t, tc.pqCode, pqErr.Code, "%v", err)
			}
		})
	}

	got, err := db.Audit.OperatorActions(ctx, "inst-ref")
	require.NoError(t, err)
	require.Len(t, got, 1, "nothing but the valid action was recorded")
	got, err = db.Audit.OperatorActions(ctx, "inst-nobody")
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestCountByState(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)

	counts, err := db.Instances.CountByState(ctx)
	require.NoError(t, err)
	require.Empty(t, counts, "no instances yet")

	for i, inst := range []struct{ id, state string }{
		{"i-1", "active"}, {"i-2", "active"}, {"i-3", "parked"}, {"i-4", "release_overdue"},
		{"i-5", "active"}, {"i-6", "frozen"}, {"i-7", "frozen"},
	} {
		written, err := db.Instances.SaveInstance(ctx, sampleInstance(inst.id, "O-"+inst.id, inst.state, int64(i+1)), nil)
		require.NoError(t, err)
		require.True(t, written)
	}
	// A later revision moves an instance from one state to another.
	written, err := db.Instances.SaveInstance(ctx, sampleInstance("i-6", "O-i-6", "parked", 100), nil)
	require.NoError(t, err)
	require.True(t, written)

	counts, err = db.Instances.CountByState(ctx)

	require.NoError(t, err)
	require.Equal(t, map[string]int64{"active": 3, "parked": 2, "release_overdue": 1, "frozen": 1}, counts)
}

func TestOperatorQueriesOnAClosedDatabase(t *testing.T) {
	db := newDB(t)
	require.NoError(t, db.Close())
	ctx := t.Context()

	require.Error(t, db.Audit.RecordOperatorAction(ctx, store.OperatorAction{ID: "op", InstanceID: "i", Action: "retry",
		Reason: "r", Actor: "admin", RequestedAt: time.Now()}, nil))
	require.Error(t, db.Audit.SetOperatorOutcome(ctx, "op", "delivered"))
	_, err := db.Audit.OperatorActions(ctx, "i")
	require.Error(t, err)
	_, err = db.Instances.CountByState(ctx)
	require.Error(t, err)
}
