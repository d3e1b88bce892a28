package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
)

// licenseRequest is the emulated purchase's request of event, once it has
// the answer (and, when wanted, the licence the device received).
func licenseRequest(v emulator.PurchaseView, event string) (emulator.LicenseRequestView, bool) {
	for _, l := range v.Licenses {
		if l.EventID == event {
			return l, true
		}
	}
	return emulator.LicenseRequestView{}, false
}

// maintenance switches the demo application's maintenance on or off.
func (s *stack) maintenance(on bool) {
	s.t.Helper()
	body := `{"on":false}`
	if on {
		body = `{"on":true}`
	}
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/v1/demo/maintenance", strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("X-Operator", "e2e-operator")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	resp.Body.Close()
	require.Less(s.t, resp.StatusCode, 300)
}

// TestOnlineLicenseLife: an online licence product bought through the
// emulator; its devices ask for licences (getLicenseAsync). A node-locked
// product refuses a device without a fingerprint (000903); a device gets
// 000004 and then its licence, uploaded through the open API; asking
// again gets 000000 and no second upload; the order's two licences are
// used up by two devices (000900 for a third); a generator failure parks
// the step until an operator retries it.
func TestOnlineLicenseLife(t *testing.T) {
	t.Parallel()
	e := startEmulatorStack(t, "1d=5s", "LICENSE_NODE_LOCKED_PRODUCTS=lic-product")
	id := e.buy(emulator.BuyRequest{ProductID: "lic-product", PeriodType: "month", Quantity: 2, OnlineLicense: true})
	e.purchaseState(id, emulator.StateInService)
	e.waitState(id, "active")

	answered := func(event string) emulator.LicenseRequestView {
		v := e.purchase(id, "answered for "+event, func(v emulator.PurchaseView) bool { _, ok := licenseRequest(v, event); return ok })
		l, _ := licenseRequest(v, event)
		return l
	}
	received := func(event string) emulator.LicenseRequestView {
		v := e.purchase(id, "the licence of "+event+" received", func(v emulator.PurchaseView) bool {
			l, ok := licenseRequest(v, event)
			return ok && len(l.Uploads) > 0
		})
		l, _ := licenseRequest(v, event)
		return l
	}

	e.act(id, emulator.Action{Kind: emulator.ActLicenseRequest, EventID: "EV-none"})
	require.Equal(t, "000903", answered("EV-none").ResultCode)

	e.act(id, emulator.Action{Kind: emulator.ActLicenseRequest, EventID: "EV-1", Fingerprint: "HW-1"})
	require.Equal(t, "000004", answered("EV-1").ResultCode)
	first := received("EV-1")
	require.Len(t, first.Uploads, 1)
	require.Equal(t, "CHARACTERS", first.Uploads[0].Type)
	require.True(t, strings.HasPrefix(first.Uploads[0].Characters, "DEMO-LIC-"), first.Uploads[0].Characters)

	// The same device and event again: the licence is there (000000), and
	// nothing is uploaded twice. Its answer is the purchase's second entry
	// for EV-1.
	e.act(id, emulator.Action{Kind: emulator.ActLicenseRequest, EventID: "EV-1", Fingerprint: "HW-1"})
	v := e.purchase(id, "EV-1 asked again", func(v emulator.PurchaseView) bool { return len(v.Licenses) == 3 })
	require.Equal(t, "000000", v.Licenses[2].ResultCode)
	require.Len(t, v.Licenses[2].Uploads, 1, "one upload for the request")

	e.act(id, emulator.Action{Kind: emulator.ActLicenseRequest, EventID: "EV-2", Fingerprint: "HW-2"})
	second := received("EV-2")
	require.NotEqual(t, first.Uploads[0].SHA256, second.Uploads[0].SHA256)
	e.act(id, emulator.Action{Kind: emulator.ActLicenseRequest, EventID: "EV-3", Fingerprint: "HW-3"})
	require.Equal(t, "000900", answered("EV-3").ResultCode)

	// The generator is down: the step parks, the device waits; an
	// operator's retry uploads the licence. HW-1 asks under a new event,
	// which uses no more quota.
	e.maintenance(true)
	e.act(id, emulator.Action{Kind: emulator.ActLicenseRequest, EventID: "EV-4", Fingerprint: "HW-1"})
	require.Equal(t, "000004", answered("EV-4").ResultCode)
	parked := e.waitState(id, "parked")
	require.Contains(t, parked.Reason+parked.Events[len(parked.Events)-1].Message, "license")
	e.maintenance(false)
	require.Equal(t, http.StatusAccepted, e.signal(id, "retry", `{"reason":"generator back"}`))
	e.waitState(id, "active")
	require.Len(t, received("EV-4").Uploads, 1)
}
