package emulator

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A console sends bind, then authorize at once: the second is accepted
// while the first waits to run, and a second bind is refused.
func TestKitActionsSeeTheQueuedBind(t *testing.T) {
	p := &purchase{State: StateInService, InstanceID: "i-1"}
	authorize := Action{Kind: ActAuthorize, Users: []string{"alice"}}
	require.ErrorContains(t, p.validate(authorize), "bind it first")
	require.NoError(t, p.validate(Action{Kind: ActBind}))

	p.Actions = append(p.Actions, Action{Kind: ActBind})
	require.NoError(t, p.validate(authorize))
	require.NoError(t, p.validate(Action{Kind: ActDepartment, OrgCode: "D9"}), "the department is checked again when it runs")
	require.ErrorContains(t, p.validate(Action{Kind: ActBind}), "already bound")

	p.Actions = append(p.Actions, Action{Kind: ActUnbind})
	require.ErrorContains(t, p.validate(authorize), "bind it first")
}

func TestKitActionsRefuseWhatTheMarketplaceWouldNot(t *testing.T) {
	p := &purchase{State: StateInService, InstanceID: "i-1", Kit: &kitState{Orgs: []KitOrgView{{OrgCode: "D1", OrgName: "HQ"}}}}
	require.ErrorContains(t, p.validate(Action{Kind: ActAuthorize}), "at least one user")
	require.ErrorContains(t, p.validate(Action{Kind: ActAuthorize, Users: []string{"a b"}}), `user name "a b"`)
	require.ErrorContains(t, p.validate(Action{Kind: ActAuthorize, Users: []string{"a"}, Role: "root"}), "role must be user or admin")
	require.ErrorContains(t, p.validate(Action{Kind: ActDepartment, OrgCode: "D2"}), "needs orgName")
	require.NoError(t, p.validate(Action{Kind: ActDepartment, OrgCode: "D1", ParentCode: "D0"}), "an existing department keeps its name")
	p.State = StateReleased
	require.ErrorContains(t, p.validate(Action{Kind: ActUnbind}), "while the purchase is released")
}

func TestDocumentedOrgListIsTheDocumentationsForm(t *testing.T) {
	require.Equal(t, `[{orgCode:"D1", orgName:"产品部", parentCode:"" }, {orgCode:"D2", orgName:"East", parentCode:"D1" }]`,
		documentedOrgList([]KitOrgView{{OrgCode: "D1", OrgName: "产品部"}, {OrgCode: "D2", OrgName: "East", ParentCode: "D1"}}))
	require.Equal(t, "20261204201010123", beijingTime(mustTime(t, "2026-12-04T12:10:10.123Z")))
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

// A sold license code is kept once, activated once (the first activation
// counts) and read back for the console and the open API.
func TestLicenseCodeStore(t *testing.T) {
	db := newStore(t)
	ctx := t.Context()
	code := LicenseCodeView{License: licenseCodeOf("CS1"), PurchaseID: "CS1", ProductID: "p", OrderID: "CS1", Amount: 2, ValidForMS: 60_000}
	// The code travels to the activity as JSON: nothing may be lost.
	raw, err := json.Marshal(code)
	require.NoError(t, err)
	var travelled LicenseCodeView
	require.NoError(t, json.Unmarshal(raw, &travelled))
	require.Equal(t, code, travelled)
	require.NoError(t, db.SaveLicenseCode(ctx, travelled))
	require.NoError(t, db.SaveLicenseCode(ctx, code), "saving again changes nothing")
	got, err := db.LicenseCodeOf(ctx, "CS1")
	require.NoError(t, err)
	require.Equal(t, code.License, got.License)
	require.Nil(t, got.ActivatedAt)
	require.Equal(t, "NOT_ACTIVATED", licenseCodeStatus(got, time.Now()))

	at := time.Now().UTC().Truncate(time.Millisecond)
	src := &licenseCodeSource{db: db}
	mc, found, err := src.Activate(ctx, code.License, at)
	require.NoError(t, err)
	require.True(t, found)
	require.WithinDuration(t, at, *mc.ActivatedAt, time.Millisecond)
	require.Equal(t, time.Minute, mc.Validity)
	mc, _, err = src.Activate(ctx, code.License, at.Add(time.Hour))
	require.NoError(t, err)
	require.WithinDuration(t, at, *mc.ActivatedAt, time.Millisecond, "the first activation counts")
	_, found, err = src.License(ctx, "PLNONE")
	require.NoError(t, err)
	require.False(t, found)
	got, err = db.LicenseCodeOf(ctx, "CS1")
	require.NoError(t, err)
	require.Equal(t, "ALIVE", licenseCodeStatus(got, at.Add(time.Second)))
	require.Equal(t, "EXPIRED", licenseCodeStatus(got, at.Add(2*time.Minute)))
}
