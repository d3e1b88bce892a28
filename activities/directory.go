package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/provisioner"
	"github.com/fulfillment-server/fulfillment/store"
)

// IsKitSync reports whether a callback's activity is one of the 联营
// kit's syncs (contract §12).
func IsKitSync(activity string) bool {
	_, ok := koogallery.ParseKitOperation(activity)
	return ok
}

// DirectorySync is a kit sync as the server keeps it (the callback's
// payload): what it asks of the merchant's application, read leniently
// from the marketplace's body. An applicationSync's clientSecret is not in
// it: it is sealed apart (the callback's sealed secret).
type DirectorySync struct {
	Op       string `json:"op"`
	TenantID string `json:"tenantId"`
	// Action is provisioner.ActionUpsert, ActionDelete or ActionRevoke.
	Action     string                     `json:"action"`
	Enterprise *provisioner.Enterprise    `json:"enterprise,omitempty"`
	App        *provisioner.AppCredential `json:"app,omitempty"`
	// DecryptedWith says which private key and OAEP variant decrypted the
	// app's secret.
	DecryptedWith string                      `json:"decryptedWith,omitempty"`
	AppID         string                      `json:"appId,omitempty"`
	Users         []provisioner.DirectoryUser `json:"users,omitempty"`
	// SyncTime is an authSync's currentSyncTime (yyyyMMddHHmmssSSS).
	SyncTime    string                   `json:"syncTime,omitempty"`
	Departments []provisioner.Department `json:"departments,omitempty"`
	// Full marks allOrgSync: the enterprise's whole department list.
	Full bool `json:"full,omitempty"`
}

// DirectoryInput names a recorded kit sync to apply.
type DirectoryInput struct {
	InstanceID string
	Seq        int64
	Debug      bool
}

// DirectoryApplied says what applying a sync did, for the timeline.
type DirectoryApplied struct {
	Summary string
}

// ApplyDirectorySync applies a recorded kit sync: the merchant's
// application is told (the provisioner's Sync* calls, keyed by the sync),
// then the instance's directory records it. Both are idempotent, so a
// retry repeats them harmlessly.
func (a *Activities) ApplyDirectorySync(ctx context.Context, in DirectoryInput) (DirectoryApplied, error) {
	defer heartbeatWhileRunning(ctx)()
	payload, sealed, err := a.Store.Callbacks.Payload(ctx, in.Seq)
	if err != nil {
		return DirectoryApplied{}, err
	}
	var sync DirectorySync
	if err := json.Unmarshal(payload, &sync); err != nil || sync.TenantID == "" {
		return DirectoryApplied{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("callback %d holds no readable kit sync", in.Seq), "BadKitSync", nil)
	}
	req := provisioner.DirectoryRequest{
		InstanceID: in.InstanceID, TenantID: sync.TenantID, Debug: in.Debug, Action: sync.Action,
		OperationID: fmt.Sprintf("kit:%s:%d", in.InstanceID, in.Seq),
	}
	switch koogallery.KitOperation(sync.Op) {
	case koogallery.KitTenantSync:
		return a.applyEnterprise(ctx, in, req, sync)
	case koogallery.KitApplicationSync:
		return a.applyApp(ctx, in, req, sync, sealed)
	case koogallery.KitAuthSync:
		return a.applyUsers(ctx, in, req, sync)
	case koogallery.KitSingleOrgSync, koogallery.KitAllOrgSync:
		return a.applyDepartments(ctx, in, req, sync)
	}
	return DirectoryApplied{}, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("callback %d: %q is not a kit sync", in.Seq, sync.Op), "BadKitSync", nil)
}

func (a *Activities) applyEnterprise(ctx context.Context, in DirectoryInput, req provisioner.DirectoryRequest, sync DirectorySync) (DirectoryApplied, error) {
	e := provisioner.Enterprise{}
	if sync.Enterprise != nil {
		e = *sync.Enterprise
	}
	if err := a.Provisioner.SyncEnterprise(ctx, provisioner.EnterpriseRequest{DirectoryRequest: req, Enterprise: e}); err != nil {
		return DirectoryApplied{}, provisionerError(err)
	}
	row := store.DirectoryTenant{TenantID: sync.TenantID, TenantCode: e.TenantCode, Name: e.Name, DomainName: e.DomainName,
		State: directoryState(sync.Action)}
	if err := a.Store.Directory.SetTenant(ctx, in.InstanceID, in.Seq, row); err != nil {
		return DirectoryApplied{}, err
	}
	if sync.Action == provisioner.ActionDelete {
		return DirectoryApplied{Summary: fmt.Sprintf("Enterprise %s unbound.", sync.TenantID)}, nil
	}
	return DirectoryApplied{Summary: fmt.Sprintf("Enterprise %s (%s, code %s) bound.", e.Name, sync.TenantID, e.TenantCode)}, nil
}

func (a *Activities) applyApp(ctx context.Context, in DirectoryInput, req provisioner.DirectoryRequest, sync DirectorySync, sealed string) (DirectoryApplied, error) {
	if sync.App == nil || sync.App.AppID == "" {
		return DirectoryApplied{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("callback %d: applicationSync without its app", in.Seq), "BadKitSync", nil)
	}
	app := provisioner.AppCredential{AppID: sync.App.AppID, ClientID: sync.App.ClientID}
	row := store.DirectoryApp{TenantID: sync.TenantID, AppID: app.AppID, ClientID: app.ClientID,
		DecryptedWith: sync.DecryptedWith, State: directoryState(sync.Action)}
	if sync.Action != provisioner.ActionDelete {
		secret, err := a.Sealer.OpenSecret(sealed)
		if err != nil {
			return DirectoryApplied{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("callback %d: the sealed clientSecret cannot be opened: %v", in.Seq, err), "BadKitSync", nil)
		}
		app.ClientSecret = secret
		sum := sha256.Sum256([]byte(secret))
		row.ClientSecretSealed, row.ClientSecretSHA256 = sealed, hex.EncodeToString(sum[:])
	}
	if err := a.Provisioner.SyncApp(ctx, provisioner.AppRequest{DirectoryRequest: req, App: app}); err != nil {
		return DirectoryApplied{}, provisionerError(err)
	}
	if err := a.Store.Directory.SetApp(ctx, in.InstanceID, in.Seq, row); err != nil {
		return DirectoryApplied{}, err
	}
	if sync.Action == provisioner.ActionDelete {
		return DirectoryApplied{Summary: fmt.Sprintf("App %s credential of enterprise %s deleted.", app.AppID, sync.TenantID)}, nil
	}
	return DirectoryApplied{Summary: fmt.Sprintf("App %s credential of enterprise %s set: client %s, secret SHA-256 %s….",
		app.AppID, sync.TenantID, app.ClientID, row.ClientSecretSHA256[:12])}, nil
}

// applyUsers tells the application about the users of the sync that no
// newer sync has set since (the marketplace's syncs can arrive out of
// order; each carries its time).
func (a *Activities) applyUsers(ctx context.Context, in DirectoryInput, req provisioner.DirectoryRequest, sync DirectorySync) (DirectoryApplied, error) {
	names := make([]string, len(sync.Users))
	for i, u := range sync.Users {
		names[i] = u.UserName
	}
	newer, err := a.Store.Directory.NewerUsers(ctx, in.InstanceID, sync.TenantID, sync.AppID, sync.SyncTime, names)
	if err != nil {
		return DirectoryApplied{}, err
	}
	var users []provisioner.DirectoryUser
	for _, u := range sync.Users {
		if !slices.Contains(newer, u.UserName) {
			users = append(users, u)
		}
	}
	verb := map[string]string{provisioner.ActionUpsert: "authorised", provisioner.ActionRevoke: "revoked",
		provisioner.ActionDelete: "deleted"}[sync.Action]
	skipped := ""
	if len(newer) > 0 {
		skipped = fmt.Sprintf(" %d left as a newer sync set them: %s.", len(newer), strings.Join(newer, ", "))
	}
	if len(users) == 0 {
		return DirectoryApplied{Summary: "Users of app " + sync.AppID + ": nothing to apply." + skipped}, nil
	}
	if err := a.Provisioner.SyncUsers(ctx, provisioner.UsersRequest{DirectoryRequest: req, AppID: sync.AppID, Users: users}); err != nil {
		return DirectoryApplied{}, provisionerError(err)
	}
	rows := make([]store.DirectoryUser, len(users))
	for i, u := range users {
		details, _ := json.Marshal(userDetails(u))
		rows[i] = store.DirectoryUser{TenantID: sync.TenantID, AppID: sync.AppID, UserName: u.UserName, Name: u.Name,
			OrgCode: u.OrgCode, Role: u.Role, Enable: u.Enabled, Details: details, State: userState(sync.Action),
			SyncTime: sync.SyncTime}
	}
	if err := a.Store.Directory.SetUsers(ctx, in.InstanceID, in.Seq, rows); err != nil {
		return DirectoryApplied{}, err
	}
	return DirectoryApplied{Summary: fmt.Sprintf("%d user(s) of enterprise %s %s for app %s: %s.%s",
		len(users), sync.TenantID, verb, sync.AppID, strings.Join(userNames(users), ", "), skipped)}, nil
}

func (a *Activities) applyDepartments(ctx context.Context, in DirectoryInput, req provisioner.DirectoryRequest, sync DirectorySync) (DirectoryApplied, error) {
	if err := a.Provisioner.SyncDepartments(ctx, provisioner.DepartmentsRequest{
		DirectoryRequest: req, Full: sync.Full, Departments: sync.Departments,
	}); err != nil {
		return DirectoryApplied{}, provisionerError(err)
	}
	rows := make([]store.DirectoryOrg, len(sync.Departments))
	for i, d := range sync.Departments {
		rows[i] = store.DirectoryOrg{TenantID: sync.TenantID, OrgCode: d.OrgCode, OrgName: d.OrgName, ParentCode: d.ParentCode,
			State: directoryState(sync.Action)}
	}
	if err := a.Store.Directory.SetOrgs(ctx, in.InstanceID, sync.TenantID, in.Seq, rows, sync.Full); err != nil {
		return DirectoryApplied{}, err
	}
	if sync.Full {
		return DirectoryApplied{Summary: fmt.Sprintf("Departments of enterprise %s: the full list of %d applied.",
			sync.TenantID, len(rows))}, nil
	}
	verb := "added or changed"
	if sync.Action == provisioner.ActionDelete {
		verb = "deleted"
	}
	codes := make([]string, len(rows))
	for i, r := range rows {
		codes[i] = r.OrgCode
	}
	return DirectoryApplied{Summary: fmt.Sprintf("Department(s) of enterprise %s %s: %s.", sync.TenantID, verb,
		strings.Join(codes, ", "))}, nil
}

// DropDirectory deletes a released instance's directory.
func (a *Activities) DropDirectory(ctx context.Context, instanceID string) error {
	return a.Store.Directory.Drop(ctx, instanceID)
}

// directoryState is the state an enterprise, app or department takes for
// a sync's action.
func directoryState(action string) string {
	if action == provisioner.ActionDelete {
		return store.DirectoryDeleted
	}
	return store.DirectoryActive
}

// userDetails are the optional fields of a user, kept as JSON.
func userDetails(u provisioner.DirectoryUser) map[string]any {
	d := map[string]any{}
	for k, v := range map[string]string{"position": u.Position, "employeeCode": u.EmployeeCode, "mobile": u.Mobile,
		"email": u.Email, "workPlace": u.WorkPlace, "entryDate": u.EntryDate} {
		if v != "" {
			d[k] = v
		}
	}
	if u.EmployeeType != 0 {
		d["employeeType"] = u.EmployeeType
	}
	return d
}

func userNames(users []provisioner.DirectoryUser) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.UserName
	}
	return out
}

// userState is the state a user takes for an authSync's action.
func userState(action string) string {
	switch action {
	case provisioner.ActionDelete:
		return store.DirectoryDeleted
	case provisioner.ActionRevoke:
		return store.DirectoryRevoked
	}
	return store.DirectoryAuthorized
}
