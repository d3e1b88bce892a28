package api_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

const testKitKey = "kit-5b2e0c4f-1d8a-4f7e-9c3b"

// The kit vector of contract §12.5: key abcde, this timestamp and nonce,
// this body as sent, signed over its canonical form or its raw bytes.
const (
	vectorKitKey       = "abcde"
	vectorKitTimestamp = "1680508066618"
	vectorKitNonce     = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA"
	vectorTenantSync   = `{"instanceId":"huaiweitest123456","orderId":"CS1906666666ABCDE","tenantId":"68cbc86abc2018ab880d92f36422fa0e","tenantCode":"huawei","name":"huaiweitest","domainName":"https://example.tenantaccount.com","flag":1,"testFlag":0,"timeStamp":"20220413093539534"}`
	vectorSignCanon    = "079D3FFB40C04DA4C5A6353716F27BE106A8539C000AADD2677207B5CFD230DC"
	vectorSignRaw      = "F891BBC2112CE481FB2C2723D0D44E66E1BC85941109FAF92F70C2985C3A36AA"
)

// kitKeyPair is one merchant key pair for every test (generating a 3072-bit
// key takes a while).
var kitKeyPair = sync.OnceValues(func() (*koogallery.KitKeys, *rsa.PublicKey) {
	private, public, err := koogallery.GenerateKitKey(3072)
	if err != nil {
		panic(err)
	}
	keys, err := koogallery.ParseKitKeys([]string{"kit.pem"}, [][]byte{private})
	if err != nil {
		panic(err)
	}
	block, _ := pem.Decode(public)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		panic(err)
	}
	return keys, pub.(*rsa.PublicKey)
})

// kit posts a kit call with the given headers and returns the answer,
// checked to be signed with key.
func (h *harness) kit(t testing.TB, key, path string, header http.Header, body []byte) produceAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	for name, values := range header {
		req.Header[name] = values
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	answer := requireAnswerSignedWith(t, key, resp.StatusCode, resp.Header, raw)
	h.settle(t)
	return answer
}

// kitSigned posts body to the kit's operation, signed now with the test
// key over its canonical form.
func (h *harness) kitSigned(t testing.TB, op string, body []byte) produceAnswer {
	t.Helper()
	header, err := koogallery.SignedKitHeaders(koogallery.FormCanonical, testKitKey, body, time.Now())
	require.NoError(t, err)
	return h.kit(t, testKitKey, "/produce/produceAPI/v2/"+op, header, body)
}

func kitHeaders(sign, timestamp, nonce string) http.Header {
	h := http.Header{}
	for name, v := range map[string]string{"x-sign": sign, "x-timestamp": timestamp, "x-nonce": nonce} {
		if v != "" {
			h.Set(name, v)
		}
	}
	return h
}

func kitBody(t testing.TB, members map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(members)
	require.NoError(t, err)
	return b
}

func tenantSyncBody(t testing.TB, instanceID, tenantID string, flag int) []byte {
	return kitBody(t, map[string]any{"instanceId": instanceID, "orderId": "CS-" + instanceID, "tenantId": tenantID,
		"tenantCode": "acme", "name": "Acme", "domainName": "https://acme.tenantaccount.example", "flag": flag,
		"testFlag": 0, "timeStamp": "20261204101010123"})
}

// TestKitAcceptsTheContractVectors: the contract §12.5 vector is accepted signed
// over its canonical form and over its raw bytes, on both routes, and the
// answer carries a Body-Sign made with the kit's key.
func TestKitAcceptsTheContractVectors(t *testing.T) {
	t.Parallel()
	signedAt := time.UnixMilli(1680508066618)
	for _, tc := range []struct{ name, path, sign, form string }{
		{"canonical", "/produce/produceAPI/v2/tenantSync", vectorSignCanon, "canonical"},
		{"raw", "/produceAPI/v2/tenantSync", vectorSignRaw, "raw"},
		{"lower-case hex", "/produce/produceAPI/v2/tenantSync", strings.ToLower(vectorSignCanon), "canonical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, withKit(vectorKitKey, nil), withClock(func() time.Time { return signedAt.Add(2 * time.Second) }))

			a := h.kit(t, vectorKitKey, tc.path, kitHeaders(tc.sign, vectorKitTimestamp, vectorKitNonce), []byte(vectorTenantSync))

			requireResult(t, a, "000000", msgSuccess)
			// The instance is not the server's: recorded as a notice, nothing applied.
			require.Equal(t, int64(1), h.effects(t).Callbacks)
			require.Empty(t, h.signaller.attempts())
			// The metrics say which form the marketplace signed.
			status, metrics := h.get(t, "/metrics", "")
			require.Equal(t, http.StatusOK, status)
			require.Contains(t, string(metrics), `fulfillment_signature_checks_total{form="`+tc.form+`",interface="kit"} 1`)
			require.Contains(t, string(metrics), `fulfillment_callbacks_total{activity="kit:tenantSync",result_code="000000"} 1`)
		})
	}
}

// TestKitRefusesWhatIsNotAuthentic: a wrong or missing header, a stale
// timestamp, an unknown operation or an unreadable body is refused with a
// specific code and changes nothing.
func TestKitRefusesWhatIsNotAuthentic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withKit(testKitKey, nil))
	h.allocate(t, "kit-refusals")
	body := tenantSyncBody(t, "kit-refusals", "tenant-1", 1)
	now := time.Now()
	ts := now.UnixMilli()
	good, err := koogallery.SignedKitHeaders(koogallery.FormRaw, testKitKey, body, now)
	require.NoError(t, err)
	before := h.effects(t)

	for _, tc := range []struct {
		name   string
		header http.Header
		op     string
		body   []byte
		code   string
	}{
		{"wrong x-sign", kitHeaders(koogallery.SignKit("another-key", "n-1", good.Get("x-timestamp"), body), good.Get("x-timestamp"), "n-1"), "tenantSync", body, "000001"},
		{"x-sign over another body", kitHeaders(good.Get("x-sign"), good.Get("x-timestamp"), good.Get("x-nonce")), "tenantSync", tenantSyncBody(t, "kit-refusals", "tenant-2", 1), "000001"},
		{"no x-sign", kitHeaders("", good.Get("x-timestamp"), good.Get("x-nonce")), "tenantSync", body, "000002"},
		{"no x-timestamp", kitHeaders(good.Get("x-sign"), "", good.Get("x-nonce")), "tenantSync", body, "000002"},
		{"no x-nonce", kitHeaders(good.Get("x-sign"), good.Get("x-timestamp"), ""), "tenantSync", body, "000002"},
		{"stale", kitHeaders(koogallery.SignKit(testKitKey, "n-2", "1680508066618", body), "1680508066618", "n-2"), "tenantSync", body, "000001"},
		{"unknown operation", kitHeaders(koogallery.SignKit(testKitKey, "n-3", itoa(ts), body), itoa(ts), "n-3"), "userSync", body, "000002"},
		{"no tenantId", kitHeaders(koogallery.SignKit(testKitKey, "n-4", itoa(ts), []byte(`{"instanceId":"kit-refusals","flag":1}`)), itoa(ts), "n-4"),
			"tenantSync", []byte(`{"instanceId":"kit-refusals","flag":1}`), "000002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := h.kit(t, testKitKey, "/produce/produceAPI/v2/"+tc.op, tc.header, tc.body)
			require.Equal(t, tc.code, a.ResultCode, "answer %s", a.Raw)
			require.Equal(t, before, h.effects(t), "a refused call records nothing")
		})
	}
	// The genuine call still goes through: no refusal claimed its nonce.
	a := h.kit(t, testKitKey, "/produce/produceAPI/v2/tenantSync", good, body)
	requireResult(t, a, "000000", msgSuccess)
	// Sent again, it is a replay.
	after := h.effects(t)
	a = h.kit(t, testKitKey, "/produce/produceAPI/v2/tenantSync", good, body)
	requireResult(t, a, "000001", msgAuthFailed)
	require.Equal(t, after, h.effects(t))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestKitWithoutItsKeyRefusesEverything: a server without
// KOOGALLERY_KIT_ACCESS_KEY authenticates no kit call.
func TestKitWithoutItsKeyRefusesEverything(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := tenantSyncBody(t, "kit-nokey", "tenant-1", 1)
	header, err := koogallery.SignedKitHeaders(koogallery.FormCanonical, "", body, time.Now())
	if err != nil { // signing with no key may be refused: sign with any key
		header, err = koogallery.SignedKitHeaders(koogallery.FormCanonical, "guess", body, time.Now())
		require.NoError(t, err)
	}
	a := h.kit(t, testAccessKey, "/produce/produceAPI/v2/tenantSync", header, body)
	requireResult(t, a, "000001", msgAuthFailed)
	require.Equal(t, int64(0), h.effects(t).Callbacks)
}

// TestKitApplicationSyncSealsTheSecret: the clientSecret is decrypted with
// the merchant's private key, kept only sealed, and handed to the
// instance's workflow; a secret no key decrypts is answered 000005 and
// records nothing.
func TestKitApplicationSyncSealsTheSecret(t *testing.T) {
	t.Parallel()
	keys, pub := kitKeyPair()
	h := newHarness(t, withKit(testKitKey, keys))
	h.allocate(t, "kit-app")
	const secret = "s3cr3t-client-secret-0001"
	encrypted, err := koogallery.EncryptClientSecret(pub, secret)
	require.NoError(t, err)
	body := kitBody(t, map[string]any{"instanceId": "kit-app", "tenantId": "tenant-1", "appId": "app-001",
		"clientId": "client-001", "clientSecret": encrypted, "flag": 1, "testFlag": 0, "timeStamp": "20261204101010123"})

	a := h.kitSigned(t, "applicationSync", body)

	requireResult(t, a, "000000", msgSuccess)
	cbs := h.callbacksOf(t, "kit-app")
	require.Len(t, cbs, 2)
	require.Equal(t, "applicationSync", cbs[1].Activity)
	payload, sealed, err := h.db.Callbacks.Payload(t.Context(), cbs[1].Seq)
	require.NoError(t, err)
	require.NotContains(t, string(payload), secret)
	require.NotContains(t, sealed, secret)
	opened, err := activities.Sealer{AccessKey: testAccessKey}.OpenSecret(sealed)
	require.NoError(t, err)
	require.Equal(t, secret, opened)
	var sync activities.DirectorySync
	require.NoError(t, json.Unmarshal(payload, &sync))
	require.Equal(t, "app-001", sync.App.AppID)
	require.Contains(t, sync.DecryptedWith, "kit.pem")
	require.Len(t, h.signaller.delivered(), 1, "the sync went to the instance's workflow")

	// Encrypted for another key: nothing decrypts it.
	otherPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	wrong, err := koogallery.EncryptClientSecret(&otherPriv.PublicKey, secret)
	require.NoError(t, err)
	before := h.effects(t)
	a = h.kitSigned(t, "applicationSync", kitBody(t, map[string]any{"instanceId": "kit-app", "tenantId": "tenant-1",
		"appId": "app-002", "clientId": "client-002", "clientSecret": wrong, "flag": 1, "testFlag": 0, "timeStamp": "20261204101010123"}))
	require.Equal(t, "000005", a.ResultCode)
	require.Contains(t, a.ResultMsg, "clientSecret cannot be decrypted")
	require.Equal(t, before, h.effects(t))
}

// TestKitRepeatedAddIsOneSync: the same tenantSync sent again (a person
// retrying) is one sync, counted, applied once.
func TestKitRepeatedAddIsOneSync(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withKit(testKitKey, nil))
	h.allocate(t, "kit-twice")
	body := tenantSyncBody(t, "kit-twice", "tenant-1", 1)

	requireResult(t, h.kitSigned(t, "tenantSync", body), "000000", msgSuccess)
	requireResult(t, h.kitSigned(t, "tenantSync", body), "000000", msgSuccess)

	cbs := h.callbacksOf(t, "kit-twice")
	require.Len(t, cbs, 2)
	require.Equal(t, 1, cbs[1].Redeliveries)
	require.Len(t, h.signaller.delivered(), 1)
}

// TestKitProbeCreatesNothing: the seller's credential probe (empty
// instanceId) is verified, recorded and answered, and provisions nothing.
func TestKitProbeCreatesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withKit(testKitKey, nil))
	before := h.effects(t)
	for _, op := range []string{"tenantSync", "authSync", "allOrgSync", "singleOrgSync"} {
		body := map[string]any{"instanceId": "", "orderId": "", "tenantId": "probe", "testFlag": 0, "timeStamp": "20261204101010123"}
		switch op {
		case "tenantSync":
			body["tenantCode"], body["name"], body["domainName"], body["flag"] = "p", "probe", "https://p.example", 1
		case "authSync":
			body["appId"], body["currentSyncTime"], body["flag"] = "app", "20261204101010123", 1
			body["userList"] = []map[string]any{{"userName": "u", "name": "u", "orgCode": "D1", "role": "user", "enable": "true"}}
		case "allOrgSync":
			body["orgInfoList"] = `[{orgCode:"D1", orgName:"产品部", parentCode:"" }]`
		case "singleOrgSync":
			body["orgCode"], body["orgName"], body["flag"] = "D1", "x", 1
		}
		requireResult(t, h.kitSigned(t, op, kitBody(t, body)), "000000", msgSuccess)
	}
	after := h.effects(t)
	require.Equal(t, before.InstanceKeys, after.InstanceKeys)
	require.Equal(t, before.Callbacks+4, after.Callbacks, "each probe is recorded")
	require.Empty(t, h.signaller.attempts(), "nothing is applied")
}

// kitV1 posts a V1 kit call with its authToken header (computed with key)
// and checks that the answer is signed with answerKey.
func (h *harness) kitV1(t testing.TB, key, answerKey, path string, body []byte) produceAnswer {
	t.Helper()
	header := http.Header{}
	if key != "" {
		token, err := koogallery.SignV1Kit(key, body)
		require.NoError(t, err)
		header.Set(koogallery.HeaderV1KitAuthToken, token)
	}
	return h.kit(t, answerKey, path, header, body)
}

// TestKitV1 (contract §12.10): the V1 kit's syncs, on the sub-paths without
// /v2 under both routes, are authenticated by the authToken header with the
// V1 key and answered with it; their V1 shapes (userList and orgInfo as
// strings, a department's name) are read; a sync sent again is recorded
// once; a wrong token, or a V2 signature on a V1 path, records nothing.
func TestKitV1(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withKit(testKitKey, nil), withV1Key(testV1Key))
	h.allocate(t, "kit-v1")

	tenant := tenantSyncBody(t, "kit-v1", "tenant-1", 1)
	requireResult(t, h.kitV1(t, testV1Key, testV1Key, "/produce/produceAPI/tenantSync", tenant), "000000", msgSuccess)
	requireResult(t, h.kitV1(t, testV1Key, testV1Key, "/produceAPI/tenantSync", tenant), "000000", msgSuccess)
	users := kitBody(t, map[string]any{"instanceId": "kit-v1", "orderId": "CS-kit-v1", "tenantId": "tenant-1", "appId": "app-1",
		"flag": 1, "testFlag": 0, "timeStamp": "20261204101010123", "currentSyncTime": "20261204101010123",
		"userList": `[{"userName":"zhang","name":"张三","orgCode":"D1","role":"admin","enable":"true"}]`})
	requireResult(t, h.kitV1(t, testV1Key, testV1Key, "/produce/produceAPI/authSync", users), "000000", msgSuccess)
	orgs := kitBody(t, map[string]any{"instanceId": "kit-v1", "orderId": "CS-kit-v1", "tenantId": "tenant-1",
		"testFlag": 0, "timeStamp": "20261204101010123", "orgInfo": `[{"orgCode":"D1","name":"产品部","parentCode":""}]`})
	requireResult(t, h.kitV1(t, testV1Key, testV1Key, "/produce/produceAPI/allOrgSync", orgs), "000000", msgSuccess)

	cbs := h.callbacksOf(t, "kit-v1")
	require.Len(t, cbs, 4, "the tenant sync twice is one row, then the users and the departments")
	require.Equal(t, 1, cbs[1].Redeliveries)
	require.Len(t, h.signaller.delivered(), 3)

	before := h.effects(t)
	requireResult(t, h.kitV1(t, "not-the-v1-key", testV1Key, "/produce/produceAPI/tenantSync", tenant), "000001", msgAuthFailed)
	requireResult(t, h.kitV1(t, "", testV1Key, "/produceAPI/tenantSync", tenant), "000001", msgAuthFailed)
	v2, err := koogallery.SignedKitHeaders(koogallery.FormCanonical, testKitKey, tenant, time.Now())
	require.NoError(t, err)
	requireResult(t, h.kit(t, testV1Key, "/produce/produceAPI/tenantSync", v2, tenant), "000001", msgAuthFailed)
	requireResult(t, h.kitV1(t, testV1Key, testV1Key, "/produce/produceAPI/unknownSync", tenant), "000002", "unknown kit operation")
	require.Equal(t, before, h.effects(t), "a refused call changes nothing")
	// The V2 routes are unchanged.
	requireResult(t, h.kitSigned(t, "tenantSync", tenantSyncBody(t, "kit-v1", "tenant-2", 1)), "000000", msgSuccess)
}

// TestKitV1WithoutItsKey: a server without a V1 key refuses every V1 kit
// call (signing the answer with the basic key).
func TestKitV1WithoutItsKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withKit(testKitKey, nil))
	requireResult(t, h.kitV1(t, testV1Key, testAccessKey, "/produce/produceAPI/tenantSync",
		tenantSyncBody(t, "kit-v1", "tenant-1", 1)), "000001", msgAuthFailed)
}
