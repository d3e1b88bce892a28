package emulator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// The 联营 kit's console actions (contract §12.1): the buyer binds the
// purchased app to an enterprise, the enterprise's administrator
// authorises and revokes users and changes departments, the app is
// unbound.
const (
	ActBind        = "bind"         // tenantSync, applicationSync, allOrgSync (Enterprise)
	ActUnbind      = "unbind"       // applicationSync and tenantSync, flag 0
	ActAuthorize   = "authorize"    // authSync flag 1 (Users, Role, OrgCode)
	ActRevoke      = "revoke"       // authSync flag 3: the authorisation is cancelled (Users)
	ActRemoveUsers = "remove-users" // authSync flag 0: the users left the enterprise (Users)
	ActDepartment  = "department"   // singleOrgSync (OrgCode, OrgName, ParentCode, Delete)
)

// NewKitCredentialActivity issues an app credential's client secret,
// encrypted for the merchant.
const NewKitCredentialActivity = "EmulatorNewKitCredential"

// kitState is the enterprise a purchase's app is bound to, as the
// marketplace knows it.
type kitState struct {
	TenantID, TenantCode, Name, DomainName string
	AppID, ClientID                        string
	// EncryptedSecret is the clientSecret as sent (RSA-OAEP, base64);
	// SecretSHA256 the SHA-256 of the secret, what the merchant's server
	// shows of it.
	EncryptedSecret string
	SecretSHA256    string
	Users           []KitUserView
	Orgs            []KitOrgView
}

// KitView is the kit's side of a purchase, as the purchase query shows it.
type KitView struct {
	TenantID     string        `json:"tenantId"`
	TenantCode   string        `json:"tenantCode"`
	Name         string        `json:"name"`
	DomainName   string        `json:"domainName"`
	AppID        string        `json:"appId"`
	ClientID     string        `json:"clientId"`
	SecretSHA256 string        `json:"clientSecretSha256"`
	Users        []KitUserView `json:"users"`
	Orgs         []KitOrgView  `json:"orgs"`
}

// Value stores the view as JSON (the purchases' kit column).
func (v KitView) Value() (driver.Value, error) { return json.Marshal(v) }

// Scan reads the kit column.
func (v *KitView) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok {
		return fmt.Errorf("kit column: unexpected %T", src)
	}
	return json.Unmarshal(b, v)
}

// KitUserView is a user of the enterprise and its authorisation.
type KitUserView struct {
	UserName string `json:"userName"`
	Role     string `json:"role"`
	OrgCode  string `json:"orgCode"`
	// State is authorized, revoked or deleted.
	State string `json:"state"`
}

// KitOrgView is a department of the enterprise.
type KitOrgView struct {
	OrgCode    string `json:"orgCode"`
	OrgName    string `json:"orgName"`
	ParentCode string `json:"parentCode,omitempty"`
}

// KitCredential is an issued client secret: encrypted for the merchant,
// and its SHA-256. The secret itself is kept nowhere.
type KitCredential struct {
	EncryptedSecret string
	SecretSHA256    string
}

// NewKitCredential issues a random client secret and encrypts it with the
// merchant's public key as the marketplace does (RSA-OAEP, contract
// §12.6).
func (a *Activities) NewKitCredential(ctx context.Context) (KitCredential, error) {
	if a.KitPublicKey == nil {
		return KitCredential{}, temporal.NewNonRetryableApplicationError(
			"no merchant public key: set EMULATOR_KIT_PUBLIC_KEY_FILE to the public key of KOOGALLERY_KIT_PRIVATE_KEY_FILE", "NoKitKey", nil)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return KitCredential{}, err
	}
	secret := hex.EncodeToString(raw)
	encrypted, err := koogallery.EncryptClientSecret(a.KitPublicKey, secret)
	if err != nil {
		return KitCredential{}, temporal.NewNonRetryableApplicationError("encrypt the client secret: "+err.Error(), "NoKitKey", nil)
	}
	sum := sha256.Sum256([]byte(secret))
	return KitCredential{EncryptedSecret: encrypted, SecretSHA256: hex.EncodeToString(sum[:])}, nil
}

// validateKit says whether a kit action fits the purchase now: the app can
// be bound once the instance exists and until it is released.
func (p *purchase) validateKit(a Action) error {
	switch p.State {
	case StateOrdering, StateProvisioning, StateReleased, StateUnsubscribed, StateCancelled:
		return fmt.Errorf("%s is not possible while the purchase is %s", a.Kind, p.State)
	}
	bound := p.boundOnceQueuedActionsRan()
	if a.Kind == ActBind {
		if bound {
			return errors.New("the app is already bound to an enterprise (or will be once the actions queued before run); unbind it first")
		}
		return nil
	}
	if !bound {
		return errors.New("the app is bound to no enterprise yet: bind it first")
	}
	switch a.Kind {
	case ActAuthorize, ActRevoke, ActRemoveUsers:
		if len(a.Users) == 0 {
			return errors.New("name at least one user")
		}
		for _, u := range a.Users {
			if !validKitName(u) {
				return fmt.Errorf("user name %q: use 1 to 64 letters, digits, '.', '_', '-' or '@'", u)
			}
		}
		if a.Role != "" && a.Role != "user" && a.Role != "admin" {
			return errors.New("role must be user or admin")
		}
	case ActDepartment:
		if !validKitName(a.OrgCode) || (a.ParentCode != "" && !validKitName(a.ParentCode)) {
			return errors.New("a department needs orgCode (and may have parentCode): 1 to 64 letters, digits, '.', '_', '-' or '@'")
		}
		if !a.Delete && strings.TrimSpace(a.OrgName) == "" && p.Kit != nil && !slices.ContainsFunc(p.Kit.Orgs, func(o KitOrgView) bool { return o.OrgCode == a.OrgCode }) {
			return errors.New("a new department needs orgName")
		}
	}
	return nil
}

// boundOnceQueuedActionsRan says whether the app will be bound once the
// actions accepted but not yet carried out have run: a console may send
// bind and then authorize before the workflow has bound anything.
func (p *purchase) boundOnceQueuedActionsRan() bool {
	bound := p.Kit != nil
	for _, queued := range p.Actions {
		switch queued.Kind {
		case ActBind:
			bound = true
		case ActUnbind:
			bound = false
		}
	}
	return bound
}

// validKitName is the alphabet the console accepts for user names and
// department codes.
func validKitName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)
		if !ok {
			return false
		}
	}
	return true
}

// kit carries out a kit action.
func (w *purchaseWorkflow) kit(ctx workflow.Context, a Action) {
	switch a.Kind {
	case ActBind:
		w.bind(ctx, a)
	case ActUnbind:
		w.unbind(ctx)
	case ActAuthorize:
		w.authSync(ctx, a, koogallery.KitFlagAdd)
	case ActRevoke:
		w.authSync(ctx, a, koogallery.KitFlagCancel)
	case ActRemoveUsers:
		w.authSync(ctx, a, koogallery.KitFlagDelete)
	case ActDepartment:
		w.department(ctx, a)
	}
	w.save(ctx)
}

// bind binds the app to an enterprise: the enterprise, the app's
// credential, and the enterprise's departments, as the marketplace sends
// them when the buyer binds (contract §12.1).
func (w *purchaseWorkflow) bind(ctx workflow.Context, a Action) {
	p := w.p
	var cred KitCredential
	opts := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	if err := workflow.ExecuteActivity(opts, NewKitCredentialActivity).Get(ctx, &cred); err != nil {
		w.record(ctx, "kit-failed", "The app cannot be bound: "+callError(err)+".")
		return
	}
	sum := sha256.Sum256([]byte(p.ID))
	id := hex.EncodeToString(sum[:16])
	name := strings.TrimSpace(a.Enterprise)
	if name == "" {
		name = "Enterprise " + id[:6]
	}
	code := "ent" + id[:8]
	p.Kit = &kitState{
		TenantID: id, TenantCode: code, Name: name, DomainName: "https://" + code + ".tenantaccount.example",
		AppID: "app-" + id[:8], ClientID: "client-" + id[8:16],
		EncryptedSecret: cred.EncryptedSecret, SecretSHA256: cred.SecretSHA256,
		Orgs: []KitOrgView{{OrgCode: "D1", OrgName: "总部"}, {OrgCode: "D2", OrgName: "Sales", ParentCode: "D1"}},
	}
	w.record(ctx, "kit-bind", fmt.Sprintf("The buyer binds the app to enterprise %q (tenantId %s): tenantSync, applicationSync and allOrgSync follow.", name, id))
	k := p.Kit
	w.kitCall(ctx, koogallery.KitTenantSync, map[string]any{
		"orderId": w.firstOrderID(), "tenantCode": k.TenantCode, "name": k.Name, "domainName": k.DomainName, "flag": koogallery.KitFlagAdd,
	})
	w.kitCall(ctx, koogallery.KitApplicationSync, map[string]any{
		"appId": k.AppID, "clientId": k.ClientID, "clientSecret": k.EncryptedSecret, "flag": koogallery.KitFlagAdd,
	})
	w.kitCall(ctx, koogallery.KitAllOrgSync, map[string]any{"orgInfoList": documentedOrgList(k.Orgs)})
	w.record(ctx, "kit-bound", fmt.Sprintf("Bound to enterprise %q; the app's client secret has SHA-256 %s.", name, k.SecretSHA256))
}

// unbind unbinds the app: its credential, then the enterprise.
func (w *purchaseWorkflow) unbind(ctx workflow.Context) {
	k := w.p.Kit
	w.kitCall(ctx, koogallery.KitApplicationSync, map[string]any{"appId": k.AppID, "clientId": k.ClientID, "clientSecret": "", "flag": koogallery.KitFlagDelete})
	w.kitCall(ctx, koogallery.KitTenantSync, map[string]any{
		"orderId": w.firstOrderID(), "tenantCode": k.TenantCode, "name": k.Name, "domainName": k.DomainName, "flag": koogallery.KitFlagDelete,
	})
	w.record(ctx, "kit-unbound", fmt.Sprintf("The app was unbound from enterprise %q.", k.Name))
	w.p.Kit = nil
}

// authSync tells the merchant about users: authorised (flag 1), their
// authorisation cancelled (3), or gone from the enterprise (0).
func (w *purchaseWorkflow) authSync(ctx workflow.Context, a Action, flag int) {
	k := w.p.Kit
	role, org := a.Role, a.OrgCode
	if role == "" {
		role = "user"
	}
	if org == "" && len(k.Orgs) > 0 {
		org = k.Orgs[0].OrgCode
	} else if org == "" {
		org = "D1" // every department was deleted: the marketplace still names one
	}
	state := map[int]string{koogallery.KitFlagAdd: "authorized", koogallery.KitFlagCancel: "revoked", koogallery.KitFlagDelete: "deleted"}[flag]
	var list []map[string]any
	for _, name := range a.Users {
		u := KitUserView{UserName: name, Role: role, OrgCode: org, State: state}
		if i := slices.IndexFunc(k.Users, func(u KitUserView) bool { return u.UserName == name }); i >= 0 {
			if flag != koogallery.KitFlagAdd {
				u.Role, u.OrgCode = k.Users[i].Role, k.Users[i].OrgCode
			}
			k.Users[i] = u
		} else {
			k.Users = append(k.Users, u)
		}
		list = append(list, map[string]any{
			"userName": u.UserName, "name": u.UserName, "orgCode": u.OrgCode, "role": u.Role,
			"enable": "true", "email": u.UserName + "@" + k.TenantCode + ".example", "employeeType": 1,
		})
	}
	syncTime := beijingTime(workflow.Now(ctx))
	w.kitCall(ctx, koogallery.KitAuthSync, map[string]any{
		"appId": k.AppID, "userList": list, "currentSyncTime": syncTime, "flag": flag,
	})
	w.record(ctx, "kit-users", fmt.Sprintf("Users %s: %s.", state, strings.Join(a.Users, ", ")))
}

// department adds, changes (renames or moves) or deletes a department.
func (w *purchaseWorkflow) department(ctx workflow.Context, a Action) {
	k := w.p.Kit
	i := slices.IndexFunc(k.Orgs, func(o KitOrgView) bool { return o.OrgCode == a.OrgCode })
	flag, what := koogallery.KitFlagAdd, "added"
	org := KitOrgView{OrgCode: a.OrgCode, OrgName: strings.TrimSpace(a.OrgName), ParentCode: a.ParentCode}
	switch {
	case a.Delete:
		flag, what = koogallery.KitFlagDelete, "deleted"
		if i >= 0 {
			org = k.Orgs[i]
			k.Orgs = slices.Delete(k.Orgs, i, i+1)
		}
	case i >= 0:
		flag, what = koogallery.KitFlagModify, "changed"
		// What the action leaves out stays as it was.
		if org.OrgName == "" {
			org.OrgName = k.Orgs[i].OrgName
		}
		if org.ParentCode == "" {
			org.ParentCode = k.Orgs[i].ParentCode
		}
		k.Orgs[i] = org
	default:
		k.Orgs = append(k.Orgs, org)
	}
	w.kitCall(ctx, koogallery.KitSingleOrgSync, map[string]any{
		"orgCode": org.OrgCode, "orgName": org.OrgName, "parentCode": org.ParentCode, "flag": flag,
	})
	w.record(ctx, "kit-department", fmt.Sprintf("Department %s (%s) %s.", org.OrgCode, org.OrgName, what))
}

// kitCall sends one kit call: the common members (contract §12.4) are
// added to body. Nobody retries a kit call by itself; a failed one waits
// in the console's failed calls for a restart.
func (w *purchaseWorkflow) kitCall(ctx workflow.Context, op koogallery.KitOperation, body map[string]any) {
	body["instanceId"] = w.p.InstanceID
	body["tenantId"] = w.p.Kit.TenantID
	body["timeStamp"] = beijingTime(workflow.Now(ctx))
	w.call(ctx, koogallery.Activity(op), body)
}

// firstOrderID is the purchase's first order, which tenantSync names.
func (w *purchaseWorkflow) firstOrderID() string { return w.p.ID }

// documentedOrgList writes a department list as the documentation's own
// example sends orgInfoList: a string holding a list whose keys are not
// quoted (contract §12.8). A merchant must read it.
func documentedOrgList(orgs []KitOrgView) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, o := range orgs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(fmt.Sprintf("{orgCode:%s, orgName:%s, parentCode:%s }", mustJSON(o.OrgCode), mustJSON(o.OrgName), mustJSON(o.ParentCode)))
	}
	b.WriteByte(']')
	return b.String()
}

// beijingTime is the kit's timeStamp: Beijing time, yyyyMMddHHmmssSSS
// (contract §12.4).
func beijingTime(t time.Time) string {
	return strings.Replace(t.In(time.FixedZone("UTC+8", 8*3600)).Format("20060102150405.000"), ".", "", 1)
}

// KitProbe is the result of a seller's credential probe: each kit call
// sent with empty instanceId and orderId, and what the merchant answered.
type KitProbe struct {
	Calls []KitProbeCall `json:"calls"`
}

// KitProbeCall is one call of a probe.
type KitProbeCall struct {
	Operation  string `json:"operation"`
	ResultCode string `json:"resultCode,omitempty"`
	ResultMsg  string `json:"resultMsg,omitempty"`
	Error      string `json:"error,omitempty"`
}

// ProbeKit plays the seller's credential application (应用凭证申请): the
// marketplace sends the kit's calls with empty instanceId and orderId to
// check the merchant's interface (contract §12.1). They are sent once each
// and provision nothing.
func (a *Activities) ProbeKit(ctx context.Context, now time.Time) KitProbe {
	ts := beijingTime(now)
	common := func(m map[string]any) map[string]any {
		m["instanceId"], m["tenantId"], m["testFlag"], m["timeStamp"] = "", "probe-tenant", 0, ts
		return m
	}
	type probeCall struct {
		op   koogallery.KitOperation
		body map[string]any
	}
	calls := []probeCall{
		{koogallery.KitTenantSync, common(map[string]any{"orderId": "", "tenantCode": "probe", "name": "Credential probe",
			"domainName": "https://probe.tenantaccount.example", "flag": koogallery.KitFlagAdd})},
		{koogallery.KitApplicationSync, nil}, // filled below: its secret is encrypted for the merchant
		{koogallery.KitAuthSync, common(map[string]any{"appId": "probe-app", "currentSyncTime": ts, "flag": koogallery.KitFlagAdd,
			"userList": []map[string]any{{"userName": "probe", "name": "probe", "orgCode": "D1", "role": "user", "enable": "true"}}})},
		{koogallery.KitAllOrgSync, common(map[string]any{"orgInfoList": []map[string]any{{"orgCode": "D1", "orgName": "probe"}}})},
	}
	var probe KitProbe
	for _, c := range calls {
		if c.op == koogallery.KitApplicationSync {
			cred, err := a.NewKitCredential(ctx)
			if err != nil {
				probe.Calls = append(probe.Calls, KitProbeCall{Operation: string(c.op), Error: "not sent: " + err.Error()})
				continue
			}
			c.body = common(map[string]any{"appId": "probe-app", "clientId": "probe-client", "clientSecret": cred.EncryptedSecret, "flag": koogallery.KitFlagAdd})
		}
		res, err := a.send(ctx, CallInput{Activity: string(c.op), Body: marketplaceJSON(c.body)})
		pc := KitProbeCall{Operation: string(c.op), ResultCode: res.ResultCode, ResultMsg: res.ResultMsg}
		if err != nil {
			pc.Error = err.Error()
		}
		probe.Calls = append(probe.Calls, pc)
	}
	return probe
}

// kitURL is where a kit call goes: the production address, path included,
// and the kit's sub-path (contract §12.2).
func kitURL(productionURL string, op koogallery.KitOperation) string {
	return underProductionURL(productionURL, "/produceAPI/v2/"+string(op))
}

// underProductionURL appends a sub-path to the production address's path,
// keeping its query.
func underProductionURL(productionURL, subPath string) string {
	base, query, _ := strings.Cut(productionURL, "?")
	u := strings.TrimRight(base, "/") + subPath
	if query != "" {
		u += "?" + query
	}
	return u
}
