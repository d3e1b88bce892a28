package activities_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/workflows"
)

func TestPolicyCopiesTheConfiguration(t *testing.T) {
	a := &activities.Activities{Lifecycle: activities.LifecycleConfig{Policy: activities.Policy{
		FreezeGrace:          36 * time.Hour,
		Retention:            15 * 24 * time.Hour,
		ReleasePolicy:        workflows.ReleasePolicyRelease,
		SupervisionSyncDelay: 3 * time.Hour,
		DebugTTL:             2 * time.Hour,
		MeteringPeriod:       time.Hour,
		MeteringPushDelay:    5 * time.Minute,
	}}}

	got, err := a.Policy(t.Context(), activities.PolicyInput{Order: workflows.Order{ProductID: "p", SkuCode: "s"}})

	require.NoError(t, err)
	require.Equal(t, workflows.Policy{
		FreezeGrace:          36 * time.Hour,
		Retention:            15 * 24 * time.Hour,
		ReleasePolicy:        workflows.ReleasePolicyRelease,
		SupervisionSyncDelay: 3 * time.Hour,
		Supervised:           false,
		DebugTTL:             2 * time.Hour,
		MeteringPeriod:       time.Hour,
		MeteringPushDelay:    5 * time.Minute,
	}, got)
}

func TestPolicyMeteringPeriod(t *testing.T) {
	order := workflows.Order{ProductID: "prod-1", SkuCode: "sku-1"}
	tests := []struct {
		name   string
		period time.Duration
		daily  []string
		want   time.Duration
	}{
		{"hourly by default", 0, nil, time.Hour},
		{"configured period", 10 * time.Second, nil, 10 * time.Second},
		{"daily by productId", time.Hour, []string{"prod-1"}, 24 * time.Hour},
		{"daily by skuCode", time.Hour, []string{"other", "sku-1"}, 24 * time.Hour},
		{"daily for all", time.Hour, []string{"*"}, 24 * time.Hour},
		{"other products daily", time.Hour, []string{"prod-2"}, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &activities.Activities{Lifecycle: activities.LifecycleConfig{
				Policy: activities.Policy{MeteringPeriod: tc.period}, MeteringDailyProducts: tc.daily,
			}}

			got, err := a.Policy(t.Context(), activities.PolicyInput{Order: order})

			require.NoError(t, err)
			require.Equal(t, tc.want, got.MeteringPeriod)
		})
	}
}

func TestPolicySupervised(t *testing.T) {
	order := workflows.Order{ProductID: "prod-1", SkuCode: "sku-1"}
	tests := []struct {
		name       string
		supervised []string
		order      workflows.Order
		want       bool
	}{
		{"nothing configured", nil, order, false},
		{"every product", []string{"*"}, order, true},
		{"every product, order without product", []string{"*"}, workflows.Order{}, true},
		{"its productId", []string{"other", "prod-1"}, order, true},
		{"its skuCode", []string{"sku-1"}, order, true},
		{"other products", []string{"prod-2", "sku-2"}, order, false},
		{"case matters", []string{"PROD-1"}, order, false},
		{"no prefix match", []string{"prod"}, order, false},
		// An order without a productId must not match an empty entry.
		{"empty entry, order without ids", []string{""}, workflows.Order{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &activities.Activities{Lifecycle: activities.LifecycleConfig{
				Policy: activities.Policy{ReleasePolicy: workflows.ReleasePolicyHold}, SupervisedProducts: tc.supervised,
			}}

			got, err := a.Policy(t.Context(), activities.PolicyInput{Order: tc.order})

			require.NoError(t, err)
			require.Equal(t, tc.want, got.Supervised)
			require.Equal(t, workflows.ReleasePolicyHold, got.ReleasePolicy)
		})
	}
}

// runAlert runs the Alert activity in the SDK's activity test environment
// (it logs through the activity's logger) and checks that the alert was
// logged at error level whatever the webhook did.
func runAlert(t *testing.T, a *activities.Activities, in activities.AlertInput) error {
	t.Helper()
	var logs testenv.SyncBuffer
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.Alert, in)
	var logged bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if rec["msg"] == "Instance needs an operator" {
			logged = true
			require.Equal(t, "ERROR", rec["level"])
			require.Equal(t, in.InstanceID, rec["instanceId"])
			require.Equal(t, in.Kind, rec["alert"])
			require.Equal(t, in.Message, rec["message"])
		}
	}
	require.True(t, logged, "the alert is logged:\n%s", logs.String())
	return err
}

// webhook records the requests it receives and answers with status.
type webhook struct {
	mu       sync.Mutex
	status   int
	requests []webhookRequest
}

type webhookRequest struct {
	Method      string
	ContentType string
	Body        []byte
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	w.requests = append(w.requests, webhookRequest{Method: r.Method, ContentType: r.Header.Get("Content-Type"), Body: body})
	status := w.status
	w.mu.Unlock()
	rw.WriteHeader(status)
}

func (w *webhook) received() []webhookRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhookRequest(nil), w.requests...)
}

func TestAlertWithoutWebhook(t *testing.T) {
	a := &activities.Activities{}
	require.NoError(t, runAlert(t, a, activities.AlertInput{InstanceID: "inst-1", Kind: "parked", Message: "Provision failed"}))
}

func TestAlertPostsToTheWebhook(t *testing.T) {
	hook := &webhook{status: http.StatusNoContent}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	a := &activities.Activities{Alerts: activities.Alerter{WebhookURL: srv.URL + "/alerts"}}
	before := time.Now().UTC()

	err := runAlert(t, a, activities.AlertInput{InstanceID: "inst-1", Kind: "release_overdue", Message: "retention ended"})

	require.NoError(t, err)
	got := hook.received()
	require.Len(t, got, 1)
	require.Equal(t, http.MethodPost, got[0].Method)
	require.Equal(t, "application/json", got[0].ContentType)
	var body struct {
		InstanceID string    `json:"instanceId"`
		Kind       string    `json:"kind"`
		Message    string    `json:"message"`
		At         time.Time `json:"at"`
	}
	dec := json.NewDecoder(bytes.NewReader(got[0].Body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&body), "%s", got[0].Body)
	require.Equal(t, "inst-1", body.InstanceID)
	require.Equal(t, "release_overdue", body.Kind)
	require.Equal(t, "retention ended", body.Message)
	require.False(t, body.At.Before(before.Add(-time.Second)), "at %s", body.At)
	require.False(t, body.At.After(time.Now().Add(time.Second)), "at %s", body.At)
	require.Equal(t, time.UTC, body.At.Location(), "at is sent in UTC: %s", got[0].Body)
}

func TestAlertWebhookFailuresAreRetried(t *testing.T) {
	t.Run("webhook answers 500", func(t *testing.T) {
		hook := &webhook{status: http.StatusInternalServerError}
		srv := httptest.NewServer(hook)
		t.Cleanup(srv.Close)
		a := &activities.Activities{Alerts: activities.Alerter{WebhookURL: srv.URL}}

		err := runAlert(t, a, activities.AlertInput{InstanceID: "inst-1", Kind: "parked", Message: "m"})

		require.Error(t, err)
		require.ErrorContains(t, err, "500")
		require.False(t, nonRetryable(err), "the activity retries")
		require.NotEmpty(t, hook.received())
	})

	t.Run("webhook answers 304", func(t *testing.T) {
		// Only a 2xx means the alert was taken.
		hook := &webhook{status: http.StatusNotModified}
		srv := httptest.NewServer(hook)
		t.Cleanup(srv.Close)
		a := &activities.Activities{Alerts: activities.Alerter{WebhookURL: srv.URL}}

		require.Error(t, runAlert(t, a, activities.AlertInput{InstanceID: "inst-1", Kind: "parked", Message: "m"}))
	})

	t.Run("webhook unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		a := &activities.Activities{Alerts: activities.Alerter{WebhookURL: url}}

		err := runAlert(t, a, activities.AlertInput{InstanceID: "inst-1", Kind: "parked", Message: "m"})

		require.Error(t, err)
		require.False(t, nonRetryable(err), "the activity retries")
	})
}

func TestPolicySupervisionReviewed(t *testing.T) {
	order := workflows.Order{ProductID: "prod-1", SkuCode: "sku-1"}
	tests := []struct {
		name               string
		supervised, review []string
		want               bool
	}{
		{"supervised and listed", []string{"prod-1"}, []string{"sku-1"}, true},
		{"every supervised product", []string{"*"}, []string{"*"}, true},
		{"supervised, not listed", []string{"prod-1"}, []string{"prod-2"}, false},
		// A review belongs to the supervision flow: without supervision
		// there is nothing to review.
		{"listed, not supervised", nil, []string{"prod-1"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &activities.Activities{Lifecycle: activities.LifecycleConfig{
				SupervisedProducts: tc.supervised, SupervisionReviewedProducts: tc.review,
			}}

			got, err := a.Policy(t.Context(), activities.PolicyInput{Order: order})

			require.NoError(t, err)
			require.Equal(t, tc.want, got.SupervisionReviewed)
		})
	}
}

func TestPolicyPackageReset(t *testing.T) {
	pkg := workflows.Order{ProductID: "prod-pkg", SkuCode: "sku-pkg", ChargingMode: "ON_DEMAND_PKG"}
	tests := []struct {
		name     string
		products []string
		order    workflows.Order
		want     string
	}{
		{"not declared", nil, pkg, ""},
		{"monthly by productId", []string{"prod-pkg:monthly"}, pkg, activities.PackageResetMonthly},
		{"yearly by skuCode", []string{"other:monthly", " sku-pkg : Yearly "}, pkg, activities.PackageResetYearly},
		{"the productId's declaration first", []string{"sku-pkg:yearly", "prod-pkg:monthly"}, pkg, activities.PackageResetMonthly},
		{"only packages reset", []string{"prod-pkg:monthly"}, workflows.Order{ProductID: "prod-pkg", ChargingMode: "ON_DEMAND"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &activities.Activities{Lifecycle: activities.LifecycleConfig{PackageResetProducts: tc.products}}
			got, err := a.Policy(t.Context(), activities.PolicyInput{Order: tc.order})
			require.NoError(t, err)
			require.Equal(t, tc.want, got.PackageReset)
		})
	}
	// The rehearsal clock reaches only the packages that reset.
	a := &activities.Activities{Lifecycle: activities.LifecycleConfig{
		Policy: activities.Policy{PackageResetScale: 8640}, PackageResetProducts: []string{"prod-pkg:monthly"}}}
	got, err := a.Policy(t.Context(), activities.PolicyInput{Order: pkg})
	require.NoError(t, err)
	require.Equal(t, 8640.0, got.PackageResetScale)
	got, err = a.Policy(t.Context(), activities.PolicyInput{Order: workflows.Order{ProductID: "other", ChargingMode: "ON_DEMAND_PKG"}})
	require.NoError(t, err)
	require.Zero(t, got.PackageResetScale)
	for _, bad := range []string{"prod", "prod:weekly", ":monthly", "prod:"} {
		_, err := activities.PackageResets([]string{bad})
		require.Error(t, err, bad)
	}
}
