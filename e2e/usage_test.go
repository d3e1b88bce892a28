package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

const (
	usageToken = "e2e-usage-token-51d0"
	// meteringPeriod divides a day, as METERING_PERIOD must, and is long
	// enough for an unsubscription to reach the server's metering within
	// the period it starts in.
	meteringPeriod = 3 * time.Second
)

// usageIn is a record of POST /v1/usage.
type usageIn struct {
	InstanceID     string `json:"instanceId"`
	Meter          string `json:"meter"`
	Quantity       string `json:"quantity"`
	Time           string `json:"time"`
	IdempotencyKey string `json:"idempotencyKey"`
}

// reportUsage reports usage as the merchant's application does, with the
// usage token.
func (s *stack) reportUsage(records []usageIn) (accepted, duplicates int) {
	s.t.Helper()
	body, err := json.Marshal(map[string]any{"records": records})
	require.NoError(s.t, err)
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/v1/usage", bytes.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+usageToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var out struct {
		Accepted   int `json:"accepted"`
		Duplicates int `json:"duplicates"`
		Error      string
	}
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(s.t, http.StatusOK, resp.StatusCode, out.Error)
	return out.Accepted, out.Duplicates
}

// serverUsage is the server's GET /v1/instances/{id}/usage.
type serverUsage struct {
	Summary struct {
		Reported       string `json:"reported"`
		NotYetClosed   string `json:"notYetClosed"`
		Closed         string `json:"closed"`
		Pushed         string `json:"pushed"`
		PendingPeriods int    `json:"pendingPeriods"`
		ExpiredPeriods int    `json:"expiredPeriods"`
		NotBilled      string `json:"notBilled"`
	} `json:"summary"`
	Periods []serverPeriod `json:"periods"`
}

type serverPeriod struct {
	Begin      time.Time  `json:"begin"`
	End        time.Time  `json:"end"`
	Quantity   string     `json:"quantity"`
	MeteringSN string     `json:"meteringSn"`
	State      string     `json:"state"`
	Attempts   int        `json:"attempts"`
	PushedAt   *time.Time `json:"pushedAt"`
}

func (s *stack) usage(id string) serverUsage {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+"/v1/instances/"+id+"/usage", nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	var out serverUsage
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// settled: every period closed and pushed, nothing reported left open.
func (u serverUsage) settled() bool {
	return u.Summary.PendingPeriods == 0 && decimal(u.Summary.NotYetClosed).Sign() == 0
}

// closedAt reports whether the period holding instant t is closed.
func (u serverUsage) closedAt(t time.Time) bool {
	for _, p := range u.Periods {
		if !t.Before(p.Begin) && t.Before(p.End) {
			return true
		}
	}
	return false
}

// eventAt is when the server's timeline recorded an event of the kind.
func (s *stack) eventAt(id, kind string) time.Time {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+"/v1/instances/"+id, nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var out struct {
		Events []struct {
			Kind string    `json:"kind"`
			At   time.Time `json:"at"`
		} `json:"events"`
	}
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&out))
	for _, e := range out.Events {
		if e.Kind == kind {
			return e.At
		}
	}
	s.t.Fatalf("instance %s has no %s event: %+v", id, kind, out.Events)
	return time.Time{}
}

// decimal reads an exact decimal ("12.3450").
func decimal(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic(fmt.Sprintf("not a decimal: %q", s))
	}
	return r
}

func requireSameDecimal(t *testing.T, want *big.Rat, got, what string) {
	t.Helper()
	require.Zero(t, want.Cmp(decimal(got)), "%s: want %s, got %s", what, want.FloatString(4), got)
}

// TestPayPerUseUsageReachesTheEmulatorOncePerPeriod: a pay-per-use
// purchase through the emulator, fed with usage over several periods (one
// batch resent), with the emulator's usage endpoint failing once, ends with
// the emulator holding exactly one record per period and the same totals as
// the intake; at the unsubscription, the last partial period is pushed
// before the instance is released.
//
// The emulated clock runs one day per 500 ms: the purchase ages 21 emulated
// days within 11 s, so every push after that would be refused with MKT.9004
// if the emulator judged the server's real-time periods by its own clock.
func TestPayPerUseUsageReachesTheEmulatorOncePerPeriod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := startEmulatorStack(t, "1d=500ms", "METERING_PERIOD="+meteringPeriod.String(), "METERING_PUSH_DELAY=300ms",
		"FULFILLMENT_USAGE_TOKEN="+usageToken)
	id := e.buy(emulator.BuyRequest{BillingMode: emulator.ModeOnDemand})
	inst := e.purchaseState(id, emulator.StateInService).InstanceID
	e.waitFor(inst, "metered", func(i instance) bool { return i.State == "active" && i.events("metering/started") == 1 })

	intake := new(big.Rat)
	quantities := []string{"0.1", "0.25", "1.0005", "2", "0.3333", "0.0001", "7.5"}
	const periods, perPeriod = 6, 3
	for p := range periods {
		batch := make([]usageIn, perPeriod)
		for i := range batch {
			q := quantities[(p*perPeriod+i)%len(quantities)]
			batch[i] = usageIn{InstanceID: inst, Meter: "api-calls", Quantity: q,
				Time: time.Now().UTC().Format(time.RFC3339Nano), IdempotencyKey: fmt.Sprintf("%s/%d/%d", inst, p, i)}
			intake.Add(intake, decimal(q))
		}
		accepted, duplicates := e.reportUsage(batch)
		require.Equal(t, [2]int{perPeriod, 0}, [2]int{accepted, duplicates})
		if p == 1 {
			accepted, duplicates = e.reportUsage(batch)
			require.Equal(t, [2]int{0, perPeriod}, [2]int{accepted, duplicates}, "a resent batch is counted as duplicates")
		}
		if p == 3 {
			// The marketplace fails the next push; the server retries it.
			_, err := e.emu.FailUsage(ctx, emulator.UsageFailures{Count: 1})
			require.NoError(t, err)
		}
		sent := time.Now()
		waitUntil(t, 30*time.Second, fmt.Sprintf("the period of batch %d to close", p),
			func() serverUsage { return e.usage(inst) }, func(u serverUsage) bool { return u.closedAt(sent) })
	}
	settled := waitUntil(t, 60*time.Second, "every period pushed", func() serverUsage { return e.usage(inst) }, serverUsage.settled)
	requireSameDecimal(t, intake, settled.Summary.Pushed, "pushed before the release")
	emu, err := e.emu.PurchaseUsage(ctx, id)
	require.NoError(t, err)
	requireSameDecimal(t, intake, emu.Totals.UsageValue, "the emulator's total before the release")

	// The last record at the start of a period, then the unsubscription:
	// the partial period is flushed before the release.
	// Waiting for the clock to reach the next boundary leaves the whole
	// period for the unsubscription to reach the server's metering.
	boundary := time.Now().Truncate(meteringPeriod).Add(meteringPeriod)
	<-time.After(time.Until(boundary))
	lastQuantity := "0.4321"
	accepted, _ := e.reportUsage([]usageIn{{InstanceID: inst, Meter: "api-calls", Quantity: lastQuantity,
		Time: time.Now().UTC().Format(time.RFC3339Nano), IdempotencyKey: inst + "/last"}})
	require.Equal(t, 1, accepted)
	intake.Add(intake, decimal(lastQuantity))
	e.act(id, emulator.Action{Kind: emulator.ActUnsubscribe})
	e.purchaseState(id, emulator.StateUnsubscribed)
	e.waitState(inst, "released")
	releasedAt := e.eventAt(inst, "released")

	server := e.usage(inst)
	require.True(t, server.settled(), "nothing pending or unassigned after the release: %+v", server.Summary)
	require.Zero(t, server.Summary.ExpiredPeriods)
	for what, got := range map[string]string{"reported": server.Summary.Reported, "closed": server.Summary.Closed, "pushed": server.Summary.Pushed} {
		requireSameDecimal(t, intake, got, "server "+what)
	}
	requireSameDecimal(t, new(big.Rat), server.Summary.NotBilled, "server notBilled")

	// The server's periods tile the metered time, each within one period.
	var pushed []serverPeriod
	retried := false
	for i, p := range server.Periods {
		require.True(t, p.End.After(p.Begin) || i == len(server.Periods)-1, "period %d is empty: %+v", i, p)
		require.LessOrEqual(t, p.End.Sub(p.Begin), meteringPeriod, "period %d: %+v", i, p)
		if i > 0 {
			require.True(t, p.Begin.Equal(server.Periods[i-1].End), "periods %d and %d are not contiguous: %+v", i-1, i, server.Periods)
			require.True(t, p.Begin.Equal(p.Begin.Truncate(meteringPeriod)), "period %d does not start on a boundary: %+v", i, p)
		}
		switch p.State {
		case "pushed":
			pushed = append(pushed, p)
			retried = retried || p.Attempts > 1
		case "empty":
			require.Zero(t, decimal(p.Quantity).Sign(), "period %d: %+v", i, p)
		default:
			t.Fatalf("period %d is %s: %+v", i, p.State, p)
		}
	}
	require.GreaterOrEqual(t, len(pushed), periods+1, "every batch and the last record were billed: %+v", server.Periods)
	require.True(t, retried, "a push was refused and retried: %+v", server.Periods)

	// The emulator holds exactly one record per non-empty period.
	emu, err = e.emu.PurchaseUsage(ctx, id)
	require.NoError(t, err)
	require.Equal(t, inst, emu.InstanceID)
	require.Len(t, emu.Records, len(pushed), "one record per billed period: %+v", emu.Records)
	require.Equal(t, len(pushed), emu.Totals.Records)
	requireSameDecimal(t, intake, emu.Totals.UsageValue, "the emulator's total")
	require.Equal(t, 1, emu.Totals.RefusedPushes, "the armed failure was hit")
	require.Equal(t, "MKT.0999", emu.Totals.LastRefusal.Code)
	sns, spans := map[string]bool{}, map[[2]time.Time]bool{}
	for i, r := range emu.Records {
		p := pushed[i]
		require.Equal(t, p.MeteringSN, r.MeteringSN, "record %d", i)
		// The push writes times to the second (yyyyMMdd'T'HHmmss'Z').
		require.True(t, r.BeginTime.Equal(p.Begin.Truncate(time.Second)) && r.EndTime.Equal(p.End.Truncate(time.Second)),
			"record %d is not its period: %+v vs %+v", i, r, p)
		requireSameDecimal(t, decimal(p.Quantity), r.UsageValue, fmt.Sprintf("record %d", i))
		require.False(t, sns[r.MeteringSN], "metering_sn %s twice", r.MeteringSN)
		require.False(t, spans[[2]time.Time{r.BeginTime, r.EndTime}], "period %v twice", r.BeginTime)
		sns[r.MeteringSN], spans[[2]time.Time{r.BeginTime, r.EndTime}] = true, true
		if i > 0 {
			require.False(t, r.BeginTime.Before(emu.Records[i-1].EndTime), "records %d and %d overlap", i-1, i)
		}
	}

	// The final flush: the last period is partial, holds the last record,
	// and reached the emulator before the tenant was released.
	final, lastRecord := server.Periods[len(server.Periods)-1], emu.Records[len(emu.Records)-1]
	require.Equal(t, "pushed", final.State, "the last partial period was pushed: %+v", final)
	require.Less(t, final.End.Sub(final.Begin), meteringPeriod, "the last period is partial: %+v", final)
	requireSameDecimal(t, decimal(lastQuantity), final.Quantity, "the last period")
	require.Equal(t, final.MeteringSN, lastRecord.MeteringSN)
	require.True(t, lastRecord.ReceivedAt.Before(releasedAt), "the last period reached the marketplace (%s) before the release (%s)",
		lastRecord.ReceivedAt, releasedAt)
	require.Equal(t, koogallery.FormatUsageTime(final.End), koogallery.FormatUsageTime(lastRecord.EndTime))
	t.Logf("%d periods, %d pushed; the unsubscription reached the metering %s into its period",
		len(server.Periods), len(pushed), final.End.Sub(final.Begin).Round(time.Millisecond))
}

// TestPackageResetThroughTheEmulator: a package whose content resets
// monthly (emulator buy -reset monthly), bought through the emulator, with
// the server counting the package's months on the emulator's clock
// (PACKAGE_RESET_TIME_SCALE, as make run sets it): at the end of its first
// emulated month its quota resets, which the merchant's timeline and usage
// view show.
func TestPackageResetThroughTheEmulator(t *testing.T) {
	t.Parallel()
	const scale = "1d=200ms" // a month in about 6 s
	e := startEmulatorStack(t, scale, "PACKAGE_RESET_PRODUCTS=demo-package-monthly:monthly", "PACKAGE_RESET_TIME_SCALE="+scale)
	id := e.buy(emulator.BuyRequest{BillingMode: emulator.ModeOnDemandPkg, PeriodType: "month", PeriodNumber: 3, Reset: "monthly"})
	inst := e.purchaseState(id, emulator.StateInService).InstanceID
	e.waitFor(inst, "reset once", func(i instance) bool {
		for _, ev := range i.Events {
			if strings.HasPrefix(ev.Key, "deadline/package-reset/") && strings.Contains(ev.Message, "cycle 1") {
				return i.events("package/cycles") == 1
			}
		}
		return false
	})

	var view struct {
		Package *struct {
			Quota     string `json:"quota"`
			Remaining string `json:"remaining"`
			Cycle     *struct {
				Reset  string    `json:"reset"`
				Number int       `json:"number"`
				Start  time.Time `json:"start"`
				End    time.Time `json:"end"`
			} `json:"cycle"`
		} `json:"package"`
	}
	e.adminGet("/v1/instances/"+inst+"/usage", &view)
	require.NotNil(t, view.Package)
	require.NotNil(t, view.Package.Cycle, "the package's current cycle")
	require.Equal(t, "monthly", view.Package.Cycle.Reset)
	require.GreaterOrEqual(t, view.Package.Cycle.Number, 1)
	require.Less(t, view.Package.Cycle.End.Sub(view.Package.Cycle.Start), 10*time.Second, "a month on the emulator's clock")
	require.Equal(t, view.Package.Quota, view.Package.Remaining, "nothing used in this cycle")
}

// TestUsageOfManyInstancesIsPushedInOneCall: the usage collector closes the
// periods of every pay-per-use instance together and pushes them in one
// call; the emulator's usage view shows that call carrying all of them,
// each record once.
func TestUsageOfManyInstancesIsPushedInOneCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := startEmulatorStack(t, "1d=500ms", "METERING_PERIOD="+meteringPeriod.String(), "METERING_PUSH_DELAY=300ms",
		"FULFILLMENT_USAGE_TOKEN="+usageToken)
	const buyers = 4
	var instances []string
	for range buyers {
		id := e.buy(emulator.BuyRequest{BillingMode: emulator.ModeOnDemand})
		inst := e.purchaseState(id, emulator.StateInService).InstanceID
		e.waitFor(inst, "metered", func(i instance) bool { return i.State == "active" && i.events("metering/started") == 1 })
		instances = append(instances, inst)
	}
	// One record per instance, all in the same period: reported just
	// after a boundary, so that the period cannot close in between.
	boundary := time.Now().Truncate(meteringPeriod).Add(meteringPeriod)
	<-time.After(time.Until(boundary) + 50*time.Millisecond)
	var batch []usageIn
	for i, inst := range instances {
		batch = append(batch, usageIn{InstanceID: inst, Meter: "api-calls", Quantity: fmt.Sprintf("%d.5", i+1),
			Time: time.Now().UTC().Format(time.RFC3339Nano), IdempotencyKey: inst + "/one"})
	}
	accepted, _ := e.reportUsage(batch)
	require.Equal(t, buyers, accepted)
	for _, inst := range instances {
		waitUntil(t, 30*time.Second, "the usage of "+inst+" pushed", func() serverUsage { return e.usage(inst) }, serverUsage.settled)
	}

	var pushID string
	for i, inst := range instances {
		view, err := e.emu.Usage(ctx, inst)
		require.NoError(t, err)
		require.Len(t, view.Records, 1, "one record for %s", inst)
		r := view.Records[0]
		requireSameDecimal(t, decimal(fmt.Sprintf("%d.5", i+1)), r.UsageValue, inst)
		require.NotEmpty(t, r.PushID)
		if pushID == "" {
			pushID = r.PushID
		}
		require.Equal(t, pushID, r.PushID, "every instance's record came in the same call")
		require.Equal(t, buyers, r.PushInstances)
		require.Equal(t, buyers, r.PushRecords)
	}
	push, err := e.emu.UsagePush(ctx, pushID)
	require.NoError(t, err)
	require.Len(t, push.Records, buyers)
	t.Logf("push %s carried %d records of %d instances", pushID, push.Push.Records, push.Push.Instances)
}
