package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// TestSignatureFormsAndAmbiguousBodies: over HTTP, a body whose members are
// not sorted is accepted signed over its canonical form (as Huawei's sample
// verifies) and signed over its raw bytes; a member added after signing, a
// second activity or an ACTIVITY is refused and records nothing.
func TestSignatureFormsAndAmbiguousBodies(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	order, line := mockapi.OrderPeriodYearNew, mockapi.OrderPeriodYearNew+"-000001"
	const id = "biz-unsorted-5c1f"
	unsorted := fmt.Sprintf(`{"businessId":%q,"orderLineId":%q,"orderId":%q,"activity":"newInstance"}`, id, line, order)

	first := s.produceSigned(koogallery.FormCanonical, unsorted)
	require.Equal(t, "000000", first.ResultCode, string(first.raw))
	require.Equal(t, id, first.InstanceID)
	again := s.produceSigned(koogallery.FormRaw, unsorted)
	require.Equal(t, "000000", again.ResultCode, string(again.raw))
	require.Equal(t, id, again.InstanceID, "the same purchase, signed the other way")
	// Active, and the newInstance callback applied: the timeline is
	// settled before it is counted.
	settled := s.waitFor(id, "active with its newInstance applied", func(i instance) bool {
		return i.State == "active" && i.events("callback/newInstance:"+order+":"+line) == 1
	})
	events := len(settled.Events)

	// A FREEZE signed, then sent with a member added: refused either way.
	signedFreeze := fmt.Sprintf(`{"status":"FREEZE","instanceId":%q,"activity":"updateInstanceStatus"}`, id)
	tampered := fmt.Sprintf(`{"status":"FREEZE","instanceId":%q,"activity":"updateInstanceStatus","testFlag":"1"}`, id)
	for _, form := range []koogallery.SignedForm{koogallery.FormCanonical, koogallery.FormRaw} {
		query, err := koogallery.SignedQueryAs(form, accessKey, []byte(signedFreeze), time.Now())
		require.NoError(t, err)
		r := s.produceQuery(query, tampered)
		require.Equal(t, "000001", r.ResultCode, string(r.raw))
	}

	// Validly signed, but read differently by Java and by Go: refused.
	for _, body := range []string{
		fmt.Sprintf(`{"activity":"queryInstance","instanceId":%q,"activity":"releaseInstance"}`, id),
		fmt.Sprintf(`{"activity":"queryInstance","ACTIVITY":"releaseInstance","instanceId":%q}`, id),
		fmt.Sprintf(`{"activity":"updateInstanceStatus","instanceId":%q,"status":"UNFREEZE","STATUS":"FREEZE"}`, id),
		`{"activity":"newInstance","ACTIVITY":"releaseInstance","orderId":"CSNEVER","orderLineId":"CSNEVER-000001","businessId":"biz-never-9e0a"}`,
	} {
		r := s.produceSigned(koogallery.FormCanonical, body)
		require.Equal(t, "000002", r.ResultCode, string(r.raw))
		require.Contains(t, r.ResultMsg, "ambiguous")
	}

	// Nothing of it was recorded or applied.
	require.Equal(t, "active", s.instance(id).State)
	require.Len(t, s.instance(id).Events, events)
	req, err := http.NewRequest(http.MethodGet, s.baseURL+"/v1/instances/biz-never-9e0a", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	metrics := s.metrics()
	require.Contains(t, metrics, `fulfillment_signature_checks_total{form="canonical",interface="basic"} 5`)
	require.Contains(t, metrics, `fulfillment_signature_checks_total{form="raw",interface="basic"} 1`)
	require.Contains(t, metrics, `fulfillment_signature_checks_total{form="none",interface="basic"} 2`)
}
