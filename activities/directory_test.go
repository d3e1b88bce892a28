package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
)

// directoryFixture is an instance with a live demo tenant, and a way to
// record kit syncs for it as the inbox does.
type directoryFixture struct {
	t    *testing.T
	db   *store.DB
	demo *provisioner.Demo
	acts *activities.Activities
	n    int
}

func newDirectoryFixture(t *testing.T) *directoryFixture {
	t.Helper()
	db := testenv.NewStore(t)
	demoStore := provisioner.NewDemoStore(db.Pool())
	_, err := demoStore.Migrate(t.Context())
	require.NoError(t, err)
	demo := &provisioner.Demo{Store: demoStore, PublicURL: "http://demo.example"}
	f := &directoryFixture{t: t, db: db, demo: demo,
		acts: &activities.Activities{Provisioner: demo, Store: db, Sealer: activities.Sealer{AccessKey: accessKey}}}
	_, err = db.Callbacks.RecordNewInstance(t.Context(), "inst-k", store.NewCallback{
		DedupKey: "newInstance:OK:OK-1", Activity: "newInstance", OrderID: "OK", OrderLineID: "OK-1", Body: []byte(`{}`),
	})
	require.NoError(t, err)
	_, err = demo.Provision(t.Context(), provisioner.ProvisionRequest{InstanceID: "inst-k", OrderID: "OK", OrderLineID: "OK-1"})
	require.NoError(t, err)
	return f
}

// apply records sync as a callback of the instance and applies it.
func (f *directoryFixture) apply(sync activities.DirectorySync, secret string) (activities.DirectoryApplied, error) {
	f.t.Helper()
	f.n++
	payload, err := json.Marshal(sync)
	require.NoError(f.t, err)
	sealed := ""
	if secret != "" {
		sealed, err = activities.Sealer{AccessKey: accessKey}.SealSecret(secret)
		require.NoError(f.t, err)
	}
	rec, err := f.db.Callbacks.RecordCallback(f.t.Context(), store.NewCallback{
		DedupKey: "kit:" + sync.Op + ":" + string(rune('a'+f.n)), Activity: sync.Op, InstanceID: "inst-k",
		Body: []byte(`{}`), Payload: payload, SealedSecret: sealed,
	})
	require.NoError(f.t, err)
	return f.acts.ApplyDirectorySync(f.t.Context(), activities.DirectoryInput{InstanceID: "inst-k", Seq: rec.Callback.Seq})
}

func (f *directoryFixture) directory() store.DirectoryOf {
	f.t.Helper()
	d, err := f.db.Directory.Of(f.t.Context(), "inst-k")
	require.NoError(f.t, err)
	return d
}

func TestApplyDirectorySyncsABindingsLife(t *testing.T) {
	f := newDirectoryFixture(t)
	ctx := context.Background()
	bind := activities.DirectorySync{Op: string(koogallery.KitTenantSync), TenantID: "T1", Action: provisioner.ActionUpsert,
		Enterprise: &provisioner.Enterprise{TenantCode: "acme", Name: "Acme 公司", DomainName: "https://acme.example"}}
	done, err := f.apply(bind, "")
	require.NoError(t, err)
	require.Contains(t, done.Summary, "Acme 公司")
	_, err = f.apply(bind, "")
	require.NoError(t, err, "a repeated add succeeds")
	require.Len(t, f.directory().Tenants, 1, "and leaves one enterprise")

	const secret = "s3cret-client-value"
	app := activities.DirectorySync{Op: string(koogallery.KitApplicationSync), TenantID: "T1", Action: provisioner.ActionUpsert,
		App: &provisioner.AppCredential{AppID: "A1", ClientID: "client-1"}, DecryptedWith: "key 1, SHA-256/MGF1-SHA-1"}
	done, err = f.apply(app, secret)
	require.NoError(t, err)
	require.NotContains(t, done.Summary, secret)
	sum := sha256.Sum256([]byte(secret))
	apps := f.directory().Apps
	require.Len(t, apps, 1)
	require.Equal(t, hex.EncodeToString(sum[:]), apps[0].ClientSecretSHA256)
	require.NotContains(t, apps[0].ClientSecretSealed, secret)

	users := []provisioner.DirectoryUser{
		{UserName: "zhang", Name: "张三", OrgCode: "D1", Role: "admin", Enabled: true, EmployeeType: 1},
		{UserName: "li", Name: "李四", OrgCode: "D1", Role: "user", Enabled: true},
	}
	auth := activities.DirectorySync{Op: string(koogallery.KitAuthSync), TenantID: "T1", Action: provisioner.ActionUpsert, AppID: "A1",
		Users: users, SyncTime: "20261201100000000"}
	_, err = f.apply(auth, "")
	require.NoError(t, err)
	authorised, err := f.demo.Store.AuthorisedUsers(ctx, "inst-k")
	require.NoError(t, err)
	require.Equal(t, []string{"li", "zhang"}, authorised, "the application heard it")

	revoke := activities.DirectorySync{Op: string(koogallery.KitAuthSync), TenantID: "T1", Action: provisioner.ActionRevoke, AppID: "A1",
		Users: users[:1], SyncTime: "20261201120000000"}
	_, err = f.apply(revoke, "")
	require.NoError(t, err)
	// The authorisation of 11:00, delivered after the revocation of 12:00.
	late := auth
	late.SyncTime, late.Users = "20261201110000000", users[:1]
	done, err = f.apply(late, "")
	require.NoError(t, err)
	require.Contains(t, done.Summary, "newer sync")
	authorised, err = f.demo.Store.AuthorisedUsers(ctx, "inst-k")
	require.NoError(t, err)
	require.Equal(t, []string{"li"}, authorised)

	_, err = f.apply(activities.DirectorySync{Op: string(koogallery.KitAllOrgSync), TenantID: "T1", Action: provisioner.ActionUpsert, Full: true,
		Departments: []provisioner.Department{{OrgCode: "D1", OrgName: "Sales"}, {OrgCode: "D2", OrgName: "East", ParentCode: "D1"}}}, "")
	require.NoError(t, err)
	_, err = f.apply(activities.DirectorySync{Op: string(koogallery.KitSingleOrgSync), TenantID: "T1", Action: provisioner.ActionDelete,
		Departments: []provisioner.Department{{OrgCode: "D2"}}}, "")
	require.NoError(t, err)

	d := f.directory()
	require.Equal(t, map[string]string{"zhang": store.DirectoryRevoked, "li": store.DirectoryAuthorized},
		map[string]string{d.Users[0].UserName: d.Users[0].State, d.Users[1].UserName: d.Users[1].State})
	require.Equal(t, []string{store.DirectoryActive, store.DirectoryDeleted}, []string{d.Orgs[0].State, d.Orgs[1].State})

	require.NoError(t, f.acts.DropDirectory(ctx, "inst-k"))
	require.Empty(t, f.directory().Tenants)
}

// TestApplyDirectorySyncFailures: a maintenance of the application parks
// the step (a permanent failure), and a sync without its content cannot be
// retried into working.
func TestApplyDirectorySyncFailures(t *testing.T) {
	f := newDirectoryFixture(t)
	require.NoError(t, f.demo.Store.SetMaintenance(t.Context(), true))
	_, err := f.apply(activities.DirectorySync{Op: string(koogallery.KitTenantSync), TenantID: "T1", Action: provisioner.ActionUpsert,
		Enterprise: &provisioner.Enterprise{TenantCode: "acme"}}, "")
	require.True(t, nonRetryable(err))
	require.ErrorContains(t, err, "maintenance")
	require.Empty(t, f.directory().Tenants, "nothing is recorded that the application did not take")
	require.NoError(t, f.demo.Store.SetMaintenance(t.Context(), false))

	_, err = f.apply(activities.DirectorySync{Op: string(koogallery.KitApplicationSync), TenantID: "T1", Action: provisioner.ActionUpsert,
		App: &provisioner.AppCredential{AppID: "A1"}}, "")
	require.True(t, nonRetryable(err), "an app without its sealed secret")
	_, err = f.apply(activities.DirectorySync{Op: "userSync", TenantID: "T1"}, "")
	require.True(t, nonRetryable(err))
}
