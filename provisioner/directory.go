package provisioner

// The directory of an instance: what KooGallery's 联营 kit synchronises to
// the merchant after a buyer's enterprise binds the purchased app (contract
// §12). An enterprise (the kit's "tenant", not to be confused with the
// instance's Tenant) is bound to the instance; the marketplace issues the
// app OAuth credentials for it, authorises some of its users, and sends its
// departments. The application keeps them so that those users can log in.
//
// Every request carries the instance and the enterprise, an OperationID
// (the request's idempotency key: one per sync the marketplace sent, the
// same for every retry of it) and Debug (the marketplace's test data).

// Directory actions.
const (
	// ActionUpsert creates or updates what the request names; doing it
	// twice leaves one copy.
	ActionUpsert = "upsert"
	// ActionDelete removes it; removing what is already gone succeeds.
	ActionDelete = "delete"
	// ActionRevoke (users only) withdraws the users' authorisation to use
	// the app: they can no longer log in, but the enterprise still has
	// them (the kit's "cancel authorisation").
	ActionRevoke = "revoke"
)

// DirectoryRequest is what every directory operation carries.
type DirectoryRequest struct {
	InstanceID string `json:"instanceId"`
	// TenantID is the enterprise's ID at the marketplace.
	TenantID    string `json:"tenantId"`
	OperationID string `json:"operationId"`
	Debug       bool   `json:"debug"`
	// Action is ActionUpsert or ActionDelete (ActionRevoke for users).
	Action string `json:"action"`
}

// Enterprise is a buyer's enterprise bound to the instance.
type Enterprise struct {
	// TenantCode routes the enterprise's users' logins to its domain.
	TenantCode string `json:"tenantCode,omitempty"`
	Name       string `json:"name,omitempty"`
	DomainName string `json:"domainName,omitempty"`
}

// EnterpriseRequest binds, updates or unbinds an enterprise.
type EnterpriseRequest struct {
	DirectoryRequest
	Enterprise Enterprise `json:"enterprise"`
}

// AppCredential is the OAuth client the marketplace's identity centre
// issued for the app in the enterprise. ClientSecret is the secret in
// clear: it travels only in the signed request, over the channel the
// merchant configured.
type AppCredential struct {
	AppID        string `json:"appId"`
	ClientID     string `json:"clientId,omitempty"`
	ClientSecret string `json:"clientSecret,omitempty"`
}

// AppRequest sets or deletes an app credential.
type AppRequest struct {
	DirectoryRequest
	App AppCredential `json:"app"`
}

// DirectoryUser is a user of the enterprise authorised to use the app.
// Role is "admin" (give the user the administrator role) or "user".
type DirectoryUser struct {
	UserName     string `json:"userName"`
	Name         string `json:"name,omitempty"`
	OrgCode      string `json:"orgCode,omitempty"`
	Role         string `json:"role,omitempty"`
	Enabled      bool   `json:"enabled"`
	Position     string `json:"position,omitempty"`
	EmployeeCode string `json:"employeeCode,omitempty"`
	// EmployeeType: 1 regular, 2 intern, 3 dispatched, 4 outsourced; 0
	// when not given.
	EmployeeType int    `json:"employeeType,omitempty"`
	Mobile       string `json:"mobile,omitempty"`
	Email        string `json:"email,omitempty"`
	WorkPlace    string `json:"workPlace,omitempty"`
	EntryDate    string `json:"entryDate,omitempty"`
}

// UsersRequest authorises, updates, revokes or deletes users of an app.
type UsersRequest struct {
	DirectoryRequest
	AppID string          `json:"appId"`
	Users []DirectoryUser `json:"users"`
}

// Department is one department of the enterprise; ParentCode is empty
// for a top-level one.
type Department struct {
	OrgCode    string `json:"orgCode"`
	OrgName    string `json:"orgName,omitempty"`
	ParentCode string `json:"parentCode,omitempty"`
}

// DepartmentsRequest changes departments. With Full set it is the
// enterprise's whole department list: departments it does not name are
// gone (Action is ActionUpsert). Otherwise it names the departments added,
// changed (renamed or moved) or deleted.
type DepartmentsRequest struct {
	DirectoryRequest
	Full        bool         `json:"full"`
	Departments []Department `json:"departments"`
}
