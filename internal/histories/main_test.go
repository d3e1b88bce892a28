package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
)

// maxStandardLifeEvents is the most history events the standard life
// (new, renew, freeze, unfreeze, release; the queries never reach the
// workflow) may cost. It is what the workflow costs today: a change that
// makes a life dearer in Temporal work fails here, and one that makes it
// cheaper lowers it.
const maxStandardLifeEvents = 48

// TestStandardLifeHistory plays the standard life against a Temporal dev
// server, each callback applied before the next is sent, and counts the
// events of its history.
func TestStandardLifeHistory(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), dir, testenv.TemporalCLI(t), "standard"))
	raw, err := os.ReadFile(filepath.Join(dir, "standard-generation3.json"))
	require.NoError(t, err)
	var history struct {
		Events []struct {
			EventType string `json:"eventType"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(raw, &history))
	counts := map[string]int{}
	for _, e := range history.Events {
		counts[e.EventType]++
	}
	t.Logf("standard life: %d history events: %v", len(history.Events), counts)
	require.LessOrEqual(t, len(history.Events), maxStandardLifeEvents, "events by type: %v", counts)
}
