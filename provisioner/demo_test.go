package provisioner_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/provisioner"
)

type demoEnv struct {
	db   *provisioner.DemoStore
	demo *provisioner.Demo
	srv  *httptest.Server
}

func newDemo(t *testing.T) demoEnv {
	t.Helper()
	db := newDemoStore(t)
	srv := httptest.NewServer(provisioner.DemoHandler(db))
	t.Cleanup(srv.Close)
	// A trailing slash in the public URL must not double up in tenant URLs.
	return demoEnv{db: db, demo: &provisioner.Demo{Store: db, PublicURL: srv.URL + "/"}, srv: srv}
}

// get fetches a page and returns its status and message.
func (e demoEnv) get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	return decodeDemo(t, resp)
}

// login posts credentials to a tenant's login page.
func (e demoEnv) login(t *testing.T, frontEndURL, user, password string) (int, string) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"userName": user, "password": password})
	require.NoError(t, err)
	resp, err := http.Post(frontEndURL+"/login", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	return decodeDemo(t, resp)
}

func decodeDemo(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	defer resp.Body.Close()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out struct {
		Message string `json:"message"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out.Message
}

func ptr[T any](v T) *T { return &v }

func provisionReq(instanceID string) provisioner.ProvisionRequest {
	return provisioner.ProvisionRequest{
		InstanceID:  instanceID,
		OrderID:     "O-" + instanceID,
		OrderLineID: "O-" + instanceID + "-1",
		Spec:        provisioner.Spec{SkuCode: "sku-1", ProductID: "prod-1", LinearValue: ptr(int64(10))},
		Customer:    provisioner.Customer{ID: "c-1", Name: "客户"},
	}
}

func hasHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

func TestDemoProvisionIsIdempotentAndRotatesPassword(t *testing.T) {
	ctx := context.Background()
	e := newDemo(t)

	first, err := e.demo.Provision(ctx, provisionReq("I1"))
	require.NoError(t, err)
	tenant, err := e.db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, e.srv.URL+"/demo/tenants/"+tenant.TenantID, first.FrontEndURL)
	require.Equal(t, first.FrontEndURL+"/admin", first.AdminURL)
	require.Equal(t, "admin", first.UserName)
	require.Len(t, first.Password, 16)
	require.True(t, hasHan(first.Memo), "memo %q has no Chinese text", first.Memo)
	require.False(t, strings.HasPrefix(first.Memo, "Disposable"))
	require.Equal(t, "active", tenant.State)
	require.False(t, tenant.Debug)
	require.Equal(t, "sku-1", tenant.SkuCode)
	require.Equal(t, "prod-1", tenant.ProductID)
	require.Equal(t, ptr(int64(10)), tenant.LinearValue)
	require.NotContains(t, string(tenant.PasswordHash), first.Password, "the password is not stored in clear")

	status, msg := e.login(t, first.FrontEndURL, first.UserName, first.Password)
	require.Equal(t, http.StatusOK, status, msg)

	second, err := e.demo.Provision(ctx, provisionReq("I1"))
	require.NoError(t, err)
	require.NotEqual(t, first.Password, second.Password)
	require.Equal(t, first.FrontEndURL, second.FrontEndURL)
	require.Equal(t, first.AdminURL, second.AdminURL)
	require.Equal(t, first.UserName, second.UserName)
	again, err := e.db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, tenant.TenantID, again.TenantID, "one tenant per instance")

	// The last password handed out is the valid one.
	status, _ = e.login(t, first.FrontEndURL, "admin", first.Password)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = e.login(t, second.FrontEndURL, "admin", second.Password)
	require.Equal(t, http.StatusOK, status)
	status, _ = e.login(t, second.FrontEndURL, "root", second.Password)
	require.Equal(t, http.StatusUnauthorized, status)

	// Another instance gets another tenant.
	other, err := e.demo.Provision(ctx, provisionReq("I2"))
	require.NoError(t, err)
	require.NotEqual(t, first.FrontEndURL, other.FrontEndURL)
	status, _ = e.login(t, other.FrontEndURL, "admin", second.Password)
	require.Equal(t, http.StatusUnauthorized, status)
}

func TestDemoLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newDemo(t)
	tenant, err := e.demo.Provision(ctx, provisionReq("I1"))
	require.NoError(t, err)
	req := provisioner.TenantRequest{InstanceID: "I1", Reason: "test"}

	check := func(wantPage, wantLogin int) {
		t.Helper()
		status, msg := e.get(t, tenant.FrontEndURL)
		require.Equal(t, wantPage, status, msg)
		status, msg = e.get(t, tenant.AdminURL)
		require.Equal(t, wantPage, status, msg)
		status, msg = e.login(t, tenant.FrontEndURL, tenant.UserName, tenant.Password)
		require.Equal(t, wantLogin, status, msg)
	}
	check(http.StatusOK, http.StatusOK)

	require.NoError(t, e.demo.Freeze(ctx, req))
	check(http.StatusLocked, http.StatusLocked)
	require.NoError(t, e.demo.Freeze(ctx, req), "freezing a frozen tenant succeeds")
	check(http.StatusLocked, http.StatusLocked)
	stored, err := e.db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, "frozen", stored.State)

	require.NoError(t, e.demo.Unfreeze(ctx, req))
	check(http.StatusOK, http.StatusOK)
	require.NoError(t, e.demo.Unfreeze(ctx, req))
	check(http.StatusOK, http.StatusOK)

	require.NoError(t, e.demo.Upgrade(ctx, provisioner.UpgradeRequest{
		InstanceID: "I1", OrderID: "G1", Spec: provisioner.Spec{SkuCode: "sku-2", ProductID: "prod-2", LinearValue: ptr(int64(50))},
	}))
	stored, err = e.db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, "sku-2", stored.SkuCode)
	require.Equal(t, "prod-2", stored.ProductID)
	require.Equal(t, ptr(int64(50)), stored.LinearValue)

	require.NoError(t, e.demo.Freeze(ctx, req))
	require.NoError(t, e.demo.Release(ctx, req), "a frozen tenant can be released")
	check(http.StatusGone, http.StatusGone)
	require.NoError(t, e.demo.Release(ctx, req), "releasing again succeeds")
	check(http.StatusGone, http.StatusGone)
	stored, err = e.db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, "deleted", stored.State)
	require.NotNil(t, stored.DeletedAt)

	// Nothing brings a released tenant back.
	for name, op := range map[string]func() error{
		"freeze":   func() error { return e.demo.Freeze(ctx, req) },
		"unfreeze": func() error { return e.demo.Unfreeze(ctx, req) },
		"upgrade": func() error {
			return e.demo.Upgrade(ctx, provisioner.UpgradeRequest{InstanceID: "I1", Spec: provisioner.Spec{SkuCode: "x"}})
		},
		"check change": func() error {
			_, err := e.demo.CheckChange(ctx, provisioner.ChangeRequest{InstanceID: "I1"})
			return err
		},
		"provision": func() error {
			_, err := e.demo.Provision(ctx, provisionReq("I1"))
			return err
		},
	} {
		err := op()
		require.Error(t, err, name)
		require.True(t, provisioner.IsPermanent(err), "%s: %v", name, err)
		var perm *provisioner.PermanentError
		require.ErrorAs(t, err, &perm)
		require.Contains(t, perm.Msg, "released", name)
	}
	check(http.StatusGone, http.StatusGone)
	stored, err = e.db.Tenant(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, "deleted", stored.State)
}

func TestDemoUnknownInstance(t *testing.T) {
	ctx := context.Background()
	e := newDemo(t)
	req := provisioner.TenantRequest{InstanceID: "nope"}

	for name, err := range map[string]error{
		"freeze":   e.demo.Freeze(ctx, req),
		"unfreeze": e.demo.Unfreeze(ctx, req),
		"upgrade":  e.demo.Upgrade(ctx, provisioner.UpgradeRequest{InstanceID: "nope"}),
	} {
		require.True(t, provisioner.IsPermanent(err), "%s: %v", name, err)
	}
	_, err := e.demo.CheckChange(ctx, provisioner.ChangeRequest{InstanceID: "nope"})
	require.True(t, provisioner.IsPermanent(err), "%v", err)
	require.NoError(t, e.demo.Release(ctx, req), "a tenant never created is already gone")
	_, err = e.db.Tenant(ctx, "nope")
	require.ErrorIs(t, err, provisioner.ErrNoDemoTenant)

	_, err = e.demo.Provision(ctx, provisioner.ProvisionRequest{})
	require.True(t, provisioner.IsPermanent(err), "%v", err)
}

func TestDemoCheckChange(t *testing.T) {
	ctx := context.Background()
	e := newDemo(t)
	_, err := e.demo.Provision(ctx, provisionReq("I1"))
	require.NoError(t, err)

	cases := []struct {
		name    string
		target  provisioner.Spec
		allowed bool
		reason  string
	}{
		{"below the used seat", provisioner.Spec{LinearValue: ptr(int64(0))}, false,
			"The tenant uses 1 seats; the target spec allows 0. Remove users before downgrading."},
		{"exactly the used seat", provisioner.Spec{LinearValue: ptr(int64(1))}, true, ""},
		{"five seats", provisioner.Spec{LinearValue: ptr(int64(5))}, true, ""},
		{"no quantity", provisioner.Spec{SkuCode: "sku-2"}, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := e.demo.CheckChange(ctx, provisioner.ChangeRequest{
				InstanceID: "I1",
				Current:    provisioner.Spec{SkuCode: "sku-1", LinearValue: ptr(int64(10))},
				Target:     tc.target,
			})
			require.NoError(t, err)
			require.Equal(t, provisioner.ChangeVerdict{Allowed: tc.allowed, Reason: tc.reason}, v)
		})
	}
}

func TestDemoDebugTenant(t *testing.T) {
	ctx := context.Background()
	e := newDemo(t)
	req := provisionReq("D1")
	req.Debug = true
	tenant, err := e.demo.Provision(ctx, req)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tenant.Memo, "Disposable tenant for a debug call. "), tenant.Memo)
	require.True(t, hasHan(tenant.Memo))
	stored, err := e.db.Tenant(ctx, "D1")
	require.NoError(t, err)
	require.True(t, stored.Debug)

	// The flag of the first creation sticks.
	req.Debug = false
	tenant, err = e.demo.Provision(ctx, req)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tenant.Memo, "Disposable"))
}

func TestDemoHandlerRoutes(t *testing.T) {
	ctx := context.Background()
	e := newDemo(t)
	tenant, err := e.demo.Provision(ctx, provisionReq("I1"))
	require.NoError(t, err)

	status, _ := e.get(t, e.srv.URL+"/demo/tenants/t-unknown")
	require.Equal(t, http.StatusNotFound, status)
	status, _ = e.get(t, tenant.FrontEndURL+"/elsewhere")
	require.Equal(t, http.StatusNotFound, status)
	status, _ = e.get(t, tenant.FrontEndURL+"/login")
	require.Equal(t, http.StatusMethodNotAllowed, status)

	resp, err := http.Post(tenant.FrontEndURL, "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	status, _ = decodeDemo(t, resp)
	require.Equal(t, http.StatusMethodNotAllowed, status)

	resp, err = http.Post(tenant.FrontEndURL+"/login", "application/json", strings.NewReader(`not json`))
	require.NoError(t, err)
	status, _ = decodeDemo(t, resp)
	require.Equal(t, http.StatusBadRequest, status)

	status, _ = e.login(t, tenant.FrontEndURL, "admin", "")
	require.Equal(t, http.StatusUnauthorized, status)
	status, msg := e.get(t, tenant.FrontEndURL)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, msg, "is active")
}

// TestDemoMaintenanceRefusesTenantOperations: while the demo application
// is in maintenance every tenant operation fails for good (so the step
// parks), and works again once it ends.
func TestDemoMaintenanceRefusesTenantOperations(t *testing.T) {
	env := newDemo(t)
	ctx := t.Context()
	req := provisioner.ProvisionRequest{InstanceID: "maint-1", OrderID: "O", OrderLineID: "O-1"}
	_, err := env.demo.Provision(ctx, req)
	require.NoError(t, err)

	require.NoError(t, env.db.SetMaintenance(ctx, true))
	_, err = env.demo.Provision(ctx, provisioner.ProvisionRequest{InstanceID: "maint-2"})
	require.True(t, provisioner.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "down for maintenance")
	for name, op := range map[string]func() error{
		"freeze":   func() error { return env.demo.Freeze(ctx, provisioner.TenantRequest{InstanceID: "maint-1"}) },
		"unfreeze": func() error { return env.demo.Unfreeze(ctx, provisioner.TenantRequest{InstanceID: "maint-1"}) },
		"release":  func() error { return env.demo.Release(ctx, provisioner.TenantRequest{InstanceID: "maint-1"}) },
	} {
		err := op()
		require.True(t, provisioner.IsPermanent(err), "%s: %v", name, err)
	}
	tenant, err := env.db.Tenant(ctx, "maint-1")
	require.NoError(t, err)
	require.Equal(t, "active", tenant.State, "nothing changed during maintenance")

	require.NoError(t, env.db.SetMaintenance(ctx, false))
	_, err = env.demo.Provision(ctx, provisioner.ProvisionRequest{InstanceID: "maint-2"})
	require.NoError(t, err)
	require.NoError(t, env.demo.Freeze(ctx, provisioner.TenantRequest{InstanceID: "maint-1"}))
}
