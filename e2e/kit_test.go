package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// The 联营 kit's key and the merchant's key pair, written by TestMain.
const kitAccessKey = "e2e-kit-access-key-51d0"

var kitPrivateKeyFile, kitPublicKeyFile string

// writeKitKeys writes a key pair for the kit's clientSecret into dir.
func writeKitKeys(dir string) error {
	private, public, err := koogallery.GenerateKitKey(3072)
	if err != nil {
		return err
	}
	kitPrivateKeyFile, kitPublicKeyFile = filepath.Join(dir, "kit-private.pem"), filepath.Join(dir, "kit-public.pem")
	if err := os.WriteFile(kitPrivateKeyFile, private, 0o600); err != nil {
		return err
	}
	return os.WriteFile(kitPublicKeyFile, public, 0o644)
}

// directory is GET /v1/instances/{id}/directory.
type directory struct {
	Tenants []struct {
		TenantID   string `json:"tenantId"`
		TenantCode string `json:"tenantCode"`
		Name       string `json:"name"`
		DomainName string `json:"domainName"`
		State      string `json:"state"`
		Apps       []struct {
			AppID              string `json:"appId"`
			ClientID           string `json:"clientId"`
			ClientSecretSHA256 string `json:"clientSecretSha256"`
			State              string `json:"state"`
		} `json:"apps"`
		Users []struct {
			UserName string `json:"userName"`
			Role     string `json:"role"`
			OrgCode  string `json:"orgCode"`
			State    string `json:"state"`
		} `json:"users"`
		Orgs []struct {
			OrgCode    string `json:"orgCode"`
			OrgName    string `json:"orgName"`
			ParentCode string `json:"parentCode"`
			State      string `json:"state"`
		} `json:"orgs"`
	} `json:"tenants"`
}

func (s *stack) directory(id string) (directory, string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+"/v1/instances/"+id+"/directory", nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	var raw json.RawMessage
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&raw))
	var d directory
	require.NoError(s.t, json.Unmarshal(raw, &d))
	return d, string(raw)
}

// waitDirectory polls the instance's directory until cond holds.
func (s *stack) waitDirectory(id, what string, cond func(directory) bool) directory {
	s.t.Helper()
	return waitUntil(s.t, 60*time.Second, "directory of "+id+" to show "+what,
		func() directory { d, _ := s.directory(id); return d }, cond)
}

// userState is a user's state in the directory's only tenant ("" when absent).
func (d directory) userState(name string) string {
	if len(d.Tenants) != 1 {
		return ""
	}
	for _, u := range d.Tenants[0].Users {
		if u.UserName == name {
			return u.State
		}
	}
	return ""
}

// org is a department of the directory's only tenant.
func (d directory) org(code string) (parent, name, state string) {
	if len(d.Tenants) != 1 {
		return "", "", ""
	}
	for _, o := range d.Tenants[0].Orgs {
		if o.OrgCode == code {
			return o.ParentCode, o.OrgName, o.State
		}
	}
	return "", "", ""
}

// TestKitLife: the emulator plays the 联营 kit against a purchase: the
// buyer binds the app to an enterprise (tenantSync, applicationSync with an
// RSA-OAEP secret, allOrgSync with the documentation's bare-key list), the
// administrator authorises, revokes and re-authorises users and moves
// departments, and the purchase is released; the seller's credential probe
// creates nothing. The directory and the demo application follow each step.
func TestKitLife(t *testing.T) {
	t.Parallel()
	e := startEmulatorStack(t, "1d=5s")
	id := e.buy(emulator.BuyRequest{PeriodType: "month"})
	inService := e.purchaseState(id, emulator.StateInService)
	e.waitState(id, "active")

	// The merchant is briefly down for the applicationSync: nobody retries
	// it by itself; it waits in the console's failed calls until a person
	// restarts it.
	e.proxy.failNext("applicationSync", 1)
	e.act(id, emulator.Action{Kind: emulator.ActBind, Enterprise: "Acme 有限公司"})
	bound := e.purchase(id, "bound", func(v emulator.PurchaseView) bool { return hasEvent(v, "kit-bound") })
	require.NotNil(t, bound.Kit)
	require.Len(t, bound.Failed, 1, "the applicationSync failed once and was not retried")
	require.Equal(t, "applicationSync", bound.Failed[0].Activity)
	require.Equal(t, 1, bound.Failed[0].Attempts)
	require.NoError(t, e.emu.Restart(context.Background(), bound.Failed[0].ID))
	e.purchase(id, "the applicationSync restarted", func(v emulator.PurchaseView) bool { return hasEvent(v, "restarted") })
	d := e.waitDirectory(id, "the enterprise, its app and departments", func(d directory) bool {
		return len(d.Tenants) == 1 && len(d.Tenants[0].Apps) == 1 && len(d.Tenants[0].Orgs) == 2
	})
	tenant := d.Tenants[0]
	require.Equal(t, bound.Kit.TenantID, tenant.TenantID)
	require.Equal(t, "Acme 有限公司", tenant.Name)
	require.Equal(t, "active", tenant.State)
	require.Equal(t, bound.Kit.SecretSHA256, tenant.Apps[0].ClientSecretSHA256, "the server decrypted the secret the marketplace encrypted")
	require.Equal(t, "active", tenant.Apps[0].State)
	parent, _, _ := d.org("D2")
	require.Equal(t, "D1", parent)
	_, raw := e.directory(id)
	require.NotContains(t, raw, "clientSecret\"", "only the secret's SHA-256 is shown")

	e.act(id, emulator.Action{Kind: emulator.ActAuthorize, Users: []string{"alice", "bob"}, Role: "admin"})
	e.waitDirectory(id, "alice and bob authorised", func(d directory) bool {
		return d.userState("alice") == "authorized" && d.userState("bob") == "authorized"
	})
	e.act(id, emulator.Action{Kind: emulator.ActRevoke, Users: []string{"bob"}})
	e.waitDirectory(id, "bob revoked", func(d directory) bool { return d.userState("bob") == "revoked" })
	page := demoPage(t, inService.AppInfo.FrontEndURL)
	require.Equal(t, []string{"alice"}, page.AuthorizedUsers, "the application lets only authorised users in")
	e.act(id, emulator.Action{Kind: emulator.ActAuthorize, Users: []string{"bob"}})
	e.waitDirectory(id, "bob authorised again", func(d directory) bool { return d.userState("bob") == "authorized" })
	e.act(id, emulator.Action{Kind: emulator.ActRemoveUsers, Users: []string{"alice"}})
	e.waitDirectory(id, "alice gone", func(d directory) bool { return d.userState("alice") == "deleted" })

	e.act(id, emulator.Action{Kind: emulator.ActDepartment, OrgCode: "D3", OrgName: "East", ParentCode: "D1"})
	e.act(id, emulator.Action{Kind: emulator.ActDepartment, OrgCode: "D2", ParentCode: "D3"})
	e.act(id, emulator.Action{Kind: emulator.ActDepartment, OrgCode: "D1", OrgName: "Head office"})
	d = e.waitDirectory(id, "D2 moved under D3, D1 renamed", func(d directory) bool {
		p, _, _ := d.org("D2")
		_, n, _ := d.org("D1")
		return p == "D3" && n == "Head office"
	})
	_, _, state := d.org("D3")
	require.Equal(t, "active", state)
	e.act(id, emulator.Action{Kind: emulator.ActDepartment, OrgCode: "D3", Delete: true})
	e.waitDirectory(id, "D3 deleted", func(d directory) bool { _, _, s := d.org("D3"); return s == "deleted" })

	// The seller's credential probe: answered, recorded, nothing created.
	before := len(e.instances())
	probe, err := e.emu.ProbeKit(context.Background())
	require.NoError(t, err)
	require.Len(t, probe.Calls, 4)
	for _, c := range probe.Calls {
		require.Equal(t, "000000", c.ResultCode, "%s: %s %s", c.Operation, c.ResultMsg, c.Error)
	}
	require.Len(t, e.instances(), before, "the probe provisions nothing")

	e.act(id, emulator.Action{Kind: emulator.ActUnsubscribe})
	e.waitState(id, "released")
	d = e.waitDirectory(id, "nothing after the release", func(d directory) bool { return len(d.Tenants) == 0 })
	require.Empty(t, d.Tenants)
	for _, m := range e.purchaseState(id, emulator.StateUnsubscribed).Failed {
		require.Equal(t, emulator.MessageResolved, m.Status, "every failed call was restarted and answered: %+v", m)
	}
}

// demoPage is an active demo tenant's page.
type demoTenantPage struct {
	AuthorizedUsers []string `json:"authorizedUsers"`
}

func demoPage(t *testing.T, frontEndURL string) demoTenantPage {
	t.Helper()
	resp, err := http.Get(frontEndURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var p demoTenantPage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	slices.Sort(p.AuthorizedUsers)
	return p
}

// instances lists the server's instances (the first 100).
func (s *stack) instances() []instance {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+"/v1/instances?limit=100", nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	var out struct {
		Instances []instance `json:"instances"`
	}
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Instances
}
