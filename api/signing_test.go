package api_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/api"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/workflows"
)

// signedAs signs body over the given form, as a marketplace that signs it
// would.
func signedAs(t testing.TB, form koogallery.SignedForm, body []byte) url.Values {
	t.Helper()
	q, err := koogallery.SignedQueryAs(form, testAccessKey, body, time.Now())
	require.NoError(t, err)
	return q
}

// TestProduceAcceptsEitherSignedForm: a body whose members are not sorted
// is accepted signed over its canonical form (as Huawei's sample verifies)
// and signed over its raw bytes, and /metrics tells which form matched.
func TestProduceAcceptsEitherSignedForm(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBacklogMetric())
	for i, form := range []koogallery.SignedForm{koogallery.FormCanonical, koogallery.FormRaw} {
		id := fmt.Sprintf("inst-form-%d", i)
		orderID, lineID := orderOf(id)
		body := fmt.Appendf(nil, `{"testFlag":"1","businessId":%q,"orderLineId":%q,"orderId":%q,"activity":"newInstance"}`, id, lineID, orderID)
		canonical, err := koogallery.CanonicalBody(body, koogallery.BasicCanonical)
		require.NoError(t, err)
		require.NotEqual(t, string(canonical), string(body), "the body must not be its own canonical form")

		a := h.produceQuery(t, signedAs(t, form, body), body)
		requireResult(t, a, "000000", msgSuccess)
		require.Equal(t, id, a.InstanceID)
		require.Len(t, h.callbacksOf(t, id), 1, "signed %s: recorded once", form)

		// The renewal too, unsorted and signed the same way.
		renewal := fmt.Appendf(nil, `{"expireTime":"20301124023618256","instanceId":%q,"orderLineId":"CSrenew-%d-000001","orderId":"CSrenew-%d","scene":"RENEWAL","activity":"refreshInstance"}`, id, i, i)
		requireResult(t, h.produceQuery(t, signedAs(t, form, renewal), renewal), "000000", msgSuccess)
		require.Len(t, h.callbacksOf(t, id), 2)
	}

	// Signed over neither form.
	body := queryBody(t, "inst-form-0")
	q := signedAs(t, koogallery.FormRaw, body)
	q.Set("signature", strings.Repeat("0", 64))
	requireResult(t, h.produceQuery(t, q, body), "000001", msgAuthFailed)

	status, raw := h.get(t, "/metrics", "")
	require.Equal(t, 200, status)
	for _, line := range []string{
		`fulfillment_signature_checks_total{form="canonical",interface="basic"} 2`,
		`fulfillment_signature_checks_total{form="raw",interface="basic"} 2`,
		`fulfillment_signature_checks_total{form="none",interface="basic"} 1`,
	} {
		require.Contains(t, string(raw), line)
	}
}

// TestProduceRefusesTamperedOrAmbiguousBodies: what was signed is what is
// applied. A member added after signing breaks either signature (000001);
// a body whose members repeat or differ only in case is refused even when
// its signature is valid (000002), because Go and Java would read it
// differently; and none of them records anything.
func TestProduceRefusesTamperedOrAmbiguousBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const id = "inst-ambiguous"
	h.allocate(t, id)
	h.save(t, instance(id, "active"))
	signedBody := fmt.Appendf(nil, `{"status":"FREEZE","instanceId":%q,"activity":"updateInstanceStatus"}`, id)

	for _, form := range []koogallery.SignedForm{koogallery.FormCanonical, koogallery.FormRaw} {
		t.Run("member added after signing, "+string(form), func(t *testing.T) {
			q := signedAs(t, form, signedBody)
			tampered := fmt.Appendf(nil, `{"status":"FREEZE","instanceId":%q,"activity":"updateInstanceStatus","testFlag":"1"}`, id)
			before := h.effects(t)
			requireResult(t, h.produceQuery(t, q, tampered), "000001", msgAuthFailed)
			require.Equal(t, before, h.effects(t))
		})
	}

	for name, body := range map[string]string{
		"a second activity":   `{"activity":"queryInstance","instanceId":"%[1]s","activity":"releaseInstance"}`,
		"an ACTIVITY":         `{"activity":"queryInstance","ACTIVITY":"releaseInstance","instanceId":"%[1]s"}`,
		"a second status":     `{"activity":"updateInstanceStatus","instanceId":"%[1]s","status":"UNFREEZE","status":"FREEZE"}`,
		"instanceId twice":    `{"activity":"releaseInstance","instanceId":"other","InstanceId":"%[1]s"}`,
		"nested repeat":       `{"activity":"changeInstanceCheck","instanceId":"%[1]s","productInfo":{"skuCode":"a","skuCode":"b"}}`,
		"a repeat in a retry": `{"activity":"releaseInstance","instanceId":"%[1]s","orderId":"O","orderId":"P"}`,
	} {
		for _, form := range []koogallery.SignedForm{koogallery.FormCanonical, koogallery.FormRaw} {
			t.Run(name+", signed "+string(form), func(t *testing.T) {
				raw := fmt.Appendf(nil, body, id)
				before := h.effects(t)
				a := h.produceQuery(t, signedAs(t, form, raw), raw)
				requireResult(t, a, "000002", "")
				require.Contains(t, a.ResultMsg, "request body is ambiguous")
				require.Equal(t, before, h.effects(t), "an ambiguous body records and signals nothing")
			})
		}
	}

	// A name in another case alone is not the field: Java reads no
	// testFlag here, so this is the real FREEZE, recorded as such.
	body := fmt.Appendf(nil, `{"TestFlag":"1","status":"FREEZE","instanceId":%q,"activity":"updateInstanceStatus"}`, id)
	requireResult(t, h.produceQuery(t, signedAs(t, koogallery.FormCanonical, body), body), "000000", msgSuccess)
	cbs := h.callbacksOf(t, id)
	require.Equal(t, "updateInstanceStatus", cbs[len(cbs)-1].Activity)
	require.False(t, cbs[len(cbs)-1].Debug)
}

// TestProduceAnswersWithinTheBudget: whatever hangs, the marketplace gets
// an answer within 4.5 s (contract §9), one that makes it come back.
func TestProduceAnswersWithinTheBudget(t *testing.T) {
	t.Parallel()
	const limit = 4500 * time.Millisecond
	h := newHarness(t)
	const id = "inst-budget"
	h.allocate(t, id)
	h.save(t, instance(id, "active"))

	t.Run("the application never answers a change check", func(t *testing.T) {
		h.temporal.setUpdate(workflows.ChangeCheckResult{}, nil, nil)
		h.temporal.setHang(true)
		defer h.temporal.setHang(false)
		start := time.Now()
		a := h.produce(t, changeCheckBody(t, id))
		elapsed := time.Since(start)
		requireResult(t, a, "000005", "the merchant's application did not answer in time; please retry")
		require.Less(t, elapsed, limit)
		require.GreaterOrEqual(t, elapsed, api.AnswerBudget-100*time.Millisecond, "it waited for the application as long as it could")
	})

	t.Run("the database stalls", func(t *testing.T) {
		// Another session holds the callbacks table: recording waits on
		// it, and the answer must not.
		tx, err := h.raw.BeginTx(context.Background(), nil)
		require.NoError(t, err)
		_, err = tx.Exec(`LOCK TABLE callbacks IN ACCESS EXCLUSIVE MODE`)
		require.NoError(t, err)
		start := time.Now()
		a := h.produce(t, statusBody(t, id, "FREEZE"))
		elapsed := time.Since(start)
		require.NoError(t, tx.Rollback())
		requireResult(t, a, "000005", msgUnavailable)
		require.Less(t, elapsed, limit)

		// The marketplace comes back: the retry is recorded.
		requireResult(t, h.produce(t, statusBody(t, id, "FREEZE")), "000000", msgSuccess)
		cbs := h.callbacksOf(t, id)
		require.Equal(t, "updateInstanceStatus", cbs[len(cbs)-1].Activity)
	})
}
