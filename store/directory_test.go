package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/store"
)

// TestDirectoryKeepsOneRowPerThing: a repeated add leaves one enterprise,
// app, user and department; a delete marks the row and keeps its last
// details; the directory is per instance.
func TestDirectoryKeepsOneRowPerThing(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	allocate(t, db, "I1")
	allocate(t, db, "I2")
	d := db.Directory

	tenant := store.DirectoryTenant{TenantID: "T1", TenantCode: "acme", Name: "Acme", DomainName: "https://acme.example", State: store.DirectoryActive}
	require.NoError(t, d.SetTenant(ctx, "I1", 1, tenant))
	require.NoError(t, d.SetTenant(ctx, "I1", 2, tenant))
	require.NoError(t, d.SetTenant(ctx, "I2", 3, tenant))
	app := store.DirectoryApp{TenantID: "T1", AppID: "A1", ClientID: "c1", ClientSecretSealed: "sealed", ClientSecretSHA256: "abc",
		DecryptedWith: "key 1, SHA-256/MGF1-SHA-1", State: store.DirectoryActive}
	require.NoError(t, d.SetApp(ctx, "I1", 4, app))
	require.NoError(t, d.SetApp(ctx, "I1", 5, app))
	org := store.DirectoryOrg{TenantID: "T1", OrgCode: "D1", OrgName: "Sales", State: store.DirectoryActive}
	require.NoError(t, d.SetOrgs(ctx, "I1", "T1", 6, []store.DirectoryOrg{org, org}, false))

	got, err := d.Of(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, []store.DirectoryTenant{tenant}, got.Tenants)
	require.Len(t, got.Apps, 1)
	require.Equal(t, "abc", got.Apps[0].ClientSecretSHA256)
	require.Len(t, got.Orgs, 1)

	// Deleting keeps the last details, and the sealed secret goes.
	require.NoError(t, d.SetTenant(ctx, "I1", 7, store.DirectoryTenant{TenantID: "T1", State: store.DirectoryDeleted}))
	require.NoError(t, d.SetApp(ctx, "I1", 8, store.DirectoryApp{TenantID: "T1", AppID: "A1", State: store.DirectoryDeleted}))
	got, err = d.Of(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, store.DirectoryTenant{TenantID: "T1", TenantCode: "acme", Name: "Acme", DomainName: "https://acme.example",
		State: store.DirectoryDeleted}, got.Tenants[0])
	require.Equal(t, store.DirectoryApp{TenantID: "T1", AppID: "A1", ClientID: "c1", ClientSecretSHA256: "abc",
		DecryptedWith: "key 1, SHA-256/MGF1-SHA-1", State: store.DirectoryDeleted}, got.Apps[0])

	other, err := d.Of(ctx, "I2")
	require.NoError(t, err)
	require.Equal(t, []store.DirectoryTenant{tenant}, other.Tenants, "instances keep their own directories")

	require.NoError(t, d.Drop(ctx, "I1"))
	got, err = d.Of(ctx, "I1")
	require.NoError(t, err)
	require.Empty(t, got.Tenants)
	require.Empty(t, got.Apps)
	require.Empty(t, got.Orgs)
	other, err = d.Of(ctx, "I2")
	require.NoError(t, err)
	require.Len(t, other.Tenants, 1, "dropping one instance's directory leaves the others")
}

// TestDirectoryUsersFollowTheirSyncTime: a user's row follows the newest
// sync; an older one arriving late changes nothing, and NewerUsers names
// the users it must not touch.
func TestDirectoryUsersFollowTheirSyncTime(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	allocate(t, db, "I1")
	d := db.Directory
	user := func(name, state, syncTime string) store.DirectoryUser {
		return store.DirectoryUser{TenantID: "T1", AppID: "A1", UserName: name, Name: "N " + name, OrgCode: "D1", Role: "user",
			Enable: true, State: state, SyncTime: syncTime}
	}
	require.NoError(t, d.SetUsers(ctx, "I1", 1, []store.DirectoryUser{
		user("zhang", store.DirectoryAuthorized, "20260101100000000"),
		user("li", store.DirectoryAuthorized, "20260101100000000"),
	}))
	require.NoError(t, d.SetUsers(ctx, "I1", 2, []store.DirectoryUser{user("zhang", store.DirectoryRevoked, "20260101120000000")}))
	// The authorisation of 11:00 arrives after the revocation of 12:00.
	newer, err := d.NewerUsers(ctx, "I1", "T1", "A1", "20260101110000000", []string{"zhang", "li", "wang"})
	require.NoError(t, err)
	require.Equal(t, []string{"zhang"}, newer)
	require.NoError(t, d.SetUsers(ctx, "I1", 3, []store.DirectoryUser{user("zhang", store.DirectoryAuthorized, "20260101110000000")}))

	got, err := d.Of(ctx, "I1")
	require.NoError(t, err)
	states := map[string]string{}
	for _, u := range got.Users {
		states[u.UserName] = u.State
	}
	require.Equal(t, map[string]string{"li": store.DirectoryAuthorized, "zhang": store.DirectoryRevoked}, states)
}

// TestDirectoryFullDepartmentList: a full list marks the departments it
// does not name as deleted, and brings back one it names again.
func TestDirectoryFullDepartmentList(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	allocate(t, db, "I1")
	d := db.Directory
	org := func(code, parent string) store.DirectoryOrg {
		return store.DirectoryOrg{TenantID: "T1", OrgCode: code, OrgName: "Dept " + code, ParentCode: parent, State: store.DirectoryActive}
	}
	require.NoError(t, d.SetOrgs(ctx, "I1", "T1", 1, []store.DirectoryOrg{org("D1", ""), org("D2", "D1"), org("D3", "D1")}, true))
	require.NoError(t, d.SetOrgs(ctx, "I1", "T1", 2, []store.DirectoryOrg{org("D1", ""), org("D3", "")}, true))

	got, err := d.Of(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, []store.DirectoryOrg{
		{TenantID: "T1", OrgCode: "D1", OrgName: "Dept D1", State: store.DirectoryActive},
		{TenantID: "T1", OrgCode: "D2", OrgName: "Dept D2", ParentCode: "D1", State: store.DirectoryDeleted},
		{TenantID: "T1", OrgCode: "D3", OrgName: "Dept D3", State: store.DirectoryActive},
	}, got.Orgs, "D2 is gone, D3 moved to the top")

	require.NoError(t, d.SetOrgs(ctx, "I1", "T1", 3, []store.DirectoryOrg{org("D2", "D3")}, false))
	got, err = d.Of(ctx, "I1")
	require.NoError(t, err)
	require.Equal(t, store.DirectoryActive, got.Orgs[1].State, "an increment adds a department again")
	require.Equal(t, "D3", got.Orgs[1].ParentCode)
}
