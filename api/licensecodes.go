package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// LicenseAPI is the marketplace's license-code open API (contract §13.6):
// the merchant's software activates a code the buyer bought, then checks
// it every day.
type LicenseAPI interface {
	ActivateLicense(ctx context.Context, license string, effectiveAt time.Time) (*koogallery.LicenseCodeInfo, error)
	QueryLicense(ctx context.Context, license string) (*koogallery.LicenseCodeInfo, error)
}

// licenseCallTimeout bounds one call to the open API from a request.
const licenseCallTimeout = 15 * time.Second

// licenseDesk answers the merchant's software about license codes
// (licenses.go): POST /v1/licenses/{license}/activate and GET
// /v1/licenses/{license}.
type licenseDesk struct {
	cfg *Config
	log *slog.Logger
}

// LicenseCodeView is what the software is told of a code.
type LicenseCodeView struct {
	License    string     `json:"license"`
	Status     string     `json:"status"`
	ExpireTime *time.Time `json:"expireTime,omitempty"`
	ProductID  string     `json:"productId"`
	OrderID    string     `json:"orderId"`
	Amount     int64      `json:"amount"`
	// ActivatedAt is when this server recorded the activation;
	// CheckedAt when the marketplace last confirmed the code.
	ActivatedAt time.Time `json:"activatedAt"`
	CheckedAt   time.Time `json:"checkedAt"`
	// What the marketplace's callbacks did (contract §13.5): when the
	// code was frozen, until when its data is kept, when it was released.
	FrozenAt    *time.Time `json:"frozenAt,omitempty"`
	RetainUntil *time.Time `json:"retainUntil,omitempty"`
	ReleasedAt  *time.Time `json:"releasedAt,omitempty"`
	// LastError says why the merchant's application could not be told of
	// the code's last change; the change waits for an operator.
	LastError string `json:"lastError,omitempty"`
}

func licenseCodeView(c store.LicenseCode) LicenseCodeView {
	return LicenseCodeView{License: c.License, Status: c.Status, ExpireTime: c.ExpireTime, ProductID: c.ProductID,
		OrderID: c.OrderID, Amount: c.Amount, ActivatedAt: c.ActivatedAt, CheckedAt: c.CheckedAt,
		FrozenAt: c.FrozenAt, RetainUntil: c.RetainUntil, ReleasedAt: c.ReleasedAt, LastError: c.LastError}
}

// activate activates a code at the marketplace, once: a code already
// activated answers its record without calling the marketplace again.
// Body (optional): {"effectiveTime": RFC 3339}, the real start of
// validity.
func (d *licenseDesk) activate(c *gin.Context) {
	license := c.Param("license")
	if err := koogallery.ValidLicense(license); err != nil {
		fault.Respond(c, d.log, fault.Invalid(err.Error()))
		return
	}
	effectiveAt, err := readEffectiveTime(c)
	if err != nil {
		fault.Respond(c, d.log, err)
		return
	}
	ctx := c.Request.Context()
	switch known, err := d.cfg.Store.LicenseCodes.LicenseCode(ctx, license); {
	case err == nil:
		c.JSON(http.StatusOK, licenseCodeView(known))
		return
	case !errors.Is(err, store.ErrNotFound):
		fault.Respond(c, d.log, fault.Database(err))
		return
	}
	if d.cfg.Licenses == nil {
		fault.Respond(c, d.log, fault.Unavailable("license codes cannot be activated: the open API is not configured (KOOGALLERY_AK, KOOGALLERY_SK)", nil))
		return
	}
	callCtx, cancel := context.WithTimeout(ctx, licenseCallTimeout)
	defer cancel()
	info, err := d.cfg.Licenses.ActivateLicense(callCtx, license, effectiveAt)
	if err != nil {
		fault.Respond(c, d.log, licenseAPIFault(err))
		return
	}
	now := d.cfg.Now()
	row := store.LicenseCode{License: license, Status: licenseState(info.Status), MarketplaceStatus: info.Status,
		ProductID: info.ProductID, OrderID: info.OrderID, Amount: info.Amount, ExpireTime: info.ExpireTime,
		ActivatedAt: now, CheckedAt: now}
	if !effectiveAt.IsZero() {
		row.EffectiveTime = &effectiveAt
	}
	body, _ := json.Marshal(licenseCodeView(row)) // the activation as recorded, for the inbox's audit trail
	stored, rec, err := d.cfg.Store.LicenseCodes.RecordActivation(ctx, row, inbox.ActivationCallback(license, body))
	if err != nil {
		// Activated at the marketplace but not recorded: the software's
		// retry finds the code active there and records it.
		fault.Respond(c, d.log, fault.Database(err))
		return
	}
	// The code's workflow starts now, or from the relay.
	if d.cfg.Inbox != nil {
		d.cfg.Inbox.Dispatch(rec)
	}
	d.log.Info("License code activated", "license", license, "status", stored.Status, "product", stored.ProductID, "order", stored.OrderID)
	c.JSON(http.StatusCreated, licenseCodeView(stored))
}

// get answers a code's state from the read model; ?refresh=true asks the
// marketplace first and records what it says.
func (d *licenseDesk) get(c *gin.Context) {
	license := c.Param("license")
	if err := koogallery.ValidLicense(license); err != nil {
		fault.Respond(c, d.log, fault.Invalid(err.Error()))
		return
	}
	ctx := c.Request.Context()
	known, err := d.cfg.Store.LicenseCodes.LicenseCode(ctx, license)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fault.Respond(c, d.log, fault.NotFound("no such license code has been activated here; activate it first (POST /v1/licenses/{license}/activate)"))
		return
	case err != nil:
		fault.Respond(c, d.log, fault.Database(err))
		return
	}
	switch refresh := c.Query("refresh"); refresh {
	case "", "false":
	case "true":
		if d.cfg.Licenses == nil {
			fault.Respond(c, d.log, fault.Unavailable("the marketplace cannot be asked: the open API is not configured (KOOGALLERY_AK, KOOGALLERY_SK)", nil))
			return
		}
		callCtx, cancel := context.WithTimeout(ctx, licenseCallTimeout)
		defer cancel()
		info, err := d.cfg.Licenses.QueryLicense(callCtx, license)
		if err != nil {
			fault.Respond(c, d.log, licenseAPIFault(err))
			return
		}
		if known, err = d.cfg.Store.LicenseCodes.RecordCheck(ctx, license, info.Status, licenseState(info.Status), info.ExpireTime, d.cfg.Now()); err != nil {
			fault.Respond(c, d.log, fault.Database(err))
			return
		}
	default:
		fault.Respond(c, d.log, fault.Invalid("refresh must be true or false"))
		return
	}
	c.JSON(http.StatusOK, licenseCodeView(known))
}

// readEffectiveTime reads the optional activation body.
func readEffectiveTime(c *gin.Context) (time.Time, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 4096))
	if err != nil {
		return time.Time{}, fault.TooLarge("the body must be at most 4096 bytes")
	}
	if len(raw) == 0 {
		return time.Time{}, nil
	}
	var body struct {
		EffectiveTime *time.Time `json:"effectiveTime"`
	}
	if err := decodeStrict(raw, &body); err != nil {
		return time.Time{}, fault.Invalid(`the body must be {"effectiveTime": RFC 3339 time} or empty`)
	}
	if body.EffectiveTime == nil {
		return time.Time{}, nil
	}
	return body.EffectiveTime.UTC(), nil
}

// licenseState is this server's state of a code the marketplace reports.
func licenseState(marketplaceStatus string) string {
	switch marketplaceStatus {
	case koogallery.LicenseExpired:
		return store.LicenseExpired
	case koogallery.LicenseReleased:
		return store.LicenseReleased
	}
	return store.LicenseActive
}

// licenseAPIFault is the answer to a failed open-API call: an unknown
// code is 404, a refusal that retrying cannot change 502, the rest 503.
func licenseAPIFault(err error) error {
	var oe *koogallery.OpenAPIError
	if errors.As(err, &oe) && oe.Code == koogallery.LicenseAPINotFound {
		return fault.NotFound("the marketplace knows no such license code (92020005)")
	}
	if koogallery.IsRetryable(err) {
		return fault.Unavailable("the marketplace's license API is unavailable; retry later", err)
	}
	msg := "the marketplace refused the call"
	if oe != nil && oe.Code != "" {
		msg += " (" + oe.Code + ")"
	}
	return fault.Upstream(msg, err)
}
