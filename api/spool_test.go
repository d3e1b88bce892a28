package api_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// downHarness is a server whose database was closed before the first
// request, so that every database call fails, with the given spool.
type downHarness struct {
	*harness
	dbURL string
	spool *inbox.Spool
}

func newDownHarness(t *testing.T, spool *inbox.Spool) *downHarness {
	t.Helper()
	dbURL := testenv.NewDatabase(t)
	ctx := t.Context()
	db, err := store.Open(ctx, dbURL)
	require.NoError(t, err)
	_, err = db.Migrate(ctx)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	raw, err := sql.Open("postgres", dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &harness{db: db, raw: raw, signaller: &fakeSignaller{}, temporal: &fakeTemporal{}}
	// Without a database nothing is recorded, so nothing is dispatched.
	h.inbox = &inbox.Inbox{Store: db.Callbacks, Temporal: inboxTemporal{h.signaller, h.temporal}, TaskQueue: testTaskQueue,
		Logger: logger, Spool: spool}
	gauges := api.Gauges{}
	if spool != nil {
		gauges.SpoolBacklog = spool.Backlog
	}
	h.handler = api.New(api.Config{
		Store:      db,
		Inbox:      h.inbox,
		Temporal:   h.temporal,
		AccessKey:  testAccessKey,
		AdminToken: testAdminToken,
		Logger:     logger,
		Metrics:    api.NewMetrics(nil, gauges),
	}).Handler()
	h.srv = httptest.NewServer(h.handler)
	t.Cleanup(h.srv.Close)
	return &downHarness{harness: h, dbURL: dbURL, spool: spool}
}

// spooled counts the spooled callbacks.
func (d *downHarness) spooled(t *testing.T) int {
	t.Helper()
	n, err := d.spool.Backlog()
	require.NoError(t, err)
	return n
}

// metric returns the value of an unlabelled metric line, "" when absent.
func (h *harness) metric(t *testing.T, name string) string {
	t.Helper()
	status, raw := h.get(t, "/metrics", "")
	require.Equal(t, http.StatusOK, status)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

const successAnswer = `{"resultCode":"000000","resultMsg":"success"}`

func TestProduceSpoolsOnceOnlyCallbacksWhilePostgresIsDown(t *testing.T) {
	t.Parallel()
	spool := &inbox.Spool{Dir: t.TempDir()}
	d := newDownHarness(t, spool)
	const id = "sp-1"
	orderID, lineID := orderOf(id)
	require.Equal(t, "0", d.metric(t, "fulfillment_spool_backlog"))

	tests := []struct {
		name    string
		body    []byte
		code    string
		spooled bool
	}{
		// Sent once per the delivery table: kept on disk and answered 000000.
		{"refreshInstance", refreshBody(t, id, "R1"), "000000", true},
		// Retried for 1 h: the marketplace sends it again.
		{"FREEZE", statusBody(t, id, "FREEZE"), "000005", false},
		// Retried for 3 h.
		{"newInstance", newInstanceBody(t, orderID, lineID, id), "000005", false},
		// Only the FREEZE's retry is documented: UNFREEZE is treated as once.
		{"UNFREEZE", statusBody(t, id, "UNFREEZE"), "000000", true},
		{"upgradeInstance", upgradeBody(t, id, "U1"), "000005", false},
		// Answered from the database, never spooled.
		{"queryInstance", queryBody(t, id), "000005", false},
		{"changeInstanceCheck", changeCheckBody(t, id), "000005", false},
		{"orderNotify", []byte(`{"activity":"orderNotify","orderId":"N1","orderLineId":"N1-000001"}`), "000005", false},
		// The spool cannot tell an unknown instance while the database is away.
		{"refreshInstance of an unknown instance", refreshBody(t, "sp-ghost", "R9"), "000000", true},
		// Retried for 1 h on some pages, once on another.
		{"releaseInstance", releaseBody(t, id), "000000", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := d.spooled(t)

			a := d.produce(t, tc.body)

			if tc.code == "000000" {
				requireResult(t, a, "000000", msgSuccess)
				require.Equal(t, successAnswer, string(a.Raw))
			} else {
				requireResult(t, a, tc.code, msgUnavailable)
				require.Empty(t, a.InstanceID)
			}
			want := before
			if tc.spooled {
				want++
			}
			require.Equal(t, want, d.spooled(t))
		})
	}

	t.Run("the same signed request twice", func(t *testing.T) {
		body := refreshBody(t, id, "R2")
		query := koogallery.SignedQuery(testAccessKey, body, time.Now())
		before := d.spooled(t)

		requireResult(t, d.produceQuery(t, query, body), "000000", msgSuccess)
		requireResult(t, d.produceQuery(t, query, body), "000001", msgAuthFailed)

		require.Equal(t, before+1, d.spooled(t), "the replay is not spooled")
		claims, err := os.ReadDir(filepath.Join(spool.Dir, "nonces"))
		require.NoError(t, err)
		require.NotEmpty(t, claims, "the spool remembers the nonces while the database is away")
	})

	t.Run("unauthenticated calls are never spooled", func(t *testing.T) {
		before := d.spooled(t)
		body := refreshBody(t, id, "R3")
		for _, query := range []map[string][]string{
			koogallery.SignedQuery("wrong-key", body, time.Now()),
			koogallery.SignedQuery(testAccessKey, body, time.Now().Add(-time.Hour)),
			{},
		} {
			requireResult(t, d.produceQuery(t, query, body), "000001", msgAuthFailed)
		}
		require.Equal(t, before, d.spooled(t))
	})

	require.Empty(t, d.signaller.attempts(), "nothing reaches Temporal while the database is away")
	require.Equal(t, "5", d.metric(t, "fulfillment_spool_backlog"))
	status, raw := d.get(t, "/metrics", "")
	require.Equal(t, http.StatusOK, status)
	for _, line := range []string{
		`fulfillment_callbacks_total{activity="refreshInstance",result_code="000000"} 3`,
		`fulfillment_callbacks_total{activity="refreshInstance",result_code="000001"} 1`,
		`fulfillment_callbacks_total{activity="updateInstanceStatus",result_code="000000"} 1`,
		`fulfillment_callbacks_total{activity="updateInstanceStatus",result_code="000005"} 1`,
		`fulfillment_callbacks_total{activity="releaseInstance",result_code="000000"} 1`,
		`fulfillment_callbacks_total{activity="newInstance",result_code="000005"} 1`,
	} {
		require.Contains(t, strings.Split(string(raw), "\n"), line, "metrics:\n%s", raw)
	}

	// Still down: draining fails and keeps every file.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	files := func() []string {
		t.Helper()
		entries, err := os.ReadDir(spool.Dir)
		require.NoError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	before := files()
	down := &inbox.Inbox{Store: d.db.Callbacks, Temporal: inboxTemporal{d.signaller, d.temporal}, TaskQueue: testTaskQueue, Logger: logger}
	n, err := down.DrainSpool(t.Context(), spool)
	require.Error(t, err)
	require.Zero(t, n)
	require.Equal(t, before, files())

	// Postgres is back: the same database, opened again.
	db, err := store.Open(t.Context(), d.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	var recorded int
	require.NoError(t, db.Ping(t.Context()))
	require.NoError(t, d.raw.QueryRowContext(t.Context(), `SELECT count(*) FROM callbacks`).Scan(&recorded))
	require.Zero(t, recorded, "nothing reached the database during the outage")

	signaller := &fakeSignaller{}
	ib := &inbox.Inbox{Store: db.Callbacks, Temporal: inboxTemporal{signaller, &fakeTemporal{}}, TaskQueue: testTaskQueue, Logger: logger}
	// The marketplace's newInstance, retried, allocates the instance.
	newBody := newInstanceBody(t, orderID, lineID, id)
	req, err := koogallery.ParseRequest(newBody)
	require.NoError(t, err)
	rec, err := ib.Record(t.Context(), req, newBody, time.Time{})
	require.NoError(t, err)
	require.NoError(t, ib.DeliverNow(t.Context(), rec))

	n, err = ib.DrainSpool(t.Context(), spool)

	require.NoError(t, err)
	require.Equal(t, 5, n, "four recorded, one for an unknown instance dropped")
	require.Equal(t, []string{"nonces"}, files(), "only the nonce claims are left")
	require.Equal(t, "0", d.metric(t, "fulfillment_spool_backlog"))

	cbs, err := db.Callbacks.CallbacksOf(t.Context(), id)
	require.NoError(t, err)
	var keys []string
	for _, cb := range cbs {
		keys = append(keys, cb.DedupKey)
	}
	want := []string{
		"debug:newInstance:" + orderID + ":" + lineID,
		"refreshInstance:" + id + ":R1:R1-000001",
		"updateInstanceStatus:" + id + ":UNFREEZE:1",
		"releaseInstance:" + id,
		"refreshInstance:" + id + ":R2:R2-000001",
	}
	require.Equal(t, want, keys, "recorded in arrival order")
	require.Equal(t, string(refreshBody(t, id, "R1")), cbs[1].Body, "the body as received")
	for _, cb := range cbs {
		require.True(t, cb.Delivered(), "%s delivered", cb.DedupKey)
	}
	var delivered []string
	for _, c := range signaller.delivered() {
		require.Equal(t, workflows.InstanceWorkflowID(id), c.WorkflowID)
		require.Equal(t, workflows.CallbackSignal, c.SignalName)
		delivered = append(delivered, c.Arg.(workflows.Callback).Key)
	}
	require.Equal(t, want, delivered, "the workflow got them in arrival order")

	_, err = db.Callbacks.InstanceKey(t.Context(), "sp-ghost")
	require.ErrorIs(t, err, store.ErrUnknownInstance)
	var all int
	require.NoError(t, d.raw.QueryRowContext(t.Context(), `SELECT count(*) FROM callbacks`).Scan(&all))
	require.Equal(t, len(want), all, "the unknown instance's callback was dropped")
}

// TestProduceRecordsSpooledCallbacksFirst: callbacks spooled during an
// outage arrived before the first ones after it, so they are recorded
// first. Otherwise a spooled, older renewal would get the later seq and be
// applied after the newer one, moving the expiry back.
func TestProduceRecordsSpooledCallbacksFirst(t *testing.T) {
	t.Parallel()
	spool := &inbox.Spool{Dir: t.TempDir()}
	h := newHarness(t, withSpool(spool))
	const id = "sp-order"
	h.allocate(t, id)
	// Spooled while the database was away.
	require.NoError(t, spool.Put(refreshBody(t, id, "R1"), time.Now().Add(-time.Minute), time.Time{}))
	require.NoError(t, spool.Put(statusBody(t, id, "UNFREEZE"), time.Now().Add(-time.Minute+time.Second), time.Time{}))

	requireResult(t, h.produce(t, refreshBody(t, id, "R2")), "000000", msgSuccess)

	var keys []string
	for _, cb := range h.callbacksOf(t, id) {
		keys = append(keys, cb.DedupKey)
	}
	require.Equal(t, []string{
		"refreshInstance:" + id + ":R1:R1-000001",
		"updateInstanceStatus:" + id + ":UNFREEZE:1",
		"refreshInstance:" + id + ":R2:R2-000001",
	}, keys[len(keys)-3:], "recorded in arrival order")
	n, err := spool.Backlog()
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestProduceWithoutSpoolFailsWhilePostgresIsDown(t *testing.T) {
	t.Parallel()
	d := newDownHarness(t, nil)

	for _, body := range [][]byte{
		refreshBody(t, "sp-none", "R1"),
		statusBody(t, "sp-none", "UNFREEZE"),
		releaseBody(t, "sp-none"),
	} {
		requireResult(t, d.produce(t, body), "000005", msgUnavailable)
	}
	require.Empty(t, d.metric(t, "fulfillment_spool_backlog"), "no spool, no gauge")
}

func TestProduceWithAnUnusableSpool(t *testing.T) {
	t.Parallel()
	// The spool directory is a file: nothing can be written there.
	file := filepath.Join(t.TempDir(), "spool")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	d := newDownHarness(t, &inbox.Spool{Dir: file})

	requireResult(t, d.produce(t, refreshBody(t, "sp-broken", "R1")), "000005", msgUnavailable)
	requireResult(t, d.produce(t, releaseBody(t, "sp-broken")), "000005", msgUnavailable)
	require.Equal(t, "-1", d.metric(t, "fulfillment_spool_backlog"), "an unreadable spool is reported as unknown")
}

func TestSpoolBacklogMetric(t *testing.T) {
	t.Parallel()
	spool := &inbox.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	h := &harness{}
	h.srv = httptest.NewServer(api.NewMetrics(nil, api.Gauges{SpoolBacklog: spool.Backlog}).Handler())
	t.Cleanup(h.srv.Close)
	get := func() string {
		t.Helper()
		status, raw := h.get(t, "/", "")
		require.Equal(t, http.StatusOK, status)
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "fulfillment_spool_backlog "); ok {
				return v
			}
		}
		return ""
	}

	require.Equal(t, "0", get(), "a spool never written to")
	for i := range 3 {
		require.NoError(t, spool.Put(refreshBody(t, "m", "R"+string(rune('0'+i))), time.Now(), time.Time{}))
	}
	require.Equal(t, "3", get())
	_, err := spool.ClaimNonce("N")
	require.NoError(t, err)
	require.Equal(t, "3", get(), "nonce claims are not callbacks")

	db := testenv.NewStore(t)
	_, err = db.Callbacks.RecordNewInstance(context.Background(), "m", store.NewCallback{
		DedupKey: "newInstance:Om:Om-1", Activity: "newInstance", OrderID: "Om", OrderLineID: "Om-1",
		Body: newInstanceBody(t, "Om", "Om-1", "m"),
	})
	require.NoError(t, err)
	ib := &inbox.Inbox{Store: db.Callbacks, Temporal: inboxTemporal{&fakeSignaller{}, &fakeTemporal{}}, TaskQueue: testTaskQueue,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	n, err := ib.DrainSpool(t.Context(), spool)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, "0", get())
}
