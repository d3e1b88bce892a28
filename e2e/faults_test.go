package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
	"github.com/fulfillment-server/fulfillment/provisioner"
)

// The fault tests break one real process at a time (the worker, Temporal,
// Postgres, the merchant's application) while the server works, and check
// that nothing answered 000000 is lost or applied twice.

// merchantApp is the merchant's application as the HTTP provisioner sees
// it, and as a well-behaved one works: it checks every signature and
// creates at most one tenant per idempotency key, returning the same
// tenant for a repeated call. It records every provision call.
type merchantApp struct {
	key string
	srv *httptest.Server

	mu      sync.Mutex
	calls   []string                      // the Idempotency-Key of each provision call, in order
	tenants map[string]provisioner.Tenant // the tenants created, by idempotency key
	// done holds the idempotency keys of the freezes, unfreezes and
	// releases carried out; a call with a key already done is skipped,
	// as docs/provisioner.md allows. frozen is the tenants' switch.
	done   map[string]bool
	frozen map[string]bool
	ops    []string // "<op> <key>" of every tenant switch call, skipped or not

	// unavailable makes provision answer 503, as during a deploy.
	unavailable atomic.Bool
	// With holdFirst, the first provision call closes firstHeld and
	// waits until releaseFirst is closed before creating its tenant.
	holdFirst    bool
	firstHeld    chan struct{}
	releaseFirst chan struct{}
	releaseOnce  sync.Once
}

func newMerchantApp(t *testing.T, key string, holdFirst bool) *merchantApp {
	a := &merchantApp{
		key: key, tenants: map[string]provisioner.Tenant{}, done: map[string]bool{}, frozen: map[string]bool{},
		holdFirst: holdFirst, firstHeld: make(chan struct{}), releaseFirst: make(chan struct{}),
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	// A held call must end before the server can close.
	t.Cleanup(func() { a.release(); a.srv.Close() })
	return a
}

func (a *merchantApp) URL() string { return a.srv.URL }

func (a *merchantApp) release() { a.releaseOnce.Do(func() { close(a.releaseFirst) }) }

func (a *merchantApp) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := provisioner.VerifyRequest(r, body, []byte(a.key), time.Now(), time.Minute); err != nil {
		http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	key := r.Header.Get(provisioner.IdempotencyKeyHeader)
	if r.URL.Path != "/provision" {
		var req provisioner.TenantRequest
		_ = json.Unmarshal(body, &req)
		a.mu.Lock()
		a.ops = append(a.ops, strings.TrimPrefix(r.URL.Path, "/")+" "+key)
		if key != "" && !a.done[key] {
			a.done[key] = true
			switch r.URL.Path {
			case "/freeze":
				a.frozen[req.InstanceID] = true
			case "/unfreeze":
				a.frozen[req.InstanceID] = false
			}
		}
		a.mu.Unlock()
		_, _ = w.Write([]byte(`{}`))
		return
	}
	a.mu.Lock()
	a.calls = append(a.calls, key)
	first := len(a.calls) == 1
	a.mu.Unlock()
	if a.unavailable.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"deploying, back in a moment"}`))
		return
	}
	if first && a.holdFirst {
		close(a.firstHeld)
		<-a.releaseFirst
	}
	var req provisioner.ProvisionRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	tenant, ok := a.tenants[key]
	if !ok {
		tenant = provisioner.Tenant{
			FrontEndURL: fmt.Sprintf("https://app.example.com/t/%d-%s", len(a.tenants)+1, req.InstanceID),
			UserName:    "owner", Password: "Initial-Pa55word",
		}
		a.tenants[key] = tenant
	}
	a.mu.Unlock()
	_ = json.NewEncoder(w).Encode(tenant)
}

// tenantOps returns "<op> <idempotency key>" of every freeze, unfreeze and
// release call, and whether the instance's tenant is frozen now.
func (a *merchantApp) tenantOps(instanceID string) ([]string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.ops...), a.frozen[instanceID]
}

// provisionCalls returns the idempotency keys of the provision calls.
func (a *merchantApp) provisionCalls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

// createdTenants returns the tenants created, by idempotency key.
func (a *merchantApp) createdTenants() map[string]provisioner.Tenant {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]provisioner.Tenant, len(a.tenants))
	for k, v := range a.tenants {
		out[k] = v
	}
	return out
}

// post sends a signed callback like produce, but returns what went wrong
// instead of failing the test, for goroutines other than the test's.
func (s *stack) post(body string) (reply, error) {
	query := koogallery.SignedQuery(accessKey, []byte(body), time.Now())
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/produce?"+query.Encode(), strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return reply{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	if err := koogallery.VerifyBodySign(resp.Header.Get(koogallery.BodySignHeader), accessKey, raw); err != nil {
		return reply{}, fmt.Errorf("answer without a valid Body-Sign: %w", err)
	}
	r := reply{raw: raw, took: time.Since(start)}
	if err := json.Unmarshal(raw, &r); err != nil {
		return reply{}, fmt.Errorf("answer %s: %w", raw, err)
	}
	return r, nil
}

// yearlyOrder is a new yearly order of one line, as Query Order returns it.
func yearlyOrder(orderID string) koogallery.OrderInfo {
	lv := koogallery.LinearValue(10)
	return koogallery.OrderInfo{
		OrderID:    orderID,
		OrderType:  koogallery.OrderTypeNew,
		CreateTime: koogallery.FormatTime(time.Now()),
		OrderLines: []koogallery.OrderLine{{
			OrderLineID: orderID + "-000001", ChargingMode: koogallery.ChargingPeriod,
			PeriodType: "year", PeriodNumber: 1, ExpireTime: koogallery.FormatTime(time.Now().AddDate(1, 0, 0)),
			ProductInfo: []koogallery.ProductInfo{{SkuCode: "FAULT-SKU", ProductID: "FAULT-PRODUCT", LinearValue: &lv}},
		}},
		BuyerInfo: &koogallery.BuyerInfo{CustomerID: "fault-customer", CustomerName: "buyer"},
	}
}

// buyActive buys one yearly instance per order ID and waits until each is
// active with its access information; it returns the instance IDs.
func (s *stack) buyActive(orderIDs ...string) []string {
	s.t.Helper()
	ids := make([]string, len(orderIDs))
	for i, orderID := range orderIDs {
		s.openAPI.AddOrder(yearlyOrder(orderID))
		r := s.produce(newInstanceBody(orderID, orderID+"-000001", "biz-"+strings.ToLower(orderID)))
		require.Equal(s.t, "000000", r.ResultCode, string(r.raw))
		ids[i] = r.InstanceID
	}
	for _, id := range ids {
		s.waitForAppInfo(id)
		s.waitState(id, "active")
	}
	return ids
}

// TestWorkerKilledWhileProvisioning kills the worker (SIGKILL) while the
// merchant's application is creating the tenant. The application goes on
// and creates it, but nobody reads its answer. A new worker retries the
// call with the same idempotency key, so the buyer gets that tenant and no
// second one is created.
func TestWorkerKilledWhileProvisioning(t *testing.T) {
	t.Parallel()
	app := newMerchantApp(t, "app-key-killed-worker", true)
	s := startSplitStack(t, "PROVISIONER="+app.URL(), "PROVISIONER_KEY=app-key-killed-worker")
	order := mockapi.OrderPeriodYearNew
	first := s.produce(newInstanceBody(order, order+"-000001", "biz-killed-worker"))
	require.Equal(t, "000000", first.ResultCode, string(first.raw))
	id := first.InstanceID

	select {
	case <-app.firstHeld:
	case <-time.After(60 * time.Second):
		t.Fatalf("the worker never called the application to provision; logs:\n%s", s.logs.String())
	}
	s.killWorker()
	// The application finishes the creation it started; its answer goes
	// to a dead connection.
	app.release()
	waitUntil(t, 10*time.Second, "the application to create the tenant of the held call",
		func() int { return len(app.createdTenants()) }, func(n int) bool { return n == 1 })
	require.Equal(t, "provisioning", s.instance(id).State, "the killed worker recorded nothing")

	s.startWorker()
	appInfo := s.waitForAppInfo(id)
	newInstanceKey := "callback/newInstance:" + order + ":" + order + "-000001"
	active := s.waitFor(id, "active with newInstance applied", func(i instance) bool {
		return i.State == "active" && i.events(newInstanceKey) > 0
	})

	calls := app.provisionCalls()
	require.GreaterOrEqual(t, len(calls), 2, "the new worker called the application again")
	for _, key := range calls {
		require.Equal(t, "provision:"+id, key, "every provision call of the instance has the same idempotency key")
	}
	tenants := app.createdTenants()
	require.Len(t, tenants, 1, "exactly one tenant exists")
	require.Equal(t, tenants["provision:"+id].FrontEndURL, appInfo.FrontEndURL, "the buyer gets the tenant the first call created")
	require.Equal(t, tenants["provision:"+id].FrontEndURL, active.AppInfo.FrontEndURL)
	require.Equal(t, 1, active.events("provisioning/done"))
	require.Equal(t, 1, active.events(newInstanceKey))
}

// TestTemporalDownDuringCallbackBurst stops Temporal for 30 s in the middle
// of a burst of callbacks for ten instances: renewals, FREEZE and UNFREEZE,
// each also redelivered. Every callback is answered 000000 (it is recorded
// in Postgres) and, once Temporal is back, applied exactly once, in order.
func TestTemporalDownDuringCallbackBurst(t *testing.T) {
	t.Parallel()
	const instances, outage = 10, 30 * time.Second
	s := startStack(t)
	orders := make([]string, instances)
	for i := range orders {
		orders[i] = fmt.Sprintf("TEMPORALBURST%02d", i)
	}
	ids := s.buyActive(orders...)

	// Per instance: a first renewal, redelivered until Temporal is down;
	// while it is down a second renewal, FREEZE and UNFREEZE, each twice;
	// once it is back, the second renewal and UNFREEZE again.
	firstRenewal := func(i int) string {
		return refreshBody(ids[i], fmt.Sprintf("RENEW1-%02d", i), "RENEWAL",
			koogallery.FormatTime(time.Date(2030, 1, i+1, 15, 59, 59, 0, time.UTC)))
	}
	secondExpiry := func(i int) time.Time { return time.Date(2031, 1, i+1, 15, 59, 59, 0, time.UTC) }
	secondRenewal := func(i int) string {
		return refreshBody(ids[i], fmt.Sprintf("RENEW2-%02d", i), "RENEWAL", koogallery.FormatTime(secondExpiry(i)))
	}

	var (
		answered atomic.Int32
		mu       sync.Mutex
		failures []string
	)
	send := func(body string) {
		r, err := s.post(body)
		switch {
		case err != nil:
			err = fmt.Errorf("%s: %w", body, err)
		case r.ResultCode != "000000":
			err = fmt.Errorf("%s answered %s", body, r.raw)
		case r.took > 10*time.Second:
			err = fmt.Errorf("%s answered after %s, near KooGallery's 20 s timeout", body, r.took)
		}
		if err != nil {
			mu.Lock()
			failures = append(failures, err.Error())
			mu.Unlock()
		}
		answered.Add(1)
	}
	down, up := make(chan struct{}), make(chan struct{})
	var whileDown, burst sync.WaitGroup
	for i := range ids {
		whileDown.Add(1)
		burst.Add(1)
		go func() {
			defer burst.Done()
			pace := time.NewTicker(150 * time.Millisecond)
			defer pace.Stop()
			for stopped := false; !stopped; {
				send(firstRenewal(i))
				select {
				case <-down:
					stopped = true
				case <-pace.C:
				}
			}
			for _, body := range []string{secondRenewal(i), secondRenewal(i),
				statusBody(ids[i], "FREEZE"), statusBody(ids[i], "FREEZE"),
				statusBody(ids[i], "UNFREEZE"), statusBody(ids[i], "UNFREEZE")} {
				send(body)
			}
			whileDown.Done()
			<-up
			send(secondRenewal(i))
			send(statusBody(ids[i], "UNFREEZE"))
		}()
	}
	waitUntil(t, 30*time.Second, "the burst to be under way", func() int32 { return answered.Load() },
		func(n int32) bool { return n >= 2*instances })
	s.temporal.Stop()
	stoppedAt := time.Now()
	close(down)
	whileDown.Wait()
	mu.Lock()
	require.Empty(t, failures, "every callback is answered 000000 at once while Temporal is down")
	mu.Unlock()
	pending := s.instance(ids[0])
	require.Equal(t, "active", pending.State, "nothing is applied while Temporal is away")
	require.Zero(t, pending.events("callback/updateInstanceStatus:"+ids[0]+":FREEZE:1"))

	time.Sleep(time.Until(stoppedAt.Add(outage))) // the outage itself
	s.temporal.Start()
	close(up)
	burst.Wait()
	require.Empty(t, failures, "every callback is answered 000000")

	for i, id := range ids {
		keys := []string{
			"refreshInstance:" + id + ":" + fmt.Sprintf("RENEW1-%02d:RENEW1-%02d-000001", i, i),
			"refreshInstance:" + id + ":" + fmt.Sprintf("RENEW2-%02d:RENEW2-%02d-000001", i, i),
			"updateInstanceStatus:" + id + ":FREEZE:1",
			"updateInstanceStatus:" + id + ":UNFREEZE:2",
		}
		// The relay's backoff reaches 30 s during the outage, so its next
		// attempt may come that long after Temporal is back; allow for it
		// on a busy machine.
		done := waitUntil(t, 2*time.Minute, "instance "+id+" to be unfrozen with the second renewal, every callback delivered",
			func() instance { return s.instance(id) }, func(in instance) bool {
				if in.State != "active" || in.ExpireTime == nil || !in.ExpireTime.Equal(secondExpiry(i)) {
					return false
				}
				for _, key := range keys {
					if in.events("callback/"+key) == 0 {
						return false
					}
				}
				return allDelivered(in)
			})
		for _, key := range keys {
			require.Equal(t, 1, done.events("callback/"+key), "%s applied once", key)
			require.Equal(t, 1, done.events(key), "%s recorded once, its redeliveries counted on it", key)
		}
		received := 0
		for _, e := range done.Events {
			if e.Kind == "received" {
				received++
			}
		}
		require.Equal(t, 1+len(keys), received, "no callback recorded under another key: %+v", done.Events)
		require.Contains(t, eventMessage(done, keys[3]), "sent 2 more times", "the UNFREEZE redeliveries are counted")
		require.Contains(t, eventMessage(done, "callback/"+keys[2]), "Frozen by the marketplace")
		require.Contains(t, eventMessage(done, "callback/"+keys[3]), "Unfrozen by the marketplace")
	}
}

// allDelivered reports whether every recorded callback reached the workflow.
func allDelivered(in instance) bool {
	for _, e := range in.Events {
		if e.Kind == "received" && !strings.Contains(e.Message, "delivered: signalled") {
			return false
		}
	}
	return true
}

func eventMessage(in instance, key string) string {
	for _, e := range in.Events {
		if e.Key == key {
			return e.Message
		}
	}
	return ""
}

// answer is one callback of a burst as the marketplace saw it.
type answer struct {
	kind       string // "renewal", "newInstance" or "query"
	body       string
	key        string // the inbox key, for renewals
	code       string
	start, end time.Time
}

// TestPostgresRestartDuringCallbackBurst crashes the server's Postgres (a
// private cluster: the shared one serves the other tests) in the middle of
// a burst of callbacks, and starts it again a few seconds later. While it is
// down, the callbacks KooGallery may send only once (renewals) are spooled
// to disk and answered 000000, the others (newInstance, queryInstance)
// answered 000005 so that KooGallery retries them; nothing is answered
// 000000 that is not on disk. Once it is back, the spool is recorded,
// service resumes, and every callback answered 000000 is applied exactly
// once, the newest renewal last.
func TestPostgresRestartDuringCallbackBurst(t *testing.T) {
	t.Parallel()
	const instances = 4
	pg := testenv.StartPrivatePostgres(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	s := startStack(t, "DATABASE_URL="+pg.URL(), "FULFILLMENT_SPOOL_DIR="+spoolDir)
	orders := make([]string, instances)
	for i := range orders {
		orders[i] = fmt.Sprintf("PGBURST%02d", i)
		s.openAPI.AddOrder(yearlyOrder(fmt.Sprintf("PGBURSTNEW%02d", i)))
	}
	ids := s.buyActive(orders...)

	renewal := func(i, k int) (body, key string, expiry time.Time) {
		order := fmt.Sprintf("PGRENEW-%02d-%03d", i, k)
		expiry = time.Date(2030, 1, 1, 15, 59, 59, 0, time.UTC).AddDate(0, 0, k)
		return refreshBody(ids[i], order, "RENEWAL", koogallery.FormatTime(expiry)),
			"refreshInstance:" + ids[i] + ":" + order + ":" + order + "-000001", expiry
	}
	purchase := func(i int) string {
		order := fmt.Sprintf("PGBURSTNEW%02d", i)
		return newInstanceBody(order, order+"-000001", fmt.Sprintf("biz-pgburst-new-%02d", i))
	}

	var (
		mu      sync.Mutex
		answers []answer
		errs    []string
	)
	record := func(kind, body, key string) answer {
		start := time.Now()
		r, err := s.post(body)
		a := answer{kind: kind, body: body, key: key, code: r.ResultCode, start: start, end: time.Now()}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", body, err))
			return a
		}
		answers = append(answers, a)
		return a
	}
	count := func(match func(answer) bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range answers {
			if match(a) {
				n++
			}
		}
		return n
	}

	// Each instance gets a stream of renewals, each sent twice (KooGallery
	// resends when an answer is lost), and a poll of queryInstance. Once
	// Postgres is down a new purchase (newInstance) comes too, retried
	// until it is answered 000000. A stream ends a few renewals after
	// Postgres is back.
	var downAt, upAt atomic.Int64
	down, up := make(chan struct{}), make(chan struct{})
	var burst sync.WaitGroup
	for i := range ids {
		burst.Add(1)
		go func() {
			defer burst.Done()
			pace := time.NewTicker(100 * time.Millisecond)
			defer pace.Stop()
			bought, renewedSinceUp := false, 0
			for k := 1; k < 1000 && !(bought && renewedSinceUp >= 3); k++ {
				body, key, _ := renewal(i, k)
				for range 2 {
					a := record("renewal", body, key)
					if upAt.Load() != 0 && a.start.UnixNano() > upAt.Load() && a.code == "000000" {
						renewedSinceUp++
					}
				}
				record("query", queryBody(ids[i]), "")
				select {
				case <-down:
					if !bought {
						bought = record("newInstance", purchase(i), "").code == "000000"
					}
				default:
				}
				<-pace.C
			}
		}()
	}
	waitUntil(t, 30*time.Second, "the burst to be under way", func() int { return count(func(answer) bool { return true }) },
		func(n int) bool { return n >= 4*instances })
	pg.Stop()
	downAt.Store(time.Now().UnixNano())
	close(down)
	// Down for a few seconds, and long enough for every stream to have
	// been answered while down.
	whileDown := func(a answer) bool { return a.start.UnixNano() > downAt.Load() }
	waitUntil(t, 30*time.Second, "callbacks answered while Postgres is down", func() int { return count(whileDown) },
		func(n int) bool { return n >= 6*instances && time.Since(time.Unix(0, downAt.Load())) > 3*time.Second })
	// Each file is written before its answer, so every callback answered
	// before the snapshot starts is in it.
	snapshotAt := time.Now()
	spooled := spooledBodies(t, spoolDir)
	upAt.Store(time.Now().UnixNano())
	pg.Start()
	close(up)
	burst.Wait()

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, errs, "every callback is answered with a signed body")
	var kept, refused int
	newest := map[string]time.Time{} // instance → expiry of its newest renewal answered 000000
	keys := map[string][]string{}    // instance → the keys of its renewals answered 000000
	for _, a := range answers {
		require.Contains(t, []string{"000000", "000005"}, a.code, "%s answered %s", a.body, a.code)
		if a.start.UnixNano() > downAt.Load() && a.end.Before(snapshotAt) {
			// Certainly while Postgres was down.
			switch a.kind {
			case "renewal":
				require.Equal(t, "000000", a.code, "a renewal, sent once by KooGallery, is kept while Postgres is down")
				require.Positive(t, spooled[a.body], "a renewal answered 000000 while Postgres is down is on disk: %s", a.body)
				spooled[a.body]-- // one spool file per answer
				kept++
			default:
				require.Equal(t, "000005", a.code, "%s is retried by KooGallery, so it is refused while Postgres is down", a.kind)
				refused++
			}
		}
		if a.kind == "renewal" && a.code == "000000" {
			var req struct {
				InstanceID string `json:"instanceId"`
				ExpireTime string `json:"expireTime"`
			}
			require.NoError(t, json.Unmarshal([]byte(a.body), &req))
			expiry, err := koogallery.ParseTime(req.ExpireTime)
			require.NoError(t, err)
			if expiry.After(newest[req.InstanceID]) {
				newest[req.InstanceID] = expiry
			}
			keys[req.InstanceID] = append(keys[req.InstanceID], a.key)
		}
	}
	require.Positive(t, kept, "renewals were spooled while Postgres was down")
	require.Positive(t, refused, "retried callbacks were refused while Postgres was down")
	t.Logf("%d callbacks answered; while Postgres was down (%s): %d renewals spooled, %d retried callbacks refused",
		len(answers), time.Duration(upAt.Load()-downAt.Load()).Round(time.Millisecond), kept, refused)

	waitUntil(t, 30*time.Second, "the spool to be recorded", func() map[string]int { return spooledBodies(t, spoolDir) },
		func(m map[string]int) bool { return len(m) == 0 })
	for i, id := range ids {
		done := s.waitFor(id, "carrying its newest renewal, every callback applied", func(in instance) bool {
			if in.ExpireTime == nil || !in.ExpireTime.Equal(newest[id]) || !allDelivered(in) {
				return false
			}
			for _, key := range keys[id] {
				if in.events("callback/"+key) == 0 {
					return false
				}
			}
			return true
		})
		require.Equal(t, "active", done.State)
		for _, key := range keys[id] {
			require.Equal(t, 1, done.events(key), "%s recorded once", key)
			require.Equal(t, 1, done.events("callback/"+key), "%s applied once", key)
		}
		// The purchase refused while Postgres was down went through on
		// KooGallery's retry.
		newID := fmt.Sprintf("biz-pgburst-new-%02d", i)
		s.waitForAppInfo(newID)
		s.waitState(newID, "active")
	}
}

// spooledBodies reads the callbacks waiting in the spool: body → files.
func spooledBodies(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	require.NoError(t, err)
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // recorded meanwhile
		}
		require.NoError(t, err)
		var f struct {
			Body string `json:"body"`
		}
		require.NoError(t, json.Unmarshal(raw, &f), "spool file %s", e.Name())
		out[f.Body]++
	}
	return out
}

// TestProvisionerOutageParksThenRetrySignal: the merchant's application
// answers 503 for longer than the server retries it (PROVISIONER_RETRY_LIMIT),
// so the instance parks, visibly, and nothing more happens to it; once the
// application is back an operator's retry signal provisions it, once.
func TestProvisionerOutageParksThenRetrySignal(t *testing.T) {
	t.Parallel()
	app := newMerchantApp(t, "app-key-outage", false)
	app.unavailable.Store(true)
	s := startStack(t, "PROVISIONER="+app.URL(), "PROVISIONER_KEY=app-key-outage", "PROVISIONER_RETRY_LIMIT=5s")
	order := mockapi.OrderPeriodYearNew
	id := s.produce(newInstanceBody(order, order+"-000001", "biz-parked-outage")).InstanceID

	s.waitState(id, "parked")
	var parked struct {
		Parked struct {
			Step  string `json:"step"`
			Error string `json:"error"`
		} `json:"parked"`
	}
	s.adminGet("/v1/instances/"+id, &parked)
	require.Equal(t, "provision", parked.Parked.Step)
	require.Contains(t, parked.Parked.Error, "deploying, back in a moment", "the application's own words are shown")
	require.GreaterOrEqual(t, len(app.provisionCalls()), 2, "the application was retried before the instance parked")
	require.Empty(t, app.createdTenants())
	require.Equal(t, "000004", s.produce(queryBody(id)).ResultCode, "the buyer is told provisioning goes on")

	app.unavailable.Store(false)
	require.Equal(t, http.StatusAccepted, s.signal(id, "retry", `{"reason":"application deployed"}`))
	s.waitForAppInfo(id)
	active := s.waitState(id, "active")
	tenants := app.createdTenants()
	require.Len(t, tenants, 1, "exactly one tenant exists")
	require.Equal(t, tenants["provision:"+id].FrontEndURL, active.AppInfo.FrontEndURL)
	for _, key := range app.provisionCalls() {
		require.Equal(t, "provision:"+id, key)
	}
	require.Equal(t, 1, active.events("provisioning/done"))
	d := s.details(id)
	require.Len(t, d.OperatorActions, 1)
	require.Equal(t, "retry", d.OperatorActions[0].Action)
	require.Equal(t, "e2e-operator", d.OperatorActions[0].Actor)
	require.Equal(t, "application deployed", d.OperatorActions[0].Reason)
}

// adminGet decodes an admin API answer into out.
func (s *stack) adminGet(path string, out any) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+path, nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(out))
}

// TestSpooledRenewalAndRefundOnTwoReplicas: two replicas, the database
// down. A renewal (+90 days) reaches replica 1 and is spooled there; its
// refund (UNSUBSCRIBE_RENEWAL_PERIOD, +20 days) reaches replica 2 and is
// spooled there. Replica 1 is stopped before the database comes back, so
// replica 2 records the refund first and replica 1, restarted, records the
// renewal after it. The expiry follows what the marketplace sent last, the
// refund, not what was recorded last.
func TestSpooledRenewalAndRefundOnTwoReplicas(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPrivatePostgres(t)
	spool1, spool2 := filepath.Join(t.TempDir(), "spool-1"), filepath.Join(t.TempDir(), "spool-2")
	s := startStack(t, "DATABASE_URL="+pg.URL(), "FULFILLMENT_SPOOL_DIR="+spool1)
	port2 := testenv.FreePort(t)
	replica2 := "http://127.0.0.1:" + strconv.Itoa(port2)
	env2 := append(slices.Clone(s.env), "HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port2), "FULFILLMENT_SPOOL_DIR="+spool2)
	proc2 := startProcess(t, "replica-2", env2, s.logs, replica2+"/healthz", "api")
	t.Cleanup(func() { stopProcess(proc2) })

	id := s.buyActive("TWOREPLICAS01")[0]
	expiry := *s.instance(id).ExpireTime
	renewedTo, refundedTo := expiry.AddDate(0, 0, 90), expiry.AddDate(0, 0, 20)

	pg.Stop()
	renewal := refreshBody(id, "RENEW90", "RENEWAL", koogallery.FormatTime(renewedTo))
	r, err := s.post(renewal)
	require.NoError(t, err)
	require.Equal(t, "000000", r.ResultCode, "spooled on replica 1: %s", r.raw)
	time.Sleep(20 * time.Millisecond) // the refund is signed later
	refund := refreshBody(id, "REFUND70", "UNSUBSCRIBE_RENEWAL_PERIOD", koogallery.FormatTime(refundedTo))
	r, err = (&stack{baseURL: replica2}).post(refund)
	require.NoError(t, err)
	require.Equal(t, "000000", r.ResultCode, "spooled on replica 2: %s", r.raw)
	require.Len(t, spooledBodies(t, spool1), 1)
	require.Len(t, spooledBodies(t, spool2), 1)

	s.stopServer()
	pg.Start()
	waitUntil(t, 60*time.Second, "replica 2 to record the refund", func() int { return len(spooledBodies(t, spool2)) },
		func(n int) bool { return n == 0 })
	s.startServer()
	waitUntil(t, 60*time.Second, "replica 1 to record the renewal", func() int { return len(spooledBodies(t, spool1)) },
		func(n int) bool { return n == 0 })

	renewalKey := "callback/refreshInstance:" + id + ":RENEW90:RENEW90-000001"
	done := s.waitFor(id, "both applied", func(in instance) bool {
		return in.events("callback/refreshInstance:"+id+":REFUND70:REFUND70-000001") == 1 && in.events(renewalKey) == 1
	})
	require.True(t, done.ExpireTime.Equal(refundedTo), "expiry %s, want the refund's %s", done.ExpireTime, refundedTo)
	require.Contains(t, eventMessage(done, renewalKey), "was sent before the expiry change already applied")
	// The workflow received them in the order they were recorded.
	order := map[string]int{}
	for i, e := range done.Events {
		if _, seen := order[e.Key]; !seen {
			order[e.Key] = i
		}
	}
	require.Less(t, order["callback/refreshInstance:"+id+":REFUND70:REFUND70-000001"], order[renewalKey],
		"the refund was recorded, and applied, first")
}
