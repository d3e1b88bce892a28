package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// FuzzProduceV1: the fuzzer writes a V1 call's parameters (a query string
// without timeStamp and authToken); the harness signs them as the
// marketplace does. The same call with another key's authToken is 000001
// and changes nothing. Signed, it is answered HTTP 200 with a body signed
// with the V1 key; never 000005 but for a newInstance whose tenant is not
// ready (nothing is down); parameters the verifier cannot sign as the
// marketplace would (no name, not UTF-8) are 000001, a NUL is 000002, a
// call the parser refuses is 000002 with the parser's message, an unknown
// instance 000003, each changing nothing; an accepted callback is
// recorded exactly once; queryInstance only reads.
func FuzzProduceV1(f *testing.F) {
	h := newHarness(f, withV1Key(testV1Key))
	h.allocate(f, fzActive)
	h.save(f, instance(fzActive, "active"))
	h.saveCredentials(f, fzActive, "fz-admin", "Fz-Pa55word")
	for _, id := range []string{fzActive, "fz-nobody"} {
		for _, q := range []string{
			"activity=queryInstance&instanceId=" + id,
			"activity=refreshInstance&orderId=CSr&instanceId=" + id + "&expireTime=20301231000000&orderAmount=-1.5",
			"activity=refreshInstance&orderId=CSr&instanceId=" + id + "&expireTime=20301231000000&trialToFormal=1",
			"activity=expireInstance&orderId=CSfz&instanceId=" + id,
			"activity=instanceStatus&instanceStatus=NORMAL&instanceId=" + id,
			"activity=releaseInstance&instanceId=" + id,
			"activity=upgrade&orderId=CSu&skuCode=s&productId=p&amount=5&instanceId=" + id,
			"activity=releaseLicense&orderId=CSu&instanceId=" + id,
		} {
			f.Add(q)
		}
	}
	for _, q := range []string{
		"", "activity=newInstance&customerId=c&businessId=b&orderId=CSfz&skuCode=s&productId=p&testFlag=1",
		"activity=deleteEverything", "activity=expireInstance&instanceId=fz-active&orderId=%00",
		"=x&activity=queryInstance&instanceId=fz-active", "activity=queryInstance&instanceId=%FF",
		"activity=queryInstance&instanceId=fz-active&instanceId=fz-active", "activity=queryInstance&instanceId=%zz",
	} {
		f.Add(q)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		params, err := url.ParseQuery(raw)
		if err != nil {
			return // not a query the marketplace could have signed
		}
		params.Del(koogallery.ParamAuthToken)
		signed, err := koogallery.SignedV1Query(testV1Key, params, time.Now())
		if err != nil {
			return // a repeated parameter: V1Verifier's own tests refuse it
		}
		before := h.fuzzState(t)
		forged, err := koogallery.SignedV1Query("not-the-v1-key", params, time.Now())
		require.NoError(t, err)
		a := h.serveV1(t, koogallery.EncodeV1Query(forged))
		requireResult(t, a, "000001", "authentication failed")
		require.Equal(t, before, h.fuzzState(t), "a wrong authToken records nothing")

		a = h.serveV1(t, koogallery.EncodeV1Query(signed))
		after := h.fuzzState(t)
		require.Equal(t, http.StatusOK, a.Status, "answer %s", a.Raw)
		if problem := unsignable(signed); problem != "" {
			requireResult(t, a, "000001", "authentication failed")
			require.Equal(t, before, after, "%s: nothing changes", problem)
			return
		}
		require.NotEqual(t, "000001", a.ResultCode, "the call was signed correctly: %s", a.Raw)
		if hasNUL(signed) {
			requireResult(t, a, "000002", "parameters must not contain NUL characters")
			require.Equal(t, before, after, "an invalid call changes nothing")
			return
		}
		req, err := koogallery.ParseV1Request(signed)
		if err != nil {
			requireResult(t, a, "000002", err.Error())
			require.Equal(t, before, after, "an invalid call changes nothing")
			return
		}
		requireV1Outcome(t, req, a, before, after)
	})
}

// requireV1Outcome checks the answer to a parsed, correctly signed V1 call.
func requireV1Outcome(t *testing.T, req koogallery.V1Request, a produceAnswer, before, after fuzzState) {
	t.Helper()
	recorded := (after.Callbacks - before.Callbacks) + (after.Redeliveries - before.Redeliveries)
	switch req.(type) {
	case *koogallery.V1QueryInstanceRequest:
		require.Contains(t, []string{"000000", "000003", "000004"}, a.ResultCode, "answer %s", a.Raw)
		require.Equal(t, before, after, "queryInstance only reads")
	case *koogallery.V1GetLicenseRequest:
		// As a newInstance, and its licence request after it: both
		// recorded, nothing issued here, 000005 for the marketplace to
		// come back.
		requireResult(t, a, "000005", "the instance is still being provisioned; please retry")
		require.NotEmpty(t, a.InstanceID)
		require.EqualValues(t, 2, recorded, "the purchase and its licence request, each once")
	case *koogallery.V1NewInstanceRequest:
		// No workflow provisions anything here: the purchase is recorded
		// and answered 000005 for the marketplace to come back.
		requireResult(t, a, "000005", "the instance is still being provisioned; please retry")
		require.NotEmpty(t, a.InstanceID)
		require.EqualValues(t, 1, recorded, "recorded once, as new or as a redelivery")
	default:
		switch a.ResultCode {
		case "000000":
			require.EqualValues(t, 1, recorded, "recorded once, as new or as a redelivery")
		case "000003":
			require.Equal(t, before, after, "an unknown instance changes nothing")
		default:
			require.Failf(t, "unexpected answer", "%s", a.Raw)
		}
	}
}

// serveV1 sends a V1 call to the router and checks its signed answer.
func (h *harness) serveV1(t *testing.T, rawQuery string) produceAnswer {
	t.Helper()
	rec := h.serve(httptest.NewRequest(http.MethodGet, "/produce?"+rawQuery, nil))
	h.settle(t)
	return requireAnswerSignedWith(t, testV1Key, rec.Code, rec.Header(), rec.Body.Bytes())
}

// unsignable says why the marketplace's Java could not have signed these
// parameters as Go decoded them (V1Verifier refuses them), or "".
func unsignable(params url.Values) string {
	for name, values := range params {
		if name == "" || !utf8.ValidString(name) {
			return "a parameter without a valid name"
		}
		for _, v := range values {
			if !utf8.ValidString(v) {
				return "a value that is not UTF-8"
			}
		}
	}
	return ""
}

func hasNUL(params url.Values) bool {
	for _, values := range params {
		for _, v := range values {
			if strings.ContainsRune(v, 0) {
				return true
			}
		}
	}
	return false
}
