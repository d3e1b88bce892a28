package activities

import (
	"time"

	"github.com/fulfillment-server/fulfillment/store"
)

// The payloads of the activities: what the workflows send and receive.
// They live here, beside the activities, so that the workflows can name
// each activity by a Go reference (a method value of *Activities) without
// an import cycle. Their JSON shape is part of running workflows' histories:
// add fields, never rename or retype one.

// AlertInput raises an alert for operators: a parked step, a release
// overdue.
type AlertInput struct {
	InstanceID string
	Kind       string
	Message    string
}

// Release policies: what happens when retention ends without releaseInstance.
const (
	ReleasePolicyHold    = "hold"    // keep the frozen tenant, state release_overdue, alert
	ReleasePolicyRelease = "release" // release the tenant
)

// Policy is the lifecycle policy of one instance, fixed when it is created
// (an operator may change it later with the set-policy signal). The
// worker's configuration holds the policy new instances start from: the
// env tags name the variables and their defaults.
type Policy struct {
	// FreezeGrace is how long after expiry the server waits for the
	// marketplace's FREEZE (or a renewal) before freezing the tenant itself.
	FreezeGrace time.Duration `env:"LIFECYCLE_FREEZE_GRACE, default=24h" doc:"after expiry, how long to wait for the marketplace's FREEZE (or a renewal) before the server freezes the tenant itself"`
	// Retention is how long after expiry the frozen tenant's data is kept
	// waiting for the marketplace's releaseInstance.
	Retention time.Duration `env:"LIFECYCLE_RETENTION, default=360h" doc:"after expiry, how long a frozen tenant's data is kept waiting for releaseInstance (the marketplace's 15 days)"`
	// ReleasePolicy is ReleasePolicyHold or ReleasePolicyRelease.
	ReleasePolicy string `env:"LIFECYCLE_RELEASE_POLICY, default=hold" doc:"when retention ends without releaseInstance: hold (state release_overdue, alert, data kept) or release"`
	// SupervisionSyncDelay is how long after the buyer's acceptance a
	// supervised order shows as completed (3 h on KooGallery).
	SupervisionSyncDelay time.Duration `env:"SUPERVISION_SYNC_DELAY, default=3h" doc:"how long after the buyer's acceptance a supervised order completes"`
	// SupervisionStallAlert is how long a supervised order may wait on the
	// merchant (requirements to confirm, delivery to confirm) before
	// operators are reminded, once per stall; zero turns it off.
	SupervisionStallAlert time.Duration `json:",omitempty" env:"SUPERVISION_STALL_ALERT, default=120h" doc:"how long a supervised order may wait on the merchant (requirements or delivery to confirm) before operators get one alert (0: never)"`
	// Supervised is set for products that need service supervision;
	// SupervisionReviewed for those whose deliveries Huawei Cloud reviews
	// (华为云复核) before the buyer's acceptance.
	Supervised          bool
	SupervisionReviewed bool `json:",omitempty"`
	// DebugTTL is how long a debug instance (testFlag=1) lives after its
	// last callback before its disposable tenant is released.
	DebugTTL time.Duration `env:"DEBUG_INSTANCE_TTL, default=72h" doc:"how long after its last callback a debug (testFlag=1) instance's disposable tenant is released"`
	// MeteringPeriod (an hour, or a day for products billed daily) and
	// MeteringPushDelay for pay-per-use instances.
	MeteringPeriod    time.Duration `json:",omitempty" env:"METERING_PERIOD, default=1h" doc:"the metering period of pay-per-use instances (the marketplace bills hourly); must divide a day"`
	MeteringPushDelay time.Duration `json:",omitempty" env:"METERING_PUSH_DELAY, default=5m" doc:"how long after a period ends it is closed and pushed, so usage reported a little late still counts in it (the marketplace collects at :15)"`
	// TenantRetryLimit is how long a failing call to the merchant's
	// application (provision, freeze, unfreeze, upgrade, release) is
	// retried before the instance parks; zero means an hour.
	TenantRetryLimit time.Duration `json:",omitempty" env:"PROVISIONER_RETRY_LIMIT, default=1h" doc:"how long a call to your application that keeps failing transiently (provision, freeze, unfreeze, upgrade, release) is retried before the instance parks for an operator; each purchase keeps the value it started with"`
	// PackageReset is PackageResetMonthly or PackageResetYearly for a
	// package whose content resets (按月/按年重置, PACKAGE_RESET_PRODUCTS),
	// else empty: its quota comes back at each boundary of its validity.
	PackageReset string `json:",omitempty"`
	// PackageResetScale > 1 counts a resetting package's months that many
	// times faster: only for rehearsals against the emulator's fast clock
	// (PACKAGE_RESET_TIME_SCALE, read by the command).
	PackageResetScale float64 `json:",omitempty"`
}

// How a package's content resets (套餐包 按月/按年重置).
const (
	PackageResetMonthly = "monthly"
	PackageResetYearly  = "yearly"
)

// PolicyInput asks the worker's configuration for the policy of an order.
type PolicyInput struct {
	Order Order
	Debug bool
}

// Order is what the workflow keeps of the purchase from Query Order.
type Order struct {
	OrderID      string
	OrderLineID  string
	OrderType    string
	ChargingMode string
	SkuCode      string
	ProductID    string
	LinearValue  *int64 `json:",omitempty"`
	PeriodType   string
	PeriodNumber int
	ExpireTime   *time.Time `json:",omitempty"`
	CustomerID   string
	CustomerName string
}

// AppInfo is the non-secret part of what the buyer is shown. The initial
// credentials never enter the workflow: the Provision activity seals them
// into the database.
type AppInfo struct {
	FrontEndURL    string
	AdminURL       string `json:",omitempty"`
	Memo           string `json:",omitempty"`
	HasCredentials bool
}

// V1OrderPayload is the inbox payload of a V1 newInstance or upgrade:
// the order, which V1 sends in the request (contract §1.12) instead of
// leaving it to Query Order. The inbox writes it; FetchOrder reads it.
type V1OrderPayload struct {
	V1Order Order `json:"v1Order"`
}

// V1OrderLinePrefix starts the order line of every V1 instance: V1 orders
// have no order lines, and the inbox names the line after the instance it
// creates (a V1 instanceId starts with it too), which is how FetchOrder
// knows to read the order from the inbox.
const V1OrderLinePrefix = "v1-"

// FetchOrderInput asks for an order line through Query Order.
type FetchOrderInput struct {
	OrderID     string
	OrderLineID string
	// ClaimFor, when set, is the instance this order line creates: a
	// pay-per-use line's billing item (orderId + productId) is claimed for
	// it, and the fetch fails if another instance already serves it.
	ClaimFor string `json:",omitempty"`
}

// ProvisionInput creates the tenant of an instance.
type ProvisionInput struct {
	InstanceID string
	Order      Order
	Debug      bool
}

// TenantInput names the tenant of an instance for freeze, unfreeze and
// release. Reason is recorded by the merchant's application.
type TenantInput struct {
	InstanceID string
	Debug      bool
	Reason     string
	// OperationID names this operation, for the application's
	// idempotency key: the same for every retry of it, another for the
	// next operation ("freeze:<instanceId>:<n>"). Empty in activities
	// scheduled before it existed.
	OperationID string `json:",omitempty"`
}

// UpgradeInput applies a new spec to the tenant of an instance.
type UpgradeInput struct {
	InstanceID string
	Debug      bool
	Order      Order
}

// ChangeCheckRequest is the target spec of a changeInstanceCheck (contract §1.8).
type ChangeCheckRequest struct {
	SkuCode     string
	ProductID   string
	LinearValue *int64 `json:",omitempty"`
}

// ChangeCheckResult answers a change check; Reason is readable by the buyer.
type ChangeCheckResult struct {
	Allowed bool
	Reason  string `json:",omitempty"`
}

// CheckChangeInput asks the merchant's application about a spec change.
type CheckChangeInput struct {
	InstanceID string
	Debug      bool
	Current    Order
	Target     ChangeCheckRequest
}

// Event is one timeline entry written with the read model. Key makes the
// append idempotent.
type Event struct {
	Key     string
	Kind    string
	Message string
	At      time.Time
}

// SaveInput writes the read model of an instance with new timeline events.
// The workflow presents its own state (ReadModel). SaveInstance runs as a
// local activity, so no save scheduled by an older version is ever read by
// this one; the field keeps its name from when it carried the whole state.
type SaveInput struct {
	Snapshot ReadModel
	Events   []Event
}

// Span is a stretch of time [Start, End).
type Span = store.Span

// ClosePeriodsInput closes metering periods of an instance.
type ClosePeriodsInput struct {
	InstanceID string
	Periods    []Span
	Billable   bool
	At         time.Time
}

// ClosePeriodsResult says what closing found.
type ClosePeriodsResult struct {
	Closed int
	// PackageExhausted is a package that these periods used up.
	PackageExhausted string `json:",omitempty"`
}

// PushUsageInput pushes an instance's pending periods, as of Now.
type PushUsageInput struct {
	InstanceID string
	Now        time.Time
}

// PushUsageResult says what a push did.
type PushUsageResult struct {
	Pushed int
	// Expired are the periods found older than the marketplace accepts
	// (21 days) before they could be pushed.
	Expired   int
	Remaining int
	// Error says why the push failed (the marketplace refused it or could
	// not be reached); the periods stay pending.
	Error string `json:",omitempty"`
	// Held describes the periods taken out of the pushes because their
	// usage cannot be pushed as it is: they wait for an operator, the
	// periods after them go on.
	Held []string `json:",omitempty"`
}

// ExcludeFrozenInput excludes the usage of a frozen stretch from billing.
type ExcludeFrozenInput struct {
	InstanceID string
	Span       Span
}

// RegisterPackageInput records a package's quota.
type RegisterPackageInput struct {
	PackageInstanceID string
	CustomerID        string
	SkuCode           string
	Quota             int64
}

// ResetPackageInput gives a package its quota back for the cycle that
// begins at CycleStart.
type ResetPackageInput struct {
	PackageInstanceID string
	CycleStart        time.Time
}

// ReadModel is an instance as the workflow presents it to the read model:
// the row of the instances table, and Details, what it shows beyond the
// state. Field names follow the workflow's Snapshot, whose JSON older
// saves carried.
type ReadModel struct {
	InstanceID  string
	OrderID     string
	OrderLineID string
	Debug       bool
	State       string
	Reason      string     `json:",omitempty"`
	Order       *Order     `json:",omitempty"`
	ExpireTime  *time.Time `json:",omitempty"`
	AppInfo     *AppInfo   `json:",omitempty"`
	// NextDeadline is the earliest coming timer, if any.
	NextDeadline *DeadlineDetails `json:",omitempty"`
	Details      InstanceDetails
	Revision     int64
}

// InstanceDetails is the shape of the read model's details (the instances
// table's details column): what the workflow shows beyond the state, as
// the admin API presents it.
type InstanceDetails struct {
	Policy         *PolicyDetails      `json:"policy,omitempty"`
	FrozenBy       string              `json:"frozenBy,omitempty"`
	GraceExtension string              `json:"graceExtension,omitempty"`
	UnfreezeDueAt  *time.Time          `json:"unfreezeDueAt,omitempty"`
	Parked         *ParkedDetails      `json:"parked,omitempty"`
	Supervision    *SupervisionDetails `json:"supervision,omitempty"`
	Deadlines      []DeadlineDetails   `json:"deadlines,omitempty"`
	// PackageCycle is the current cycle of a package whose content resets.
	PackageCycle *PackageCycleDetails `json:"packageCycle,omitempty"`
}

// PackageCycleDetails is the current cycle of a package whose quota comes
// back monthly or yearly: cycle Number (0 the first) runs from Start to End.
type PackageCycleDetails struct {
	Reset  string    `json:"reset"`
	Number int       `json:"number"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// PolicyDetails is an instance's lifecycle policy; durations as Go
// durations ("24h0m0s").
type PolicyDetails struct {
	FreezeGrace           string `json:"freezeGrace"`
	Retention             string `json:"retention"`
	ReleasePolicy         string `json:"releasePolicy"`
	SupervisionSyncDelay  string `json:"supervisionSyncDelay,omitempty"`
	SupervisionStallAlert string `json:"supervisionStallAlert,omitempty"`
	Supervised            bool   `json:"supervised"`
	SupervisionReviewed   bool   `json:"supervisionReviewed,omitempty"`
}

// ParkedDetails is a step waiting for an operator.
type ParkedDetails struct {
	Step  string    `json:"step"`
	Error string    `json:"error"`
	Since time.Time `json:"since"`
}

// SupervisionDetails is the service-supervision flow of an order.
type SupervisionDetails struct {
	RequirementsAt          *time.Time `json:"requirementsAt,omitempty"`
	RequirementsConfirmedAt *time.Time `json:"requirementsConfirmedAt,omitempty"`
	RequirementRejections   int        `json:"requirementRejections,omitempty"`
	Evidence                string     `json:"evidence,omitempty"`
	Result                  string     `json:"result,omitempty"`
	ReviewedAt              *time.Time `json:"reviewedAt,omitempty"`
	ReviewRejections        int        `json:"reviewRejections,omitempty"`
	WaitingSince            *time.Time `json:"waitingSince,omitempty"`
	StallAlertedAt          *time.Time `json:"stallAlertedAt,omitempty"`
	DeclaredStart           *time.Time `json:"declaredStart,omitempty"`
	DeliveredAt             *time.Time `json:"deliveredAt,omitempty"`
	AcceptedAt              *time.Time `json:"acceptedAt,omitempty"`
	CompletedAt             *time.Time `json:"completedAt,omitempty"`
	Rejections              int        `json:"rejections,omitempty"`
	AppealedFrom            string     `json:"appealedFrom,omitempty"`
	AppealReason            string     `json:"appealReason,omitempty"`
}

// DeadlineDetails is a coming timer and what it will do.
type DeadlineDetails struct {
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
	Why  string    `json:"why"`
}
