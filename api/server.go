// Package api is the HTTP surface of the server: the marketplace's
// production interface (POST /produce, and GET /produce for V1), health
// and metrics, the admin API for operators, and the routes other
// components add (Config.Routes).
// Handlers verify, record, signal and answer; lifecycle work happens in the
// instance workflows.
package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/activities"
	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// Temporal is the part of the Temporal client the API uses directly (the
// inbox signals through its own).
type Temporal interface {
	CheckHealth(ctx context.Context, req *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
	UpdateWorkflow(ctx context.Context, options client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// AppInfoEncryption says how appInfo.userName and password are sent in
// queryInstance answers (contract §2.6, §7.3).
type AppInfoEncryption string

// The supported encryptions.
const (
	EncryptAES256 AppInfoEncryption = "aes256"
	EncryptAES128 AppInfoEncryption = "aes128"
	EncryptNone   AppInfoEncryption = "none"
)

// Config wires a Server.
type Config struct {
	Store    *store.DB
	Inbox    *inbox.Inbox
	Temporal Temporal
	// AccessKey verifies requests, signs answers and seals credentials.
	AccessKey string
	// KitAccessKey verifies the 联营 kit's calls and signs their answers
	// (contract §12.3); empty refuses every kit call.
	KitAccessKey string
	// V1AccessKey verifies the V1 GET calls (contract §2.5) and the V1
	// kit's (contract §12.10), and signs (and encrypts) their answers;
	// empty refuses them.
	V1AccessKey string
	// LicenseAccessKey verifies the license-code callbacks and signs
	// their answers (contract §13.5); empty refuses them.
	LicenseAccessKey string
	// KitKeys decrypt the clientSecret of the kit's applicationSync; nil
	// refuses an applicationSync that carries one.
	KitKeys    *koogallery.KitKeys
	Encryption AppInfoEncryption
	// LicenseNodeLocked lists the productIds or skuCodes ("*": all) whose
	// online licences are bound to a device: a getLicenseAsync without a
	// deviceFingerprint is refused 000903 (contract §13.4).
	LicenseNodeLocked []string
	// AdminToken guards /v1; empty disables the admin API (every call 401).
	AdminToken string
	// LicenseToken is what the merchant's software activates and checks
	// license codes with (/v1/licenses); the admin token works there too.
	LicenseToken string
	// Licenses is the marketplace's license-code open API; nil answers
	// 503 to an activation.
	Licenses LicenseAPI
	// UsageToken is what the merchant's application reports usage with
	// (POST /v1/usage); the admin token works there too.
	UsageToken string
	// Routes are other components' routes: public ones on the router,
	// Admin ones in the admin API.
	Routes  []Route
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Route is a route another component adds to the router.
type Route struct {
	// Method is the HTTP method; empty means every method.
	Method string
	// Path is in gin's syntax: a final /*name matches the rest of the
	// path. An Admin route's path is under /v1.
	Path string
	// Admin puts the route in the admin API, behind the admin token.
	Admin   bool
	Handler http.Handler
}

// Server is the router: it hands each request to the handlers of its
// caller, the marketplace, operators or the merchant's application.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	market  *marketplace
	kit     *kitInterface
	ops     *operatorAPI
	usage   *usageIntake
	license *licenseDesk
}

// marketplace answers the production interface (produce.go, query.go).
type marketplace struct {
	cfg      *Config
	verifier *koogallery.Verifier
	// licenseVerifier checks the license-code callbacks; nil without
	// a license key.
	licenseVerifier *koogallery.Verifier
	// v1Verifier checks the V1 GET calls; nil without a V1 key.
	v1Verifier *koogallery.V1Verifier
	sealer     activities.Sealer
	log        *slog.Logger
	metrics    *Metrics
}

// operatorAPI is the admin API (admin.go, signals.go, repairs.go).
type operatorAPI struct {
	cfg    *Config
	sealer activities.Sealer
	log    *slog.Logger
}

// usageIntake takes the usage the merchant's application reports
// (usage.go).
type usageIntake struct {
	cfg *Config
	log *slog.Logger
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil, Gauges{})
	}
	if cfg.Encryption == "" {
		cfg.Encryption = EncryptAES256
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics}
	sealer := activities.Sealer{AccessKey: cfg.AccessKey}
	s.market = &marketplace{
		cfg:      &s.cfg,
		verifier: &koogallery.Verifier{AccessKey: cfg.AccessKey, Nonces: cfg.Store.Nonces, Now: cfg.Now},
		sealer:   sealer, log: cfg.Logger, metrics: cfg.Metrics,
	}
	if cfg.LicenseAccessKey != "" {
		s.market.licenseVerifier = &koogallery.Verifier{AccessKey: cfg.LicenseAccessKey, Nonces: cfg.Store.Nonces, Now: cfg.Now}
	}
	if cfg.V1AccessKey != "" {
		// No freshness window: V1 documents none, and its hourly retries
		// may resend the first URL (docs/protocol-choices.md).
		s.market.v1Verifier = &koogallery.V1Verifier{AccessKey: cfg.V1AccessKey, Window: -1, Now: cfg.Now}
	}
	s.kit = &kitInterface{
		cfg:      &s.cfg,
		verifier: &koogallery.KitVerifier{AccessKey: cfg.KitAccessKey, Nonces: cfg.Store.Nonces, Now: cfg.Now},
		sealer:   sealer, log: cfg.Logger, metrics: cfg.Metrics,
	}
	s.ops = &operatorAPI{cfg: &s.cfg, sealer: sealer, log: cfg.Logger}
	s.usage = &usageIntake{cfg: &s.cfg, log: cfg.Logger}
	s.license = &licenseDesk{cfg: &s.cfg, log: cfg.Logger}
	return s
}

// Handler returns the router.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(s.recoverer(), s.requestLog())
	r.POST("/produce", s.market.produce)
	r.GET("/produce", s.market.produceV1)
	for _, prefix := range kitRoutePrefixes {
		r.POST(prefix+":op", s.kit.sync)
	}
	for _, prefix := range v1KitRoutePrefixes {
		r.POST(prefix+":op", s.kit.syncV1)
	}
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(s.metrics.Handler()))

	r.POST("/v1/usage", s.usage.auth(), s.usage.post)
	licenses := r.Group("/v1/licenses", bearerAuth(s.log, "FULFILLMENT_LICENSE_TOKEN or FULFILLMENT_ADMIN_TOKEN",
		s.cfg.LicenseToken, s.cfg.AdminToken))
	licenses.POST("/:license/activate", s.license.activate)
	licenses.GET("/:license", s.license.get)
	admin := r.Group("/v1", s.ops.auth())
	admin.GET("/instances", s.ops.listInstances)
	admin.GET("/instances/:instanceId", s.ops.getInstance)
	admin.GET("/instances/:instanceId/usage", s.ops.getUsage)
	admin.GET("/instances/:instanceId/directory", s.ops.getDirectory)
	admin.GET("/instances/:instanceId/licenses", s.ops.getLicenses)
	admin.POST("/instances/:instanceId/signals/:name", s.ops.signal)
	admin.POST("/instances/:instanceId/usage/periods/:begin/:action", s.ops.repairUsagePeriod)
	admin.GET("/callbacks", s.ops.listParkedCallbacks)
	admin.POST("/callbacks/:seq/:action", s.ops.repairCallback)

	for _, route := range s.cfg.Routes {
		group := &r.RouterGroup
		if route.Admin {
			group = admin
		}
		if route.Method == "" {
			group.Any(route.Path, gin.WrapH(route.Handler))
		} else {
			group.Handle(route.Method, route.Path, gin.WrapH(route.Handler))
		}
	}
	r.NoRoute(func(c *gin.Context) {
		fault.Respond(c, s.log, fault.NotFound("no such endpoint"))
	})
	return r
}

// requestLog logs each request without its query string: the marketplace's
// query carries the request signature, which must not reach the logs.
// Reads that went well (health checks, metrics, the admin API's reads,
// the marketplace's queryInstance polls) are logged at debug level: they
// change nothing, and polled they would drown everything else.
func (s *Server) requestLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		level := slog.LevelInfo
		read := c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead || c.GetBool(readOnlyCall)
		if read && c.Writer.Status() < http.StatusBadRequest {
			level = slog.LevelDebug
		}
		s.log.Log(c.Request.Context(), level, "HTTP request",
			"method", c.Request.Method,
			"path", c.Request.URL.Path,
			"status", c.Writer.Status(),
			"duration_ms", time.Since(start).Milliseconds(),
		)
	}
}

// readOnlyCall marks a /produce call that only read (queryInstance,
// changeInstanceCheck), for the request log.
const readOnlyCall = "fulfillment.readOnlyCall"

// recoverer turns a panic into an answer without echoing it. On /produce
// the answer is a signed 000005, as the marketplace expects of any answer.
func (s *Server) recoverer() gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
		if isKitPath(c.Request.URL.Path) {
			s.log.Error("Handler panicked", "path", c.Request.URL.Path, "panic", err)
			s.kit.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultInternalError, ResultMsg: msgUnavailable})
			c.Abort()
			return
		}
		if c.Request.URL.Path == "/produce" {
			s.log.Error("Handler panicked", "path", c.Request.URL.Path, "panic", err)
			s.market.answer(c, http.StatusOK, koogallery.Response{ResultCode: koogallery.ResultInternalError, ResultMsg: msgUnavailable})
			c.Abort()
			return
		}
		fault.Respond(c, s.log, fmt.Errorf("handler panicked: %v", err))
	})
}
