package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

// OpenAPI is the marketplace's open API as the emulator serves it to the
// merchant: Query Order for every order the emulator sold (and the
// documented mock orders), and the usage push, both behind the AK/SK
// signature; the usage push also behind the body signature made with the
// access key (contract §6). Beside what mockapi does, it remembers, per
// instance, the usage pushes it refused, for the seller console's usage
// records (话单管理), and lets a tester make the next pushes fail
// (FailUsage). Refusals are kept in memory, since the emulator started:
// the marketplace keeps no record of a push it refused, and the records it
// accepted are in the database.
type OpenAPI struct {
	mock  *mockapi.Server
	codes *licenseCodeSource
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	refused map[string]UsageRefusals // by instance_id
}

// UsageRefusals counts the usage pushes naming an instance that the open
// API refused, whatever the reason (an armed failure, a bad signature, a
// record it does not accept).
type UsageRefusals struct {
	Count int           `json:"count"`
	Last  *UsageRefusal `json:"last,omitempty"`
}

// UsageRefusal is one refused usage push: the answer the merchant got.
type UsageRefusal struct {
	At         time.Time `json:"at"`
	HTTPStatus int       `json:"httpStatus"`
	Code       string    `json:"code"`
	Message    string    `json:"message"`
}

// NewOpenAPI returns the emulator's open API; log may be nil.
func NewOpenAPI(db *Store, ak, sk, accessKey string, log *slog.Logger) *OpenAPI {
	if log == nil {
		log = slog.Default()
	}
	codes := &licenseCodeSource{db: db}
	return &OpenAPI{
		mock: mockapi.New(mockapi.Config{
			AK: ak, SK: sk, AccessKey: accessKey,
			// The open API runs on the real clock, not on the emulated one
			// (EMULATOR_TIME_SCALE), as the merchant's side does: the
			// server's metering closes real periods (begin_time, end_time
			// and record_time are real instants, like the expiry times the
			// emulator tells it), and the freshness of X-Sdk-Date and ts is
			// real time too. Judged by the emulated clock, which runs
			// thousands of times faster, a period pushed on time would be
			// older than the 21 days of MKT.9004 within minutes (at 1d=10s,
			// 210 s after the purchase), and no merchant could pass.
			Now:      time.Now,
			Orders:   orderSource{db},
			Usage:    usageSink{db: db, log: log},
			Licenses: licenseSink{db},
			// The license codes it sold (activate, query).
			LicenseCodes: codes,
		}),
		codes: codes, log: log, now: time.Now, refused: map[string]UsageRefusals{},
	}
}

// onLicenseActivated makes the first activation of a code call fn with
// its purchase and the activation time; set before serving.
func (o *OpenAPI) onLicenseActivated(fn func(ctx context.Context, purchaseID string, at time.Time)) {
	o.codes.activated = fn
}

// ServeHTTP serves the open API and notes the usage pushes it refuses.
func (o *OpenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != koogallery.UsageDataPath {
		o.mock.ServeHTTP(w, r)
		return
	}
	// Read what mockapi reads (it refuses bigger bodies), and hand it the
	// same bytes.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxUsagePushBytes+1))
	if err != nil {
		o.mock.ServeHTTP(w, r)
		return
	}
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	rec := &answerRecorder{ResponseWriter: w, status: http.StatusOK}
	o.mock.ServeHTTP(rec, r)
	if rec.status == http.StatusOK {
		return
	}
	o.noteRefusal(body, rec)
}

// maxUsagePushBytes is how much of a usage push is read to find the
// instances it names; mockapi refuses bodies over 1 MiB.
const maxUsagePushBytes = 1 << 20

// noteRefusal counts a refused push against each instance it names.
func (o *OpenAPI) noteRefusal(body []byte, rec *answerRecorder) {
	var answer struct {
		Code    string `json:"error_code"`
		Message string `json:"error_msg"`
	}
	_ = json.Unmarshal(rec.body.Bytes(), &answer)
	refusal := UsageRefusal{At: o.now().UTC(), HTTPStatus: rec.status, Code: answer.Code, Message: answer.Message}
	// Leniently: a body the open API found malformed still names its
	// instances, most of the time.
	var push struct {
		Records []struct {
			InstanceID string `json:"instance_id"`
		} `json:"usage_records"`
	}
	_ = json.Unmarshal(body, &push)
	instances := []string{}
	seen := map[string]bool{}
	for _, r := range push.Records {
		if r.InstanceID != "" && len(r.InstanceID) <= 64 && !seen[r.InstanceID] {
			seen[r.InstanceID] = true
			instances = append(instances, r.InstanceID)
		}
	}
	o.log.Warn("Usage push refused", "status", refusal.HTTPStatus, "code", refusal.Code,
		"message", refusal.Message, "instances", instances)
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range instances {
		r := o.refused[id]
		r.Count++
		r.Last = &refusal
		o.refused[id] = r
	}
}

// Refusals returns the refused usage pushes that named an instance.
func (o *OpenAPI) Refusals(instanceID string) UsageRefusals {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.refused[instanceID]
	if r.Last != nil {
		last := *r.Last
		r.Last = &last
	}
	return r
}

// FailUsage makes the next n usage pushes that pass both signature checks
// fail with the given HTTP status and error_code; arming again replaces
// what is left of the previous arming.
func (o *OpenAPI) FailUsage(n, status int, code string) { o.mock.FailUsage(n, status, code) }

// answerRecorder keeps the status and the body of an answer as it goes out.
type answerRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (a *answerRecorder) WriteHeader(status int) {
	a.status = status
	a.ResponseWriter.WriteHeader(status)
}

func (a *answerRecorder) Write(p []byte) (int, error) {
	if a.body.Len() < 64<<10 {
		a.body.Write(p)
	}
	return a.ResponseWriter.Write(p)
}

// orderSource answers Query Order from the emulator's orders.
type orderSource struct{ db *Store }

func (s orderSource) Order(ctx context.Context, orderID string) (*koogallery.OrderInfo, error) {
	o, err := s.db.Order(ctx, orderID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return orderInfo(o), nil
}

// orderInfo presents a sold order as Query Order does (contract §6.1).
func orderInfo(o Order) *koogallery.OrderInfo {
	line := koogallery.OrderLine{
		OrderLineID:  o.OrderLineID,
		ChargingMode: koogallery.ChargingMode(o.ChargingMode),
		PeriodType:   o.PeriodType,
		PeriodNumber: o.PeriodNumber,
		ProductInfo:  []koogallery.ProductInfo{{SkuCode: o.SkuCode, ProductID: o.ProductID}},
	}
	if o.LinearValue != nil {
		v := koogallery.LinearValue(*o.LinearValue)
		line.ProductInfo[0].LinearValue = &v
	}
	if o.ExpireTime != nil {
		line.ExpireTime = koogallery.FormatTime(*o.ExpireTime)
	}
	return &koogallery.OrderInfo{
		OrderID:    o.OrderID,
		OrderType:  koogallery.OrderType(o.OrderType),
		CreateTime: koogallery.FormatTime(o.CreatedAt),
		OrderLines: []koogallery.OrderLine{line},
		BuyerInfo:  &koogallery.BuyerInfo{CustomerID: o.CustomerID, CustomerName: o.CustomerName},
	}
}

// usageSink keeps the usage merchants push, in the emulator's database,
// with the form each push was signed and written in.
type usageSink struct {
	db  *Store
	log *slog.Logger
}

func (s usageSink) InstanceExists(ctx context.Context, instanceID string) (bool, error) {
	return s.db.InstanceExists(ctx, instanceID)
}

func (s usageSink) Record(ctx context.Context, records []koogallery.UsageRecord, push mockapi.UsagePush) (int, error) {
	rows := make([]ReceivedUsage, 0, len(records))
	valueForms := map[koogallery.UsageValueForm]int{}
	for _, r := range records {
		begin, err1 := koogallery.ParseUsageTime(r.BeginTime)
		end, err2 := koogallery.ParseUsageTime(r.EndTime)
		rec, err3 := koogallery.ParseUsageTime(r.RecordTime)
		if err := errors.Join(err1, err2, err3); err != nil {
			return 0, err
		}
		rows = append(rows, ReceivedUsage{
			MeteringSN: r.MeteringSN, InstanceID: r.InstanceID, BeginTime: begin, EndTime: end, RecordTime: rec,
			UsageValue: r.UsageValue.String(), RelatePkgInstance: r.RelatePkgInstance, ReceivedAt: push.ReceivedAt,
			SignedForm: string(push.SignedForm), ValueForm: string(r.UsageValue.Form()),
		})
		valueForms[r.UsageValue.Form()]++
	}
	// The call as a whole: one push, whatever instances its records name.
	valueForm := ""
	for f := range valueForms {
		if valueForm == "" {
			valueForm = string(f)
		} else {
			valueForm = mixedValueForm
		}
	}
	// To the database's microsecond, so that the ID and received_at say
	// the same instant (Postgres rounds finer times).
	at := push.ReceivedAt.UTC().Truncate(time.Microsecond)
	stored, err := s.db.RecordUsage(ctx, ReceivedPush{
		PushID: newPushID(at), ReceivedAt: at,
		SignedForm: string(push.SignedForm), ValueForm: valueForm,
	}, rows)
	if err != nil {
		return 0, err
	}
	// Which reading of the signature rules and which usage_value type the
	// merchant's client uses (contract §11): what its live pushes must match.
	s.log.Info("Usage push accepted", "push", stored.PushID, "records", stored.Records, "new", stored.NewRecords,
		"instances", stored.Instances, "signed", push.SignedForm,
		"usage_value_numbers", valueForms[koogallery.UsageValueNumber], "usage_value_strings", valueForms[koogallery.UsageValueString])
	return stored.NewRecords, nil
}

// mixedValueForm is the value form of a push whose records came as both
// numbers and strings.
const mixedValueForm = "mixed"

// newPushID names an accepted push: "push-", the time it was received to
// the microsecond (UTC), and random characters, so that IDs sort as the
// pushes arrived and two pushes in the same microsecond differ
// (push-20261121T010506.123456Z-k3x9q2).
func newPushID(at time.Time) string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "push-" + at.UTC().Format("20060102T150405.000000Z") + "-" + string(b[:])
}
