// Package workflows holds the deterministic workflow code: one instance
// workflow per purchased instance that owns its lifecycle. This file is the
// workflows' public surface: names, IDs, search attributes and payload
// types, importable by the API and the activities without pulling in any
// workflow logic. Nothing in this package performs I/O.
package workflows

import (
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/fulfillment-server/fulfillment/activities"
)

// The workflows' state holds what activities returned; these names are
// the activities' payload types (defined beside the activities, so that a
// workflow names an activity by its method, not by a string).
type (
	// Order is what the workflow keeps of the purchase from Query Order.
	Order = activities.Order
	// AppInfo is the non-secret part of what the buyer is shown.
	AppInfo = activities.AppInfo
	// Policy is the lifecycle policy of one instance.
	Policy = activities.Policy
	// Event is one timeline entry written with the read model.
	Event = activities.Event
	// Span is a stretch of time [Start, End).
	Span = activities.Span
	// ChangeCheckRequest is the target spec of a changeInstanceCheck.
	ChangeCheckRequest = activities.ChangeCheckRequest
	// ChangeCheckResult answers a change check.
	ChangeCheckResult = activities.ChangeCheckResult
)

// Release policies: what happens when retention ends without releaseInstance.
const (
	ReleasePolicyHold    = activities.ReleasePolicyHold
	ReleasePolicyRelease = activities.ReleasePolicyRelease
)

// acts names the activities in workflow code: a nil *Activities whose method
// values the SDK turns into the registered activity names (FetchOrder,
// Freeze, …), so that go-to-definition leads from a step to its activity.
// The worker registers the real one.
var acts *activities.Activities

// DefaultTaskQueue is the task queue of the instance workflows and their
// activities unless TEMPORAL_TASK_QUEUE says otherwise.
const DefaultTaskQueue = "fulfillment"

// Workflow, signal, query and update names.
const (
	// InstanceWorkflowName is the registered name of InstanceWorkflow.
	InstanceWorkflowName = "InstanceWorkflow"
	// CallbackSignal carries a recorded marketplace callback (Callback).
	CallbackSignal = "callback"
	// StateQuery returns the instance's full state (Snapshot).
	StateQuery = "state"
	// ChangeCheckUpdate asks whether a spec change fits the tenant
	// (ChangeCheckRequest → ChangeCheckResult).
	ChangeCheckUpdate = "change-check"
	// OperatorSignal carries an operator's action (OperatorRequest).
	OperatorSignal = "operator"
)

// Operator actions, the Name of an OperatorRequest.
const (
	OpRetry         = "retry"          // run the parked step again
	OpSkip          = "skip"           // treat the parked step as done (done by hand) or abandon provisioning
	OpExtendGrace   = "extend-grace"   // push the freeze and release deadlines back by Duration
	OpForceFreeze   = "force-freeze"   // freeze now, whatever the expiry
	OpForceUnfreeze = "force-unfreeze" // unfreeze now
	OpForceRelease  = "force-release"  // release now: deletes the tenant's data
	OpSetPolicy     = "set-policy"     // change the release policy
	OpRetryPush     = "retry-push"     // push the pending usage periods now (pay-per-use)
	// Service supervision steps (contract §5.3), relayed from the seller and
	// buyer consoles and from Huawei Cloud's review.
	OpSubmitRequirements  = "submit-requirements"  // buyer: requirements submitted (提交需求)
	OpConfirmRequirements = "confirm-requirements" // merchant: requirements confirmed (确认需求)
	OpRejectRequirements  = "reject-requirements"  // merchant: requirements rejected (驳回), Reason says why
	OpConfirmDelivery     = "confirm-delivery"     // merchant: delivered, with Evidence, Result and an optional StartTime
	OpApproveReview       = "review-approve"       // Huawei Cloud's review (华为云复核): the delivery is approved
	OpRejectReview        = "review-reject"        // Huawei Cloud's review: the delivery is rejected, Reason says why
	OpAccept              = "accept"               // buyer: accepted (AcceptedAt, default now)
	OpReject              = "reject"               // buyer: rejected the delivery
	OpAppeal              = "appeal"               // either side: suspends the flow
	OpResolveAppeal       = "resolve-appeal"       // the platform's arbitration: the flow resumes
)

// SupervisionSteps lists the steps of the supervision flow.
var SupervisionSteps = []string{
	OpSubmitRequirements, OpConfirmRequirements, OpRejectRequirements, OpConfirmDelivery,
	OpApproveReview, OpRejectReview, OpAccept, OpReject, OpAppeal, OpResolveAppeal,
}

// OperatorActions lists every operator action.
var OperatorActions = []string{
	OpRetry, OpSkip, OpExtendGrace, OpForceFreeze, OpForceUnfreeze, OpForceRelease, OpSetPolicy, OpRetryPush,
	OpSubmitRequirements, OpConfirmRequirements, OpRejectRequirements, OpConfirmDelivery,
	OpApproveReview, OpRejectReview, OpAccept, OpReject, OpAppeal, OpResolveAppeal,
}

// OperatorRequest is an operator's action on an instance. ID is unique per
// request (it keys the timeline entry); Reason is mandatory and recorded.
type OperatorRequest struct {
	ID     string
	Name   string
	Reason string
	Actor  string    `json:",omitempty"`
	At     time.Time // when the operator asked
	// extend-grace
	Duration time.Duration `json:",omitempty"`
	// confirm-delivery: the delivery document, the result description
	// (服务结果描述) and the declared start of service
	Evidence  string     `json:",omitempty"`
	Result    string     `json:",omitempty"`
	StartTime *time.Time `json:",omitempty"`
	// accept
	AcceptedAt *time.Time `json:",omitempty"`
	// set-policy
	ReleasePolicy string `json:",omitempty"`
}

// InstanceWorkflowID is the workflow ID of an instance: a business key, so
// that every callback of the instance reaches the same workflow.
func InstanceWorkflowID(instanceID string) string { return "instance/" + instanceID }

// Search attributes set on every instance workflow, so that the Temporal UI
// can list instances by ID, order and lifecycle state.
var (
	InstanceIDAttribute = temporal.NewSearchAttributeKeyKeyword("FulfillmentInstanceId")
	OrderIDAttribute    = temporal.NewSearchAttributeKeyKeyword("FulfillmentOrderId")
	StateAttribute      = temporal.NewSearchAttributeKeyKeyword("FulfillmentState")
)

// SearchAttributeTypes is what the namespace must have registered.
func SearchAttributeTypes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		InstanceIDAttribute.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		OrderIDAttribute.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		StateAttribute.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

// State is an instance's lifecycle state, as shown by the admin API, the
// read model and the FulfillmentState search attribute.
type State string

// Lifecycle states.
const (
	// StateProvisioning: the order is being read and the tenant created.
	StateProvisioning State = "provisioning"
	// Service supervision (contract §5.3), for products that need it: the
	// tenant exists; the buyer submits requirements and the merchant
	// confirms them, the merchant confirms delivery, Huawei Cloud reviews
	// it for reviewed products, the buyer accepts, and the order completes
	// a few hours later.
	StateAwaitingRequirements  State = "awaiting_requirements"
	StateRequirementsSubmitted State = "requirements_submitted"
	StateAwaitingDelivery      State = "awaiting_delivery"
	StateUnderReview           State = "under_review"
	StateDelivered             State = "delivered"
	StateAccepted              State = "accepted"
	StateAppealed              State = "appealed"
	// StateActive: in service, before its expiry.
	StateActive State = "active"
	// StateGrace: expired, still usable, waiting for the marketplace's
	// FREEZE or a renewal until the freeze grace ends.
	StateGrace State = "grace"
	// StateFrozen: unusable, data kept.
	StateFrozen State = "frozen"
	// StateReleaseOverdue: frozen past the retention period without the
	// marketplace's releaseInstance; held (data kept) and alerted.
	StateReleaseOverdue State = "release_overdue"
	// StateParked: a step failed for good and waits for an operator.
	StateParked State = "parked"
	// StateReleased: the tenant and its data are deleted; the end.
	StateReleased State = "released"
	// StateFailed: provisioning was abandoned by an operator.
	StateFailed State = "failed"
)

// States lists every state, for validation and documentation.
var States = []State{
	StateProvisioning, StateAwaitingRequirements, StateRequirementsSubmitted, StateAwaitingDelivery, StateUnderReview,
	StateDelivered, StateAccepted, StateAppealed,
	StateActive, StateGrace, StateFrozen, StateReleaseOverdue, StateParked, StateReleased, StateFailed,
}

// Callback activities as they arrive in Callback.Activity (the marketplace's
// names, contract §1.1).
const (
	ActivityNewInstance          = "newInstance"
	ActivityRefreshInstance      = "refreshInstance"
	ActivityUpdateInstanceStatus = "updateInstanceStatus"
	ActivityReleaseInstance      = "releaseInstance"
	ActivityUpgradeInstance      = "upgradeInstance"
	ActivityGetLicenseAsync      = "getLicenseAsync"
)

// InstanceInput starts an instance workflow. Carried is set when the
// workflow continues as new and holds everything it knew.
type InstanceInput struct {
	InstanceID  string
	OrderID     string
	OrderLineID string
	Debug       bool
	Carried     *Snapshot `json:",omitempty"`
	// Generation is the instance workflow's behaviour this run was started
	// with (InstanceGeneration when it starts now). Runs started before a
	// change replay with the behaviour they had, and a new run needs no
	// version marker in its history to take the newest one: a change that
	// only new runs should see raises InstanceGeneration.
	Generation int `json:",omitempty"`
}

// Generations of the instance workflow's behaviour (InstanceInput.Generation).
const (
	// GenerationKeptDeadlineTimer: the workflow keeps one timer for its
	// next deadline across waits, instead of starting one at every wait.
	GenerationKeptDeadlineTimer = 1
	// GenerationKnownDirectory: the workflow knows from its first run
	// whether a 联营 kit sync ever gave the instance a directory
	// (Snapshot.DirectoryKnown), and a release drops the directory only
	// then, without asking the version of dropping it.
	GenerationKnownDirectory = 2
	// GenerationStateShownAtStart: the starter sets the state search
	// attribute to provisioning (as the inbox does), so the first run does
	// not upsert it again.
	GenerationStateShownAtStart = 3
	// InstanceGeneration is the behaviour of runs started now.
	InstanceGeneration = GenerationStateShownAtStart
)

// Callback is a recorded marketplace callback delivered to the instance
// workflow. Key is the inbox's deduplication key and Seq its arrival order;
// the workflow applies each key once and never lets an older callback undo
// a newer one of the same kind.
type Callback struct {
	Key        string
	Seq        int64
	Activity   string
	ReceivedAt time.Time
	// SentAt is when the marketplace sent the callback (its signed
	// timestamp); zero when unknown (callbacks recorded before it was
	// kept). Expiry changes are ordered by it.
	SentAt time.Time `json:",omitzero"`
	Debug  bool
	// OrderID and OrderLineID name the callback's own order: the renewal,
	// upgrade or unsubscription order.
	OrderID     string `json:",omitempty"`
	OrderLineID string `json:",omitempty"`
	// refreshInstance
	Scene      string    `json:",omitempty"`
	ExpireTime time.Time `json:",omitempty"`
	ProductID  string    `json:",omitempty"`
	// updateInstanceStatus: FREEZE or UNFREEZE
	Status string `json:",omitempty"`
	// V1 is set for a callback that came through the V1 GET interface
	// (contract §1.12), which has no UNFREEZE: its renewal restores an
	// instance the marketplace froze.
	V1 bool `json:",omitempty"`
}

// Snapshot is the complete state of an instance workflow: what the state
// query returns and what continue-as-new carries.
type Snapshot struct {
	InstanceID  string
	OrderID     string
	OrderLineID string
	Debug       bool
	State       State
	// DirectoryKnown: HasDirectory has been kept since the first run (a
	// purchase started from GenerationKnownDirectory on); HasDirectory: a
	// 联营 kit sync reached the instance, so its release drops the
	// directory.
	DirectoryKnown bool `json:",omitempty"`
	HasDirectory   bool `json:",omitempty"`
	// Reason says why the instance is in its state, when that is not
	// obvious (a failure, a freeze).
	Reason     string     `json:",omitempty"`
	Order      *Order     `json:",omitempty"`
	ExpireTime *time.Time `json:",omitempty"`
	AppInfo    *AppInfo   `json:",omitempty"`
	Policy     Policy
	// GraceExtension is what operators added to the freeze and release
	// deadlines of the current expiry (reset when the expiry changes).
	GraceExtension time.Duration `json:",omitempty"`
	// FrozenBy says who froze the tenant: FrozenByMarketplace,
	// FrozenByExpiry (the server, at the end of grace) or FrozenByOperator.
	FrozenBy string `json:",omitempty"`
	// UnfreezeDueAt is set when a frozen instance was renewed: the
	// marketplace's UNFREEZE is expected by then, else the server unfreezes.
	UnfreezeDueAt *time.Time `json:",omitempty"`
	// SelfFreezeWaived is the expiry for which the server must not freeze
	// on its own (the marketplace or an operator unfroze it after expiry).
	SelfFreezeWaived *time.Time `json:",omitempty"`
	// Parked is the step waiting for an operator.
	Parked *Parked `json:",omitempty"`
	// Supervision is the service-supervision flow of a supervised product.
	Supervision *Supervision `json:",omitempty"`
	// Metered is set for a pay-per-use instance whose usage a metering
	// workflow pushes; Package for a package instance whose quota covers
	// the customer's pay-per-use instances.
	Metered bool `json:",omitempty"`
	Package bool `json:",omitempty"`
	// PackageCycle is set for a package whose content resets monthly or
	// yearly (按月/按年重置): the cycle its quota is counted in.
	PackageCycle *PackageCycle `json:",omitempty"`
	// LastCallbackAt is when the newest callback arrived (debug instances
	// are released DebugTTL after it).
	LastCallbackAt time.Time
	// Deadlines are the coming timers, earliest first, each with its
	// reason. Computed whenever the state is shown.
	Deadlines []Deadline `json:",omitempty"`
	// Applied holds the keys of recently applied callbacks, oldest first.
	Applied []string
	// LastStatusSeq and LastRefreshSeq are the arrival numbers of the
	// newest status change and expiry change applied.
	LastStatusSeq  int64
	LastRefreshSeq int64
	// LastRefreshSentAt is when the marketplace sent the newest expiry
	// change applied (zero if unknown).
	LastRefreshSentAt time.Time `json:",omitzero"`
	// Revision numbers the read-model writes.
	Revision int64
	// TenantOps counts the freeze, unfreeze and release operations asked
	// of the application; it numbers their idempotency keys.
	TenantOps int `json:",omitempty"`
	// Pending is the number of received callbacks not yet applied.
	Pending int
}

// Who froze a tenant.
const (
	FrozenByMarketplace = "marketplace"
	FrozenByExpiry      = "expiry"
	FrozenByOperator    = "operator"
	// FrozenByQuota: a package that stops when used up (用完即停) ran out.
	FrozenByQuota = "quota"
)

// Parked is a step that failed for good, waiting for an operator's retry
// or skip. ResumeState is the state to return to.
type Parked struct {
	Step        string
	Error       string
	Since       time.Time
	ResumeState State
}

// Supervision is the service-supervision flow of one purchase.
type Supervision struct {
	// Flow is the revision of the flow the purchase follows, fixed when
	// it is provisioned: 0 for purchases provisioned before the
	// requirements step, the Huawei review and the stall reminder (they go
	// straight to awaiting_delivery), SupervisionFlowRequirements since.
	Flow int `json:",omitempty"`
	// RequirementsAt is when the buyer submitted the requirements now
	// before the merchant; RequirementsConfirmedAt when the merchant
	// confirmed them; RequirementRejections counts the merchant's
	// rejections.
	RequirementsAt          *time.Time `json:",omitempty"`
	RequirementsConfirmedAt *time.Time `json:",omitempty"`
	RequirementRejections   int        `json:",omitempty"`
	Evidence                string     `json:",omitempty"`
	// Result is the merchant's description of the service's result
	// (服务结果描述), given with the evidence.
	Result string `json:",omitempty"`
	// ReviewedAt is when Huawei Cloud's review approved the delivery;
	// ReviewRejections counts its rejections.
	ReviewedAt       *time.Time `json:",omitempty"`
	ReviewRejections int        `json:",omitempty"`
	// WaitingSince is when the merchant's current step (confirming the
	// requirements, or delivering) became due; StallAlertedAt when
	// operators were reminded that it stalled (once per stall).
	WaitingSince   *time.Time `json:",omitempty"`
	StallAlertedAt *time.Time `json:",omitempty"`
	DeclaredStart  *time.Time `json:",omitempty"`
	DeliveredAt    *time.Time `json:",omitempty"`
	AcceptedAt     *time.Time `json:",omitempty"`
	CompletedAt    *time.Time `json:",omitempty"`
	Rejections     int        `json:",omitempty"`
	// AppealedFrom is the stage suspended by an appeal.
	AppealedFrom State  `json:",omitempty"`
	AppealReason string `json:",omitempty"`
	// ResumedAt is when an appeal over an accepted order was resolved:
	// the completion delay counts again from then.
	ResumedAt *time.Time `json:",omitempty"`
}

// Deadline kinds.
const (
	DeadlineExpiry          = "expiry"
	DeadlineSelfFreeze      = "self-freeze"
	DeadlineRetentionEnd    = "retention-end"
	DeadlineUnfreezeDue     = "unfreeze-due"
	DeadlineSupervisionSync = "supervision-sync"
	// DeadlineSupervisionStall reminds operators of a merchant's step
	// overdue by SUPERVISION_STALL_ALERT.
	DeadlineSupervisionStall = "supervision-stall"
	DeadlineDebugTTL         = "debug-ttl"
	// DeadlinePackageReset ends a resetting package's cycle: its quota
	// comes back.
	DeadlinePackageReset = "package-reset"
)

// Deadline is a coming timer of an instance and what it will do.
type Deadline struct {
	Kind string
	At   time.Time
	Why  string
}

// Metering (pay-per-use): a child workflow per metered instance closes its
// usage periods and pushes them to the marketplace.
const (
	// MeteringWorkflowName is the registered name of MeteringWorkflow.
	MeteringWorkflowName = "MeteringWorkflow"
	// MeteringSignal controls a metering workflow (MeteringControl).
	MeteringSignal = "metering"
	// MeteringQuery returns a metering workflow's state (MeteringSnapshot).
	MeteringQuery = "metering"
	// InternalSignal carries what a metering workflow or a package's
	// instance tells an instance workflow (Internal).
	InternalSignal = "internal"
)

// MeteringWorkflowID is the workflow ID of an instance's metering.
func MeteringWorkflowID(instanceID string) string { return "metering/" + instanceID }

// Metering controls, the Kind of a MeteringControl.
const (
	MeterPause     = "pause"      // the instance is frozen: close the partial period, stop metering
	MeterResume    = "resume"     // unfrozen: meter again from At
	MeterStop      = "stop"       // released: flush the partial period, then end
	MeterRetryPush = "retry-push" // an operator asks to push the pending periods now
)

// MeteringControl is sent by the instance workflow to its metering.
type MeteringControl struct {
	Kind string
	At   time.Time
}

// MeteringInput starts a metering workflow.
type MeteringInput struct {
	InstanceID string
	// Period is the metering period: an hour, or a day for products billed
	// daily. Periods are aligned on multiples of Period since the Unix epoch.
	Period time.Duration
	// PushDelay is how long after a period ends it is pushed: the first
	// minutes of the next period (contract §6.2).
	PushDelay time.Duration
	// From is when metering starts.
	From    time.Time
	Carried *MeteringSnapshot `json:",omitempty"`
}

// MeteringSnapshot is the whole state of a metering workflow.
type MeteringSnapshot struct {
	InstanceID string
	Period     time.Duration
	PushDelay  time.Duration
	// OpenSince is the start of the period being metered now.
	OpenSince time.Time
	// Batched: the usage collector closes and pushes the periods; this
	// workflow only reports freezes, unfreezes and the release.
	Batched  bool `json:",omitempty"`
	Paused   bool
	PausedAt time.Time `json:",omitempty"`
	// PushFailures counts the consecutive failed pushes; NextPushAt is
	// the retry after one.
	PushFailures int
	NextPushAt   *time.Time `json:",omitempty"`
	LastError    string     `json:",omitempty"`
	// BodySignAlerted: operators were told that the marketplace refused
	// the pushes' body signature (MKT.0102), once per metering life.
	BodySignAlerted bool `json:",omitempty"`
	Pending         int
	LastPushedAt    *time.Time `json:",omitempty"`
	// Expired counts the periods that became too old to push;
	// ExpiredUnalerted those not yet in an alert, which is sent at most
	// once a day (LastExpiryAlert) so that a long outage does not page
	// operators every hour.
	Expired          int
	ExpiredUnalerted int        `json:",omitempty"`
	LastExpiryAlert  *time.Time `json:",omitempty"`
}

// Kinds of internal messages to an instance workflow.
const (
	InternalQuotaExhausted  = "quota-exhausted"  // a package covering it is used up: stop the service
	InternalQuotaRestored   = "quota-restored"   // a new package covers it: resume the service
	InternalMeteringFlushed = "metering-flushed" // the last partial period is pushed (before release)
)

// Internal is a message to an instance workflow from another workflow.
type Internal struct {
	Kind    string
	Package string `json:",omitempty"`
	// Reset is set on InternalQuotaRestored when the quota came back
	// because the package's content reset (monthly or yearly), not
	// because a package was bought.
	Reset string `json:",omitempty"`
}
