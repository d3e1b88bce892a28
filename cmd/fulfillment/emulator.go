package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/fulfillment-server/fulfillment/emulator"
	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

const emulatorUsage = `fulfillment emulator: KooGallery, played locally against a production interface.

Usage: fulfillment emulator <command> [flags]

  serve                            run the emulator: its workflows, the consoles and the open API
  buy [flags]                      buy a product (see 'fulfillment emulator buy -h')
  purchases                        list the purchases
  show ID                          a purchase: state, orders, access information, timeline, failed calls
  watch ID [-merchant]             print the purchase's timeline as it happens, until its life ends;
                                   -merchant also prints the merchant's side (EMULATOR_MERCHANT_ADMIN_URL)
  renew ID [-periods N]            renew (refreshInstance RENEWAL, then UNFREEZE if frozen)
  refund-renewal ID                refund the last renewal period (UNSUBSCRIBE_RENEWAL_PERIOD)
  unsubscribe ID                   unsubscribe (releaseInstance with the unsubscription order)
  upgrade ID -quantity N [-sku S]  change the spec (changeInstanceCheck, then upgradeInstance)
  convert ID                       trial to formal (TRIAL_TO_FORMAL)
  arrears ID | pay ID              pay-per-use account in arrears (FREEZE) / paid (UNFREEZE)
  submit-requirements ID           supervision: the buyer submits requirements
  confirm-delivery ID -evidence E [-start RFC3339]
                                   supervision: the merchant confirms the service completed
  accept ID | reject ID            supervision: the buyer accepts / rejects
  messages [-all]                  failed production-interface calls (生产接口消息)
  restart MESSAGE_ID               restart a failed call (重新启动)
  usage ID                         pay-per-use: the usage records received for a purchase or an
                                   instance, with totals and refused pushes (话单管理)
  fail-usage [-status S] [-code C] N
                                   make the next N usage pushes fail (default 500 MKT.0999, the
                                   marketplace's internal error, which merchants retry)
  scale DURATION                   the real duration of an emulated one under EMULATOR_TIME_SCALE

The commands other than serve call the emulator at EMULATOR_URL. -json prints raw JSON.
`

func runEmulator(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, emulatorUsage)
		return nil
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	cmd, rest := args[0], args[1:]
	if cmd == "serve" {
		return serveEmulator(ctx, cfg, newLogger(cfg))
	}
	if cmd == "scale" {
		if len(rest) != 1 {
			return errors.New("scale: give one emulated duration, such as 24h or 15d")
		}
		return printScaled(rest[0], cfg.EmulatorScale, stdout)
	}
	c := &emulator.Client{BaseURL: cfg.EmulatorURL}
	return runEmulatorCommand(ctx, c, cmd, rest, stdout, merchant{url: cfg.MerchantAdminURL, token: string(cfg.MerchantAdminToken)})
}

// merchant is the merchant's admin API, for watch -merchant.
type merchant struct{ url, token string }

// serveEmulator runs the emulator's worker and its HTTP server.
func serveEmulator(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.AccessKey == "" {
		return errors.New("KOOGALLERY_ACCESS_KEY is required: the emulator signs its calls and checks the answers with it")
	}
	if cfg.AK == "" || cfg.SK == "" {
		return errors.New("KOOGALLERY_AK and KOOGALLERY_SK are required: the emulator checks the merchant's open-API signatures with them")
	}
	scale, err := emulator.ParseScale(cfg.EmulatorScale)
	if err != nil {
		return err
	}
	log.Info("Starting the KooGallery emulator", "addr", cfg.EmulatorAddr, "production_url", cfg.ProductionURL,
		"time_scale", scale, "task_queue", cfg.EmulatorTaskQueue)
	db, err := store.Open(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	tc, err := client.NewLazyClient(client.Options{
		HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Logger: sdklog.NewStructuredLogger(log.With("component", "temporal")),
	})
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer tc.Close()

	acts := &emulator.Activities{
		Store: db, ProductionURL: cfg.ProductionURL, AccessKey: string(cfg.AccessKey),
		SignatureForm:    koogallery.SignedForm(cfg.EmulatorSignatureForm),
		MerchantAdminURL: cfg.MerchantAdminURL, MerchantAdminToken: string(cfg.MerchantAdminToken),
	}
	console := emulator.NewConsole(emulator.ConsoleConfig{
		Store: db, Temporal: tc, TaskQueue: cfg.EmulatorTaskQueue, Scale: scale,
		Retention: cfg.EmulatorRetention, SupervisionDelay: cfg.EmulatorSupervisionDelay,
		AccessKey: string(cfg.AccessKey), Encryption: cfg.AppInfoEncryption,
		OpenAPI: emulator.NewOpenAPI(db, string(cfg.AK), string(cfg.SK), string(cfg.AccessKey), log),
		Logger:  log,
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			w := sdkworker.New(tc, cfg.EmulatorTaskQueue, sdkworker.Options{})
			emulator.Register(w, acts)
			if err := w.Start(); err == nil {
				log.Info("Emulator worker started", "task_queue", cfg.EmulatorTaskQueue)
				<-ctx.Done()
				w.Stop()
				return
			} else {
				log.Warn("Emulator worker not started; retrying", "error", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(workerRetryPause):
			}
		}
	}()
	err = serveHTTP(ctx, cfg.EmulatorAddr, console.Handler(), log)
	cancel()
	wg.Wait()
	return err
}

func printScaled(raw, scaleSetting string, stdout io.Writer) error {
	scale, err := emulator.ParseScale(scaleSetting)
	if err != nil {
		return err
	}
	d, err := parseEmulatedDuration(raw)
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	real := emulator.Clock{Scale: scale}.Real(d)
	fmt.Fprintln(stdout, max(real, time.Second).Round(time.Second))
	return nil
}

func parseEmulatedDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days float64
		if _, err := fmt.Sscanf(n, "%g", &days); err != nil {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// runEmulatorCommand runs a console command against the emulator's API.
func runEmulatorCommand(ctx context.Context, c *emulator.Client, cmd string, args []string, stdout io.Writer, m merchant) error {
	fs := flag.NewFlagSet("emulator "+cmd, flag.ContinueOnError)
	fs.SetOutput(stdout)
	asJSON := fs.Bool("json", false, "print raw JSON")
	var buy emulator.BuyRequest
	var periods int
	var quantity int64
	var sku, evidence, start string
	var all, withMerchant bool
	var failure emulator.UsageFailures
	switch cmd {
	case "buy":
		fs.StringVar(&buy.BillingMode, "mode", "PERIOD", "billing mode: PERIOD, ONE_TIME, ON_DEMAND, ON_DEMAND_PKG")
		fs.StringVar(&buy.PeriodType, "period", "", "period type: month (default for PERIOD), year, day")
		fs.IntVar(&buy.PeriodNumber, "periods", 0, "number of periods (default 1)")
		fs.Int64Var(&buy.Quantity, "quantity", 0, "seats (default 10)")
		fs.StringVar(&buy.ProductID, "product", "", "productId (default demo-product)")
		fs.StringVar(&buy.SkuCode, "sku", "", "skuCode (default demo-sku)")
		fs.BoolVar(&buy.Supervised, "supervised", false, "a product under service supervision")
		fs.IntVar(&buy.TrialDays, "trial-days", 0, "sell a trial of this many days")
		fs.BoolVar(&buy.Debug, "debug", false, "send every call with testFlag=1, like the console's debugger")
	case "renew":
		fs.IntVar(&periods, "periods", 1, "periods to add")
	case "upgrade":
		fs.Int64Var(&quantity, "quantity", 0, "new number of seats")
		fs.StringVar(&sku, "sku", "", "new skuCode")
	case "confirm-delivery":
		fs.StringVar(&evidence, "evidence", "", "the delivery document (required)")
		fs.StringVar(&start, "start", "", "declared service start, RFC 3339")
	case "messages":
		fs.BoolVar(&all, "all", false, "include the calls answered since")
	case "watch":
		fs.BoolVar(&withMerchant, "merchant", false, "also print the merchant's side, from EMULATOR_MERCHANT_ADMIN_URL")
	case "fail-usage":
		fs.IntVar(&failure.Status, "status", 0, "HTTP status, 400 to 599 (default: the code's documented status, 500 for MKT.0999)")
		fs.StringVar(&failure.Code, "code", "MKT.0999", "error_code: "+strings.Join(emulator.UsageFailureCodes, ", "))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	print := func(v any, text func(io.Writer)) error {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		text(stdout)
		return nil
	}
	needID := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("%s: give the purchase ID", cmd)
		}
		return fs.Arg(0), nil
	}

	switch cmd {
	case "buy":
		if buy.BillingMode != emulator.ModePeriod && buy.BillingMode != emulator.ModeOnDemandPkg {
			// Only periodic products take the period defaults.
			buy.PeriodType, buy.PeriodNumber = "", 0
		}
		b, err := c.Buy(ctx, buy)
		if err != nil {
			return err
		}
		return print(b, func(w io.Writer) {
			fmt.Fprintf(w, "Bought: purchase %s (order %s, line %s).\n", b.PurchaseID, b.OrderID, b.OrderLineID)
			fmt.Fprintf(w, "Follow it: fulfillment emulator watch %s\n", b.PurchaseID)
		})
	case "purchases":
		ps, err := c.Purchases(ctx)
		if err != nil {
			return err
		}
		return print(ps, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "PURCHASE\tSTATE\tMODE\tINSTANCE\tEXPIRES (REAL)")
			for _, p := range ps {
				exp := "-"
				if p.ExpireTime != nil {
					exp = p.ExpireTime.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.PurchaseID, p.State, p.ChargingMode, p.InstanceID, exp)
			}
			tw.Flush()
		})
	case "show":
		id, err := needID()
		if err != nil {
			return err
		}
		v, err := c.Purchase(ctx, id)
		if err != nil {
			return err
		}
		return print(v, func(w io.Writer) { printPurchase(w, v) })
	case "watch":
		id, err := needID()
		if err != nil {
			return err
		}
		if withMerchant && m.url == "" {
			return errors.New("watch -merchant needs EMULATOR_MERCHANT_ADMIN_URL and EMULATOR_MERCHANT_ADMIN_TOKEN")
		}
		if !withMerchant {
			m = merchant{}
		}
		return watchPurchase(ctx, c, id, stdout, m)
	case "messages":
		status := "failed"
		if all {
			status = ""
		}
		ms, err := c.Messages(ctx, status)
		if err != nil {
			return err
		}
		return print(ms, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "MESSAGE\tACTIVITY\tSTATUS\tATTEMPTS\tERROR")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.ID, m.Activity, m.Status, m.Attempts, m.Error)
			}
			tw.Flush()
		})
	case "restart":
		if fs.NArg() != 1 {
			return errors.New("restart: give the failed call's ID (see fulfillment emulator messages)")
		}
		if err := c.Restart(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "Restarted; the purchase's timeline shows the answer.")
		return nil
	case "usage":
		if fs.NArg() != 1 {
			return errors.New("usage: give the purchase ID or the instance ID")
		}
		v, err := c.PurchaseUsage(ctx, fs.Arg(0))
		var apiErr *emulator.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			v, err = c.Usage(ctx, fs.Arg(0))
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
				return fmt.Errorf("usage: %s is neither a purchase nor an instance of one", fs.Arg(0))
			}
		}
		if err != nil {
			return err
		}
		return print(v, func(w io.Writer) { printUsage(w, v) })
	case "fail-usage":
		if fs.NArg() != 1 {
			return errors.New("fail-usage: give how many pushes fail, such as: fail-usage 1")
		}
		n, err := strconv.Atoi(fs.Arg(0))
		if err != nil {
			return errors.New("fail-usage: the number of pushes must be a whole number from 1 to 1000")
		}
		failure.Count = n
		armed, err := c.FailUsage(ctx, failure)
		if err != nil {
			return err
		}
		return print(armed, func(w io.Writer) {
			fmt.Fprintf(w, "The next %d usage push(es) will be answered HTTP %d %s.\n", armed.Count, armed.Status, armed.Code)
		})
	}

	id, err := needID()
	if err != nil {
		return err
	}
	a := emulator.Action{Kind: cmd}
	switch cmd {
	case "renew":
		a.Periods = periods
	case "upgrade":
		a.Quantity, a.SkuCode = quantity, sku
	case "confirm-delivery":
		a.Evidence = evidence
		if start != "" {
			t, err := time.Parse(time.RFC3339, start)
			if err != nil {
				return errors.New("confirm-delivery: -start must be an RFC 3339 time")
			}
			a.StartTime = &t
		}
	}
	if err := c.Act(ctx, id, a); err != nil {
		var apiErr *emulator.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound && strings.Contains(apiErr.Message, "unknown action") {
			return fmt.Errorf("unknown command %q; run 'fulfillment emulator help'", cmd)
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: accepted.\n", cmd)
	return nil
}

// printUsage prints an instance's usage records as the seller console's
// 话单管理 lists them.
func printUsage(w io.Writer, v emulator.UsageView) {
	fmt.Fprintf(w, "Usage records of instance %s", v.InstanceID)
	if v.PurchaseID != "" {
		fmt.Fprintf(w, " (purchase %s)", v.PurchaseID)
	}
	fmt.Fprintln(w, ", as the marketplace received them (times UTC):")
	if len(v.Records) > 0 {
		tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "METERING_SN\tBEGIN\tEND\tVALUE\tPACKAGE\tRECEIVED")
		for _, r := range v.Records {
			pkg := r.RelatePkgInstance
			if pkg == "" {
				pkg = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.MeteringSN, r.BeginTime.UTC().Format(time.DateTime),
				r.EndTime.UTC().Format(time.DateTime), r.UsageValue, pkg, r.ReceivedAt.UTC().Format(time.DateTime))
		}
		tw.Flush()
	}
	t := v.Totals
	fmt.Fprintf(w, "Total: %d record(s), usage %s; %d push(es) refused", t.Records, t.UsageValue, t.RefusedPushes)
	if l := t.LastRefusal; l != nil {
		fmt.Fprintf(w, " (last: HTTP %d %s %s at %s)", l.HTTPStatus, l.Code, l.Message, l.At.UTC().Format(time.DateTime))
	}
	fmt.Fprintln(w, ".")
}

func printPurchase(w io.Writer, v emulator.PurchaseView) {
	fmt.Fprintf(w, "Purchase %s: %s (%s)", v.PurchaseID, v.State, v.ChargingMode)
	if v.Debug {
		fmt.Fprint(w, " [debug]")
	}
	fmt.Fprintln(w)
	if v.InstanceID != "" {
		fmt.Fprintf(w, "  instance   %s\n", v.InstanceID)
	}
	if v.EmulatedExpireTime != nil {
		fmt.Fprintf(w, "  expires    %s emulated (%s real)\n", v.EmulatedExpireTime.UTC().Format(time.DateTime),
			v.ExpireTime.Local().Format(time.DateTime))
	}
	if v.SupervisionStage != "" {
		fmt.Fprintf(w, "  supervision %s\n", v.SupervisionStage)
	}
	if a := v.AppInfo; a != nil {
		fmt.Fprintf(w, "  access     %s\n", a.FrontEndURL)
		if a.UserName != "" {
			fmt.Fprintf(w, "  login      %s / %s\n", a.UserName, a.Password)
		}
		if a.DecryptError != "" {
			fmt.Fprintf(w, "  login      %s\n", a.DecryptError)
		}
		if a.Memo != "" {
			fmt.Fprintf(w, "  memo       %s\n", a.Memo)
		}
	}
	fmt.Fprintln(w, "  orders:")
	for _, o := range v.Orders {
		fmt.Fprintf(w, "    %s  %-16s %s\n", o.OrderID, o.OrderType, o.SkuCode)
	}
	fmt.Fprintln(w, "  timeline (emulated time):")
	for _, e := range v.Timeline {
		fmt.Fprintf(w, "    %s  %-16s %s\n", e.EmulatedAt.UTC().Format("2006-01-02 15:04"), e.Kind, e.Message)
	}
	for _, m := range v.Failed {
		if m.Status == store.MessageFailed {
			fmt.Fprintf(w, "  failed call %s (%s, %d attempts): %s\n", m.ID, m.Activity, m.Attempts, m.Error)
		}
	}
}

// watchPurchase prints the timeline as it grows, until the purchase ends;
// with a merchant admin API, the merchant's state changes too.
func watchPurchase(ctx context.Context, c *emulator.Client, id string, stdout io.Writer, m merchant) error {
	seen, lastState := 0, ""
	for {
		v, err := c.Purchase(ctx, id)
		if err != nil {
			return err
		}
		for _, e := range v.Timeline[min(seen, len(v.Timeline)):] {
			fmt.Fprintf(stdout, "%s  marketplace  %-16s %s\n", e.EmulatedAt.UTC().Format("2006-01-02 15:04"), e.Kind, e.Message)
		}
		seen = len(v.Timeline)
		if m.url != "" && v.InstanceID != "" {
			if st, reason, err := m.state(ctx, v.InstanceID); err == nil && st != lastState && v.EmulatedNow != nil {
				fmt.Fprintf(stdout, "%s  merchant     %-16s %s\n", v.EmulatedNow.UTC().Format("2006-01-02 15:04"), st, reason)
				lastState = st
			}
		}
		switch v.State {
		case "released", "unsubscribed", "cancelled":
			if m.url == "" || lastState == "released" || lastState == "failed" {
				fmt.Fprintf(stdout, "Purchase %s: %s.\n", id, v.State)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// state reads an instance's state from the merchant's admin API.
func (m merchant) state(ctx context.Context, instanceID string) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(m.url, "/")+"/v1/instances/"+instanceID, nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("merchant admin API answered %d", resp.StatusCode)
	}
	var v struct {
		State  string `json:"state"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", "", err
	}
	return v.State, v.Reason, nil
}
