package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeConsole answers buy and show like the emulator's console, and records
// the actions it is sent.
func fakeConsole(t *testing.T, view PurchaseView) (*httptest.Server, *[]string) {
	t.Helper()
	var actions []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/emulator/purchases":
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(Bought{PurchaseID: "CSBOUGHT", OrderID: "CSBOUGHT", OrderLineID: "CSBOUGHT-000001"})
		case r.Method == http.MethodPost:
			var a Action
			_ = json.NewDecoder(r.Body).Decode(&a)
			actions = append(actions, fmt.Sprintf("%s periods=%d", r.URL.Path, a.Periods))
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{}`))
		default:
			_ = json.NewEncoder(w).Encode(view)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &actions
}

func cliRun(t *testing.T, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Main(t.Context(), "bin/fulfillment", args, func(k string) string { return vars[k] }, &out)
	return out.String(), err
}

// TestCommandsTakeFlagsBeforeOrAfterTheID: "watch ID -merchant" works as
// "watch -merchant ID" does, for every command that takes an ID, and -h
// prints the usage and succeeds.
func TestCommandsTakeFlagsBeforeOrAfterTheID(t *testing.T) {
	t.Chdir(t.TempDir())
	srv, actions := fakeConsole(t, PurchaseView{})
	vars := map[string]string{"EMULATOR_URL": srv.URL}
	for _, args := range [][]string{{"renew", "CS1", "-periods", "2"}, {"renew", "-periods", "2", "CS1"}} {
		out, err := cliRun(t, vars, args...)
		require.NoError(t, err, args)
		require.Equal(t, "renew: accepted.\n", out)
	}
	require.Equal(t, []string{"/emulator/purchases/CS1/actions/renew periods=2", "/emulator/purchases/CS1/actions/renew periods=2"}, *actions)

	_, err := cliRun(t, vars, "show", "--", "-odd-id", "extra")
	require.ErrorContains(t, err, "show: give the purchase ID", "after --, everything is an argument")

	for _, cmd := range []string{"buy", "watch", "show", "renew", "upgrade", "confirm-delivery", "usage", "pushes", "fail-usage", "messages", "scale"} {
		for _, h := range []string{"-h", "-help", "--help"} {
			out, err := cliRun(t, vars, cmd, h)
			require.NoError(t, err, "%s %s exits 0", cmd, h)
			require.True(t, strings.HasPrefix(out, "Usage: bin/fulfillment emulator "+cmd), out)
			require.NotContains(t, out, "help requested")
		}
	}
	out, err := cliRun(t, vars, "watch", "-h")
	require.NoError(t, err)
	require.Contains(t, out, "Usage: bin/fulfillment emulator watch [-merchant] ID")
	require.Contains(t, out, "-merchant")

	_, err = cliRun(t, vars, "renew", "CS1", "-nope")
	require.EqualError(t, err, "renew: flag provided but not defined: -nope (run 'bin/fulfillment emulator renew -h')")
}

// TestHintsWorkInASecondTerminal: buy prints the watch command as it can be
// pasted: the binary as it was run, and -merchant when the merchant's admin
// API is known; the variables come from the environment or from the file
// make run writes; watch -merchant without them says which are missing and
// where to get them.
func TestHintsWorkInASecondTerminal(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	srv, _ := fakeConsole(t, PurchaseView{})

	out, err := cliRun(t, map[string]string{"EMULATOR_URL": srv.URL}, "buy")
	require.NoError(t, err)
	require.Equal(t, "Bought: purchase CSBOUGHT (order CSBOUGHT, line CSBOUGHT-000001).\n"+
		"Follow it: EMULATOR_URL="+srv.URL+" bin/fulfillment emulator watch CSBOUGHT\n", out,
		"no merchant: no -merchant; this terminal's own emulator address goes with the command")

	_, err = cliRun(t, map[string]string{"EMULATOR_URL": srv.URL, "EMULATOR_MERCHANT_ADMIN_URL": "http://127.0.0.1:1"}, "watch", "CSBOUGHT", "-merchant")
	require.ErrorContains(t, err, "needs EMULATOR_MERCHANT_ADMIN_URL and EMULATOR_MERCHANT_ADMIN_TOKEN; not set: EMULATOR_MERCHANT_ADMIN_TOKEN.")
	require.ErrorContains(t, err, "make run writes both into .data/run.env")
	require.ErrorContains(t, err, "export EMULATOR_MERCHANT_ADMIN_URL=http://127.0.0.1:8080 EMULATOR_MERCHANT_ADMIN_TOKEN=local-admin-token")

	// What make run writes: the commands read it.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ".data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, RunEnvFile), []byte("# written by make run\n"+
		"export EMULATOR_URL='"+srv.URL+"'\nexport EMULATOR_MERCHANT_ADMIN_URL='http://127.0.0.1:8080'\n"+
		"export EMULATOR_MERCHANT_ADMIN_TOKEN='local-admin-token'\n"), 0o600))
	out, err = cliRun(t, nil, "buy")
	require.NoError(t, err)
	require.Equal(t, "Bought: purchase CSBOUGHT (order CSBOUGHT, line CSBOUGHT-000001).\n"+
		"Follow it: bin/fulfillment emulator watch -merchant CSBOUGHT\n", out)

	out, err = cliRun(t, map[string]string{"EMULATOR_MERCHANT_ADMIN_URL": "http://merchant.example", "EMULATOR_MERCHANT_ADMIN_TOKEN": "t"}, "buy")
	require.NoError(t, err)
	require.Contains(t, out, "Follow it: bin/fulfillment emulator watch -merchant CSBOUGHT\n"+
		"  (from a terminal where EMULATOR_MERCHANT_ADMIN_URL and EMULATOR_MERCHANT_ADMIN_TOKEN are set as here)\n",
		"the environment wins over the file, and the hint says the other terminal needs it too")
}

// TestWatchPrintsBothSidesInTheOrderThingsHappened: the merchant's events
// are stamped with the emulated time they happened at, not when watch saw
// them, and interleave with the marketplace's; every line says what
// happened.
func TestWatchPrintsBothSidesInTheOrderThingsHappened(t *testing.T) {
	t.Chdir(t.TempDir())
	origin := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := Clock{Scale: 8640, Origin: origin}
	day := func(d float64) time.Time { return origin.Add(clock.Real(time.Duration(d * float64(24*time.Hour)))) }
	event := func(real time.Time, kind, msg string) Event {
		return Event{Key: kind, At: real, EmulatedAt: clock.EmulatedAt(real), Kind: kind, Message: msg}
	}
	view := PurchaseView{Purchase: Purchase{PurchaseID: "CSW", State: StateReleased, InstanceID: "CSW"},
		ClockOrigin: origin, TimeScale: 8640,
		Timeline: []Event{
			event(day(0), "ordered", "Order placed."),
			event(day(31), "expired", "Expired: FREEZE."),
			event(day(46), "retention-ended", "Released."),
		}}
	console, _ := fakeConsole(t, view)
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
		_ = json.NewEncoder(w).Encode(map[string]any{"state": "released", "events": []map[string]any{
			{"at": day(46.01), "kind": "released", "message": "Released by the marketplace."},
			{"at": day(0.01), "kind": "active", "message": "Tenant provisioned; the instance is active."},
			{"at": day(31.01), "kind": "frozen", "message": "Frozen at expiry."},
		}})
	}))
	t.Cleanup(merchant.Close)

	out, err := cliRun(t, map[string]string{"EMULATOR_URL": console.URL, "EMULATOR_MERCHANT_ADMIN_URL": merchant.URL,
		"EMULATOR_MERCHANT_ADMIN_TOKEN": "tok"}, "watch", "CSW", "-merchant")
	require.NoError(t, err)
	require.Equal(t, `2026-01-01 00:00  marketplace  ordered          Order placed.
2026-01-01 00:14  merchant     active           Tenant provisioned; the instance is active.
2026-02-01 00:00  marketplace  expired          Expired: FREEZE.
2026-02-01 00:14  merchant     frozen           Frozen at expiry.
2026-02-16 00:00  marketplace  retention-ended  Released.
2026-02-16 00:14  merchant     released         Released by the marketplace.
Purchase CSW: released.
`, out)
}
