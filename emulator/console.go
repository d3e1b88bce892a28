package emulator

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Register registers the emulator's workflow and activities on a worker.
func Register(r interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}, acts *Activities) {
	r.RegisterWorkflowWithOptions(PurchaseWorkflow, workflow.RegisterOptions{Name: PurchaseWorkflowName})
	r.RegisterActivityWithOptions(acts.Call, activity.RegisterOptions{Name: CallActivity})
	r.RegisterActivityWithOptions(acts.SaveOrder, activity.RegisterOptions{Name: SaveOrderActivity})
	r.RegisterActivityWithOptions(acts.Save, activity.RegisterOptions{Name: SaveActivity})
	r.RegisterActivityWithOptions(acts.Relay, activity.RegisterOptions{Name: RelayActivity})
	r.RegisterActivityWithOptions(acts.NewKitCredential, activity.RegisterOptions{Name: NewKitCredentialActivity})
	r.RegisterActivityWithOptions(acts.IssueLicenseCode, activity.RegisterOptions{Name: IssueLicenseCodeActivity})
	r.RegisterActivityWithOptions(acts.LicenseCodeActivation, activity.RegisterOptions{Name: LicenseCodeActivationActivity})
}

// ConsoleConfig wires the console.
type ConsoleConfig struct {
	Store     *Store
	Temporal  client.Client
	TaskQueue string
	Scale     float64
	// Emulated durations of the marketplace's rules.
	Retention        time.Duration
	SupervisionDelay time.Duration
	// AccessKey and Encryption decrypt the access information for the
	// emulated buyer ("aes256", "aes128", "none").
	AccessKey  string
	Encryption string
	// V1AccessKey decrypts a V1 listing's access information.
	V1AccessKey string
	// OpenAPI serves the marketplace's open API (Query Order, usage push)
	// under /api/; the usage console reads its refusals and arms its
	// failures.
	OpenAPI *OpenAPI
	// Calls sends the seller's kit credential probe (POST
	// /emulator/kit/probe).
	Calls  *Activities
	Logger *slog.Logger
}

// Console is the emulated buyer's and seller's consoles over HTTP.
type Console struct {
	cfg ConsoleConfig
	now func() time.Time
}

// NewConsole returns the console.
func NewConsole(cfg ConsoleConfig) *Console {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Scale < 1 {
		cfg.Scale = 1
	}
	c := &Console{cfg: cfg, now: time.Now}
	if cfg.OpenAPI != nil && cfg.Temporal != nil {
		cfg.OpenAPI.onLicenseActivated(c.licenseActivated)
	}
	return c
}

// licenseActivated tells a license-code purchase's workflow that its code
// was activated, which starts the code's clock there. The activation
// stands whatever happens: a workflow that cannot be told keeps the code
// unexpiring (the failure is logged).
func (c *Console) licenseActivated(ctx context.Context, purchaseID string, at time.Time) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.cfg.Temporal.SignalWorkflow(ctx, PurchaseWorkflowID(purchaseID), "", LicenseActivatedSignal, at); err != nil {
		c.cfg.Logger.Warn("License code activated, but its purchase's workflow could not be told", "purchaseId", purchaseID, "error", err)
	}
}

// Handler routes the console and the open API.
//
//	POST /emulator/purchases                       buy (BuyRequest)
//	GET  /emulator/purchases                       list
//	GET  /emulator/purchases/{id}                  purchase, orders, access information, timeline, failed calls
//	POST /emulator/purchases/{id}/actions/{kind}   a buyer's or console action (Action)
//	GET  /emulator/messages?status=failed          failed production-interface calls
//	POST /emulator/messages/{id}/restart           restart one (重新启动)
//	GET  /emulator/usage?instanceId=…|purchaseId=…  usage records received, with totals (话单管理)
//	GET  /emulator/usage/pushes?limit=N            the usage pushes (calls) accepted, newest first
//	GET  /emulator/usage/pushes/{id}               one push and the records it delivered
//	POST /emulator/usage/failures                  make the next usage pushes fail (UsageFailures)
//	POST /emulator/kit/probe                       the seller's kit credential probe (KitProbe)
//	     /api/mkp-openapi-public/...                the open API
func (c *Console) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.CustomRecoveryWithWriter(io.Discard, func(g *gin.Context, err any) {
		fault.Respond(g, c.cfg.Logger, fmt.Errorf("emulator console panicked: %v", err))
	}))
	r.GET("/healthz", func(g *gin.Context) { g.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e := r.Group("/emulator")
	e.POST("/purchases", c.buy)
	e.GET("/purchases", c.list)
	e.GET("/purchases/:id", c.show)
	e.POST("/purchases/:id/actions/:kind", c.action)
	e.GET("/messages", c.messages)
	e.POST("/messages/:id/restart", c.restart)
	e.GET("/usage", c.usage)
	e.GET("/usage/pushes", c.usagePushes)
	e.GET("/usage/pushes/:id", c.usagePush)
	e.POST("/usage/failures", c.failUsage)
	e.POST("/kit/probe", c.probeKit)
	if c.cfg.OpenAPI != nil {
		r.Any("/api/*path", gin.WrapH(c.cfg.OpenAPI))
	}
	r.NoRoute(func(g *gin.Context) { fault.Respond(g, c.cfg.Logger, fault.NotFound("no such endpoint")) })
	return r
}

// Bought is the answer to a purchase.
type Bought struct {
	PurchaseID  string `json:"purchaseId"`
	OrderID     string `json:"orderId"`
	OrderLineID string `json:"orderLineId"`
	WorkflowID  string `json:"workflowId"`
}

func (c *Console) buy(g *gin.Context) {
	var req BuyRequest
	if err := decodeStrict(g, &req); err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Invalid(err.Error()))
		return
	}
	if err := req.Validate(); err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Invalid(err.Error()))
		return
	}
	// The origin of the purchase's emulated clock, stored as its created_at
	// (to the database's microsecond) so that the console reads the clock
	// the workflow runs on: an origin a few milliseconds off moves every
	// emulated instant the console shows by as many milliseconds times the
	// scale (minutes, at a day per 10 s).
	now := c.now().UTC().Truncate(time.Microsecond)
	id := newOrderID(now)
	// Visible at once; the workflow's own saves (revision 1 on) take over.
	if err := c.cfg.Store.SavePurchase(g.Request.Context(), Purchase{
		PurchaseID: id, State: StateOrdering, ChargingMode: req.BillingMode, ProductID: req.ProductID,
		Supervised: req.Supervised, Debug: req.Debug, CreatedAt: now,
	}, nil); err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	_, err := c.cfg.Temporal.ExecuteWorkflow(g.Request.Context(), client.StartWorkflowOptions{
		ID: PurchaseWorkflowID(id), TaskQueue: c.cfg.TaskQueue,
	}, PurchaseWorkflowName, PurchaseInput{
		PurchaseID: id, Buy: req, Clock: c.clock(now),
		Retention: c.cfg.Retention, SupervisionDelay: c.cfg.SupervisionDelay,
	})
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Temporal(fmt.Errorf("start the purchase: %w", err)))
		return
	}
	c.cfg.Logger.Info("Emulated purchase", "purchaseId", id, "mode", req.BillingMode, "debug", req.Debug)
	g.JSON(http.StatusCreated, Bought{PurchaseID: id, OrderID: id, OrderLineID: id + "-000001", WorkflowID: PurchaseWorkflowID(id)})
}

// clock is the emulated clock of a purchase created at origin: the one its
// workflow runs on.
func (c *Console) clock(origin time.Time) Clock {
	return Clock{Scale: c.cfg.Scale, Origin: origin.UTC()}
}

func (c *Console) list(g *gin.Context) {
	limit := 100
	if raw := g.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 1000 {
			fault.Respond(g, c.cfg.Logger, fault.Invalid("limit must be from 1 to 1000"))
			return
		}
		limit = n
	}
	ps, err := c.cfg.Store.Purchases(g.Request.Context(), limit)
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	g.JSON(http.StatusOK, gin.H{"purchases": ps})
}

// PurchaseView is everything the consoles show of a purchase.
type PurchaseView struct {
	Purchase
	EmulatedNow *time.Time `json:"emulatedNow,omitempty"`
	// ClockOrigin and TimeScale are the purchase's emulated clock: an
	// instant t (real) is emulated ClockOrigin + (t - ClockOrigin) * TimeScale.
	ClockOrigin time.Time    `json:"clockOrigin"`
	TimeScale   float64      `json:"timeScale"`
	Orders      []OrderView  `json:"orders"`
	AppInfo     *AppInfoView `json:"appInfo,omitempty"`
	Timeline    []Event      `json:"timeline"`
	Failed      []Message    `json:"failedCalls,omitempty"`
	// LicenseCode is the code a license-code purchase sold, with its
	// status at the marketplace.
	LicenseCode *LicenseCodeShown `json:"licenseCode,omitempty"`
}

// LicenseCodeShown is a sold license code, its status now (ALIVE,
// EXPIRED, RELEASED or NOT_ACTIVATED) and its expiry once activated.
type LicenseCodeShown struct {
	LicenseCodeView
	Status     string     `json:"status"`
	ExpireTime *time.Time `json:"expireTime,omitempty"`
}

// OrderView is one order of a purchase.
type OrderView struct {
	OrderID     string     `json:"orderId"`
	OrderLineID string     `json:"orderLineId"`
	OrderType   string     `json:"orderType"`
	SkuCode     string     `json:"skuCode"`
	Quantity    *int64     `json:"quantity,omitempty"`
	ExpireTime  *time.Time `json:"expireTime,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
}

// AppInfoView is the access information as the buyer sees it: decrypted.
type AppInfoView struct {
	FrontEndURL string `json:"frontEndUrl"`
	AdminURL    string `json:"adminUrl,omitempty"`
	UserName    string `json:"userName,omitempty"`
	Password    string `json:"password,omitempty"`
	Memo        string `json:"memo,omitempty"`
	// DecryptError says why the credentials could not be decrypted.
	DecryptError string `json:"decryptError,omitempty"`
	// Released: the instance is released, and the console no longer shows
	// its credentials.
	Released bool `json:"released,omitempty"`
}

// Ended reports whether a purchase's life is over: released, unsubscribed
// or cancelled.
func Ended(state string) bool {
	switch state {
	case StateReleased, StateUnsubscribed, StateCancelled:
		return true
	}
	return false
}

func (c *Console) show(g *gin.Context) {
	ctx := g.Request.Context()
	id := g.Param("id")
	p, err := c.cfg.Store.Purchase(ctx, id)
	if errors.Is(err, ErrNotFound) {
		fault.Respond(g, c.cfg.Logger, fault.NotFound("no such purchase"))
		return
	}
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	view := PurchaseView{Purchase: p}
	clock := c.clock(p.CreatedAt)
	emNow := clock.EmulatedAt(c.now()).UTC()
	view.EmulatedNow, view.ClockOrigin, view.TimeScale = &emNow, clock.Origin, clock.Scale
	orders, err := c.cfg.Store.OrdersOf(ctx, id)
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	for _, o := range orders {
		view.Orders = append(view.Orders, OrderView{OrderID: o.OrderID, OrderLineID: o.OrderLineID, OrderType: o.OrderType,
			SkuCode: o.SkuCode, Quantity: o.LinearValue, ExpireTime: o.ExpireTime, CreatedAt: o.CreatedAt})
	}
	if app, err := c.cfg.Store.AppInfo(ctx, id); err == nil {
		view.AppInfo = c.decrypt(app)
		if Ended(p.State) {
			// The instance is gone: the console shows no credentials.
			view.AppInfo.UserName, view.AppInfo.Password, view.AppInfo.DecryptError = "", "", ""
			view.AppInfo.Released = true
		}
	} else if !errors.Is(err, ErrNotFound) {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	for i := range view.Licenses {
		// What the buyer's device received: the licences the merchant
		// uploaded for the request's event.
		if view.Licenses[i].Uploads, err = c.cfg.Store.LicenseUploads(ctx, view.Licenses[i].EventID); err != nil {
			fault.Respond(g, c.cfg.Logger, fault.Database(err))
			return
		}
	}
	if code, err := c.cfg.Store.LicenseCodeOf(ctx, id); err == nil {
		view.LicenseCode = &LicenseCodeShown{LicenseCodeView: code, Status: licenseCodeStatus(code, c.now()), ExpireTime: code.ExpireTime()}
	} else if !errors.Is(err, ErrNotFound) {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	if view.Timeline, err = c.cfg.Store.Events(ctx, id); err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	msgs, err := c.cfg.Store.Messages(ctx, "", 1000)
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	for _, m := range msgs {
		if m.PurchaseID == id {
			view.Failed = append(view.Failed, m)
		}
	}
	g.JSON(http.StatusOK, view)
}

// decrypt shows the buyer the credentials, as the marketplace's console does.
// A V1 listing's are encrypted with the V1 key (contract §2.6), which is
// tried when the access key does not open them.
func (c *Console) decrypt(a AppInfo) *AppInfoView {
	v := &AppInfoView{FrontEndURL: a.FrontEndURL, AdminURL: a.AdminURL, Memo: a.Memo}
	user, password, err := c.openCredentials(c.cfg.AccessKey, c.cfg.Encryption, a)
	if err != nil && c.cfg.V1AccessKey != "" {
		encryption := c.cfg.Encryption
		if encryption == "none" {
			encryption = "aes256" // V1 always encrypts them
		}
		user, password, err = c.openCredentials(c.cfg.V1AccessKey, encryption, a)
	}
	if err != nil {
		v.DecryptError = "the credentials do not decrypt with the access key (" + c.cfg.Encryption + ")"
		return v
	}
	v.UserName, v.Password = user, password
	return v
}

// openCredentials decrypts userName and password with key.
func (c *Console) openCredentials(key, encryption string, a AppInfo) (user, password string, err error) {
	open := func(s string) (string, error) {
		switch {
		case s == "" || encryption == "none":
			return s, nil
		case encryption == "aes128":
			return koogallery.DecryptField(key, koogallery.AES128, s)
		default:
			return koogallery.DecryptField(key, koogallery.AES256, s)
		}
	}
	user, err1 := open(a.UserName)
	password, err2 := open(a.Password)
	if err := errors.Join(err1, err2); err != nil {
		return "", "", err
	}
	if !utf8.ValidString(user) || !utf8.ValidString(password) {
		return "", "", errors.New("not the key the credentials were encrypted with")
	}
	return user, password, nil
}

func (c *Console) action(g *gin.Context) {
	kind := g.Param("kind")
	if !slices.Contains(Actions, kind) || kind == ActRestart {
		fault.Respond(g, c.cfg.Logger, fault.NotFound("unknown action; use one of "+strings.Join(slices.DeleteFunc(slices.Clone(Actions), func(a string) bool { return a == ActRestart }), ", ")))
		return
	}
	var a Action
	if g.Request.ContentLength != 0 {
		if err := decodeStrict(g, &a); err != nil {
			fault.Respond(g, c.cfg.Logger, fault.Invalid(err.Error()))
			return
		}
	}
	a.Kind = kind
	c.send(g, g.Param("id"), a)
}

func (c *Console) messages(g *gin.Context) {
	status := g.Query("status")
	if status != "" && status != MessageFailed && status != MessageResolved {
		fault.Respond(g, c.cfg.Logger, fault.Invalid("status must be failed or resolved"))
		return
	}
	msgs, err := c.cfg.Store.Messages(g.Request.Context(), status, 1000)
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	g.JSON(http.StatusOK, gin.H{"messages": msgs})
}

func (c *Console) restart(g *gin.Context) {
	m, err := c.cfg.Store.Message(g.Request.Context(), g.Param("id"))
	if errors.Is(err, ErrNotFound) {
		fault.Respond(g, c.cfg.Logger, fault.NotFound("no such failed call"))
		return
	}
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	if m.Status == MessageResolved {
		fault.Respond(g, c.cfg.Logger, fault.Conflict("this call was answered already"))
		return
	}
	c.send(g, m.PurchaseID, Action{Kind: ActRestart, MessageID: m.ID})
}

// send delivers an action to the purchase's workflow; the workflow
// validates it against the purchase's state before accepting it.
func (c *Console) send(g *gin.Context, purchaseID string, a Action) {
	ctx, cancel := context.WithTimeout(g.Request.Context(), 10*time.Second)
	defer cancel()
	h, err := c.cfg.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: PurchaseWorkflowID(purchaseID), UpdateName: ActionSignal, Args: []any{a},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		g.JSON(http.StatusAccepted, gin.H{"purchaseId": purchaseID, "action": a.Kind, "status": "accepted"})
	case errors.As(err, &notFound):
		fault.Respond(g, c.cfg.Logger, fault.NotFound("no such purchase, or its life is over"))
	case isRejection(err):
		fault.Respond(g, c.cfg.Logger, fault.Conflict(rejectionMessage(err)))
	default:
		fault.Respond(g, c.cfg.Logger, fault.Temporal(fmt.Errorf("deliver %s to purchase %s: %w", a.Kind, purchaseID, err)))
	}
}

func decodeStrict(g *gin.Context, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(g.Writer, g.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the body must be a JSON object with the documented fields: %v", err)
	}
	return nil
}

// newOrderID makes an order ID in the marketplace's style: CS, the time to
// the minute, five random characters (CS2211181819B4LVS).
func newOrderID(now time.Time) string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	var b [5]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "CS" + now.UTC().Format("0601021504") + string(b[:])
}

// isRejection reports an update refused by the workflow's validator: the
// action does not fit the purchase's state.
func isRejection(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr)
}

func rejectionMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return "refused"
}

// UsageView is the seller console's usage records (话单管理) of one
// instance: every record the marketplace accepted, by period, and totals.
type UsageView struct {
	InstanceID string `json:"instanceId"`
	// PurchaseID is the emulated purchase that has the instance.
	PurchaseID string        `json:"purchaseId,omitempty"`
	Records    []UsageRecord `json:"records"`
	Totals     UsageTotals   `json:"totals"`
}

// UsageRecord is one usage record as the marketplace received it.
type UsageRecord struct {
	MeteringSN string    `json:"meteringSn"`
	BeginTime  time.Time `json:"beginTime"`
	EndTime    time.Time `json:"endTime"`
	RecordTime time.Time `json:"recordTime"`
	// UsageValue is the exact decimal, in its shortest form ("12.5").
	UsageValue        string    `json:"usageValue"`
	RelatePkgInstance string    `json:"relatePkgInstance,omitempty"`
	ReceivedAt        time.Time `json:"receivedAt"`
	// SignedForm is the form of the push's body its signature covered:
	// raw, top-level-sorted or sorted (contract §11.2); ValueForm the JSON
	// type usage_value came as, number or string (contract §11.3). Blank
	// for records received before the emulator noted them.
	SignedForm string `json:"signedForm,omitempty"`
	ValueForm  string `json:"valueForm,omitempty"`
	// PushID names the push (the call) that first delivered the record;
	// PushRecords and PushInstances are that call's counts, so that a
	// batch carrying many instances shows as such in each one's view.
	// Blank for records received before the emulator noted pushes.
	PushID        string `json:"pushId,omitempty"`
	PushInstances int    `json:"pushInstances,omitempty"`
	PushRecords   int    `json:"pushRecords,omitempty"`
}

// UsageTotals sums an instance's usage records.
type UsageTotals struct {
	Records int `json:"records"`
	// UsageValue is the exact sum of the records' usage_value.
	UsageValue string `json:"usageValue"`
	// RefusedPushes counts the pushes naming the instance that the open
	// API refused since the emulator started; LastRefusal is the latest.
	RefusedPushes int           `json:"refusedPushes"`
	LastRefusal   *UsageRefusal `json:"lastRefusal,omitempty"`
}

// usage serves GET /emulator/usage?instanceId=… or ?purchaseId=….
func (c *Console) usage(g *gin.Context) {
	ctx := g.Request.Context()
	instanceID, purchaseID := g.Query("instanceId"), g.Query("purchaseId")
	if (instanceID == "") == (purchaseID == "") {
		fault.Respond(g, c.cfg.Logger, fault.Invalid("give either instanceId or purchaseId"))
		return
	}
	var p Purchase
	var err error
	if purchaseID != "" {
		p, err = c.cfg.Store.Purchase(ctx, purchaseID)
	} else {
		p, err = c.cfg.Store.PurchaseOfInstance(ctx, instanceID)
	}
	if errors.Is(err, ErrNotFound) {
		what := "no purchase has instance " + instanceID
		if purchaseID != "" {
			what = "no such purchase"
		}
		fault.Respond(g, c.cfg.Logger, fault.NotFound(what))
		return
	}
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	view := UsageView{InstanceID: p.InstanceID, PurchaseID: p.PurchaseID, Records: []UsageRecord{}}
	if p.InstanceID == "" {
		// newInstance has not been answered yet: no instance, no usage.
		view.Totals.UsageValue = "0"
		g.JSON(http.StatusOK, view)
		return
	}
	rows, err := c.cfg.Store.UsageOf(ctx, p.InstanceID)
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	values := make([]string, 0, len(rows))
	for _, r := range rows {
		view.Records = append(view.Records, UsageRecord{
			MeteringSN: r.MeteringSN, BeginTime: r.BeginTime.UTC(), EndTime: r.EndTime.UTC(), RecordTime: r.RecordTime.UTC(),
			UsageValue: plainDecimal(r.UsageValue), RelatePkgInstance: r.RelatePkgInstance, ReceivedAt: r.ReceivedAt.UTC(),
			SignedForm: r.SignedForm, ValueForm: r.ValueForm,
			PushID: r.PushID, PushInstances: r.PushInstances, PushRecords: r.PushRecords,
		})
		values = append(values, r.UsageValue)
	}
	sum, err := sumDecimals(values)
	if err != nil {
		fault.Respond(g, c.cfg.Logger, &fault.Error{Kind: fault.KindInternal, Message: "the usage records could not be summed",
			Cause: fmt.Errorf("sum the usage of %s: %w", p.InstanceID, err)})
		return
	}
	view.Totals.Records, view.Totals.UsageValue = len(rows), sum
	if c.cfg.OpenAPI != nil {
		refused := c.cfg.OpenAPI.Refusals(p.InstanceID)
		view.Totals.RefusedPushes, view.Totals.LastRefusal = refused.Count, refused.Last
	}
	g.JSON(http.StatusOK, view)
}

// UsagePushes is the list of accepted usage pushes, newest first.
type UsagePushes struct {
	Pushes []ReceivedPush `json:"pushes"`
}

// UsagePushView is one accepted usage push and the records it delivered
// first, by instance then period. A record it repeated is listed under
// the push that delivered it first: a resent batch has none.
type UsagePushView struct {
	Push    ReceivedPush      `json:"push"`
	Records []UsagePushRecord `json:"records"`
}

// UsagePushRecord is one record of a push.
type UsagePushRecord struct {
	MeteringSN string    `json:"meteringSn"`
	InstanceID string    `json:"instanceId"`
	BeginTime  time.Time `json:"beginTime"`
	EndTime    time.Time `json:"endTime"`
	// UsageValue is the exact decimal, in its shortest form ("12.5").
	UsageValue string `json:"usageValue"`
}

// usagePushes serves GET /emulator/usage/pushes?limit=N.
func (c *Console) usagePushes(g *gin.Context) {
	limit := 50
	if raw := g.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 1000 {
			fault.Respond(g, c.cfg.Logger, fault.Invalid("limit must be a whole number from 1 to 1000"))
			return
		}
		limit = n
	}
	ps, err := c.cfg.Store.UsagePushes(g.Request.Context(), limit)
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	for i := range ps {
		ps[i].ReceivedAt = ps[i].ReceivedAt.UTC()
	}
	g.JSON(http.StatusOK, UsagePushes{Pushes: ps})
}

// usagePush serves GET /emulator/usage/pushes/{id}.
func (c *Console) usagePush(g *gin.Context) {
	p, rows, err := c.cfg.Store.UsagePush(g.Request.Context(), g.Param("id"))
	if errors.Is(err, ErrNotFound) {
		fault.Respond(g, c.cfg.Logger, fault.NotFound("no such usage push"))
		return
	}
	if err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Database(err))
		return
	}
	p.ReceivedAt = p.ReceivedAt.UTC()
	view := UsagePushView{Push: p, Records: make([]UsagePushRecord, 0, len(rows))}
	for _, r := range rows {
		view.Records = append(view.Records, UsagePushRecord{
			MeteringSN: r.MeteringSN, InstanceID: r.InstanceID, BeginTime: r.BeginTime.UTC(), EndTime: r.EndTime.UTC(),
			UsageValue: plainDecimal(r.UsageValue),
		})
	}
	g.JSON(http.StatusOK, view)
}

// failUsage serves POST /emulator/usage/failures: the next pushes fail.
func (c *Console) failUsage(g *gin.Context) {
	if c.cfg.OpenAPI == nil {
		fault.Respond(g, c.cfg.Logger, fault.NotFound("this emulator serves no open API"))
		return
	}
	var f UsageFailures
	if err := decodeStrict(g, &f); err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Invalid(err.Error()))
		return
	}
	if err := f.Validate(); err != nil {
		fault.Respond(g, c.cfg.Logger, fault.Invalid(err.Error()))
		return
	}
	c.cfg.OpenAPI.FailUsage(f.Count, f.Status, f.Code)
	c.cfg.Logger.Info("Usage pushes armed to fail", "count", f.Count, "status", f.Status, "code", f.Code)
	g.JSON(http.StatusOK, f)
}

// plainDecimal writes a decimal from the database (numeric, "12.5000") in
// its shortest form ("12.5").
func plainDecimal(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// sumDecimals adds non-negative decimals exactly, in units of the smallest
// fraction any of them has.
func sumDecimals(values []string) (string, error) {
	scale := 0
	for _, v := range values {
		if _, frac, ok := strings.Cut(v, "."); ok {
			scale = max(scale, len(frac))
		}
	}
	sum := new(big.Int)
	for _, v := range values {
		whole, frac, _ := strings.Cut(v, ".")
		n, ok := new(big.Int).SetString(whole+frac+strings.Repeat("0", scale-len(frac)), 10)
		if !ok || n.Sign() < 0 || strings.ContainsAny(whole+frac, "+-") {
			return "", fmt.Errorf("usage value %q is not a plain decimal", v)
		}
		sum.Add(sum, n)
	}
	digits := sum.String()
	if scale == 0 {
		return digits, nil
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return plainDecimal(digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]), nil
}

// probeKit plays the seller's credential application: the kit's calls with
// empty instanceId, each answered as the merchant answers it.
func (c *Console) probeKit(g *gin.Context) {
	if c.cfg.Calls == nil {
		fault.Respond(g, c.cfg.Logger, fault.NotFound("this emulator sends no kit calls"))
		return
	}
	ctx, cancel := context.WithTimeout(g.Request.Context(), 30*time.Second)
	defer cancel()
	g.JSON(http.StatusOK, c.cfg.Calls.ProbeKit(ctx, c.now()))
}
