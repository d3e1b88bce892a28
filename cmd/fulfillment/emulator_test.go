package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// TestEmulatorUsageCommands: "fulfillment emulator usage" prints the usage
// records the emulated marketplace received, by purchase or by instance,
// and "fail-usage" makes the next pushes fail.
func TestEmulatorUsageCommands(t *testing.T) {
	const accessKey, ak, sk = "cli-access-key", "cli-ak", "cli-sk"
	ctx := context.Background()
	db, err := emulator.OpenStore(ctx, testenv.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Migrate(ctx)
	require.NoError(t, err)
	require.NoError(t, db.SavePurchase(ctx, emulator.Purchase{
		PurchaseID: "CSPURCHASE", State: emulator.StateInService, ChargingMode: emulator.ModeOnDemand,
		ProductID: "demo-product", InstanceID: "inst-cli", Revision: 1,
	}, nil))
	console := emulator.NewConsole(emulator.ConsoleConfig{Store: db, Scale: 8640,
		OpenAPI: emulator.NewOpenAPI(db, ak, sk, accessKey, nil)})
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	vars := env(map[string]string{"EMULATOR_URL": srv.URL})
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append([]string{"emulator"}, args...), vars, nil, &out)
		return out.String(), err
	}

	help, err := cli("help")
	require.NoError(t, err)
	require.Contains(t, help, "usage ID")
	require.Contains(t, help, "fail-usage [-status S] [-code C] N")

	for args, want := range map[string]string{
		"fail-usage":                     "fail-usage: give how many pushes fail",
		"fail-usage x":                   "the number of pushes must be a whole number from 1 to 1000",
		"fail-usage 0":                   "count must be from 1 to 1000",
		"fail-usage 1001":                "count must be from 1 to 1000",
		"fail-usage -code MKT.0000 1":    "code MKT.0000 is the success code",
		"fail-usage -code MKT.42 1":      "code must be one of the open API's failure codes",
		"fail-usage -status 302 1":       "status must be an HTTP error status",
		"usage":                          "usage: give the purchase ID or the instance ID",
		"usage CSNOBODY":                 "usage: CSNOBODY is neither a purchase nor an instance of one",
		"fail-usage -status 500 1 extra": "fail-usage: give how many pushes fail",
	} {
		_, err := cli(strings.Fields(args)...)
		require.ErrorContains(t, err, want, args)
	}

	out, err := cli("fail-usage", "-status", "503", "-code", "MKT.0102", "3")
	require.NoError(t, err)
	require.Equal(t, "The next 3 usage push(es) will be answered HTTP 503 MKT.0102.\n", out)
	out, err = cli("fail-usage", "1")
	require.NoError(t, err, "arming again replaces the previous arming")
	require.Equal(t, "The next 1 usage push(es) will be answered HTTP 500 MKT.0999.\n", out)

	merchant, err := koogallery.NewOpenAPIClient(koogallery.OpenAPIConfig{BaseURL: srv.URL, AK: ak, SK: sk})
	require.NoError(t, err)
	hour := time.Now().UTC().Truncate(time.Hour)
	record := func(sn string, begin time.Time, value string) koogallery.UsageRecord {
		v, err := koogallery.ParseUsageValue(value)
		require.NoError(t, err)
		return koogallery.UsageRecord{InstanceID: "inst-cli", MeteringSN: sn, UsageValue: v,
			RecordTime: koogallery.FormatUsageTime(time.Now()), BeginTime: koogallery.FormatUsageTime(begin),
			EndTime: koogallery.FormatUsageTime(begin.Add(time.Hour))}
	}
	batch := []koogallery.UsageRecord{record("sn-a", hour.Add(-2*time.Hour), "1.25"), record("sn-b", hour.Add(-time.Hour), "0.25")}
	require.Error(t, merchant.PushUsage(ctx, accessKey, batch), "the armed failure")
	require.NoError(t, merchant.PushUsage(ctx, accessKey, batch))
	// usage_value sent as a string (USAGE_VALUE_FORM=string) is taken too,
	// and the page says so.
	quoted := record("sn-c", hour.Add(-3*time.Hour), "0.5")
	quoted.UsageValue = koogallery.UsageValueString.In(quoted.UsageValue)
	require.NoError(t, merchant.PushUsage(ctx, accessKey, []koogallery.UsageRecord{quoted}))

	byPurchase, err := cli("usage", "CSPURCHASE")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(byPurchase), "\n")
	require.Len(t, lines, 6, byPurchase)
	require.Equal(t, "Usage records of instance inst-cli (purchase CSPURCHASE), as the marketplace received them (times UTC):", lines[0])
	require.Equal(t, []string{"METERING_SN", "BEGIN", "END", "VALUE", "PACKAGE", "RECEIVED", "SIGNED", "PUSH"}, strings.Fields(lines[1]))
	pushOf := map[string]string{}
	for i, want := range []struct{ sn, begin, value, signed, carried string }{
		{"sn-c", hour.Add(-3 * time.Hour).Format(time.DateTime), "0.5", "raw, string", "(1 record(s), 1 instance(s))"},
		{"sn-a", hour.Add(-2 * time.Hour).Format(time.DateTime), "1.25", "raw, number", "(2 record(s), 1 instance(s))"},
		{"sn-b", hour.Add(-time.Hour).Format(time.DateTime), "0.25", "raw, number", "(2 record(s), 1 instance(s))"},
	} {
		fields := strings.Fields(lines[2+i])
		require.Equal(t, want.sn, fields[0])
		require.Equal(t, want.begin, fields[1]+" "+fields[2])
		require.Equal(t, want.value, fields[5])
		require.Equal(t, "-", fields[6])
		require.Equal(t, want.signed, fields[9]+" "+fields[10])
		require.True(t, strings.HasPrefix(fields[11], "push-"), lines[2+i])
		require.Equal(t, want.carried, strings.Join(fields[12:], " "), "the call that delivered it, and what it carried")
		pushOf[want.sn] = fields[11]
	}
	require.Equal(t, pushOf["sn-a"], pushOf["sn-b"], "one call carried both")
	require.NotEqual(t, pushOf["sn-a"], pushOf["sn-c"])
	pushes, err := cli("pushes")
	require.NoError(t, err)
	require.Regexp(t, `^PUSH\s+RECEIVED\s+RECORDS\s+NEW\s+INSTANCES\s+SIGNED\n`+
		pushOf["sn-c"]+`\s+\S+ \S+\s+1\s+1\s+1\s+raw, string\n`+
		pushOf["sn-a"]+`\s+\S+ \S+\s+2\s+2\s+1\s+raw, number\n$`, pushes, "the accepted calls, newest first; the refused one is not listed")
	require.Regexp(t, `^Total: 3 record\(s\), usage 2; 1 push\(es\) refused \(last: HTTP 500 MKT\.0999 injected failure at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)\.$`, lines[5])

	byInstance, err := cli("usage", "inst-cli")
	require.NoError(t, err)
	require.Equal(t, byPurchase, byInstance, "the same page by instance ID")

	raw, err := cli("usage", "-json", "CSPURCHASE")
	require.NoError(t, err)
	var view emulator.UsageView
	require.NoError(t, json.Unmarshal([]byte(raw), &view))
	require.Equal(t, "2", view.Totals.UsageValue)
	require.Equal(t, "raw", view.Records[0].SignedForm)
	require.Equal(t, "string", view.Records[0].ValueForm)
	require.Equal(t, 1, view.Totals.RefusedPushes)
}

// TestProgramIsHowTheUserRanIt: the commands the emulator CLI prints start
// with the binary as the user can run it again from the same directory.
func TestProgramIsHowTheUserRanIt(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	for arg0, want := range map[string]string{
		"bin/fulfillment":                              "bin/fulfillment",
		"fulfillment":                                  "fulfillment",
		filepath.Join(wd, "bin", "fulfillment"):        "bin/fulfillment",
		filepath.Join(wd, "fulfillment"):               "./fulfillment",
		filepath.Join(os.TempDir(), "go-build1/exe/f"): "go run ./cmd/fulfillment",
		filepath.Join(os.TempDir(), "mine", "f"):       filepath.Join(os.TempDir(), "mine", "f"),
		"/opt/elsewhere/fulfillment":                   "/opt/elsewhere/fulfillment",
	} {
		require.Equal(t, want, program(arg0), arg0)
	}
}
