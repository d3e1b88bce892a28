package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// StateCounts reads fulfillment_instances{state} from the server's
// /metrics: how many instances the read model holds in each state.
func StateCounts(ctx context.Context, hc *http.Client, t Target) (map[string]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the server's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read the server's metrics: HTTP %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse the server's metrics: %w", err)
	}
	family, ok := families["fulfillment_instances"]
	if !ok {
		return nil, fmt.Errorf("the server's metrics have no fulfillment_instances")
	}
	counts := map[string]int64{}
	for _, m := range family.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" {
				counts[l.GetValue()] = int64(m.GetGauge().GetValue())
			}
		}
	}
	return counts, nil
}

// waitForState polls the metrics until at least want instances are in
// state, or patience has passed.
func waitForState(ctx context.Context, hc *http.Client, t Target, state string, want int64, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for {
		counts, err := StateCounts(ctx, hc, t)
		if err == nil && counts[state] >= want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("%d instances %s after %s, want %d", counts[state], state, patience, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Instance is the part of the admin API's instance the checks read.
type Instance struct {
	InstanceID string `json:"instanceId"`
	State      string `json:"state"`
	Events     []struct {
		Key string `json:"key"`
	} `json:"events"`
}

// GetInstance reads one instance through the admin API.
func GetInstance(ctx context.Context, hc *http.Client, t Target, id string) (Instance, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL+"/v1/instances/"+id, nil)
	if err != nil {
		return Instance{}, err
	}
	req.Header.Set("Authorization", "Bearer "+t.AdminToken)
	resp, err := hc.Do(req)
	if err != nil {
		return Instance{}, fmt.Errorf("read instance %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Instance{}, fmt.Errorf("read instance %s: HTTP %d", id, resp.StatusCode)
	}
	var inst Instance
	if err := json.NewDecoder(resp.Body).Decode(&inst); err != nil {
		return Instance{}, fmt.Errorf("read instance %s: %w", id, err)
	}
	return inst, nil
}
