package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Usage is the help text of "fulfillment emulator".
const Usage = `fulfillment emulator: KooGallery, played locally against a production interface.

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

// Main runs "fulfillment emulator <command> [args]": serve, scale, or a
// console command against the emulator at EMULATOR_URL.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, Usage)
		return nil
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return err
	}
	name, rest := args[0], args[1:]
	switch name {
	case "serve":
		return Serve(ctx, cfg, cfg.Logger())
	case "scale":
		if len(rest) != 1 {
			return errors.New("scale: give one emulated duration, such as 24h or 15d")
		}
		return printScaled(rest[0], cfg.TimeScale, stdout)
	}
	newCommand, ok := commands[name]
	if !ok {
		if !isAction(name) {
			return fmt.Errorf("unknown command %q; run 'fulfillment emulator help'", name)
		}
		newCommand = actionCommand(name)
	}
	fs := flag.NewFlagSet("emulator "+name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	c := &cli{name: name, client: &Client{BaseURL: cfg.URL}, cfg: cfg, out: stdout}
	fs.BoolVar(&c.json, "json", false, "print raw JSON")
	run := newCommand(fs)
	if err := fs.Parse(rest); err != nil {
		return err
	}
	return run(ctx, c, fs.Args())
}

// cli is what a console command works with.
type cli struct {
	name   string
	client *Client
	cfg    Config
	out    io.Writer
	json   bool
}

// print writes v as JSON with -json, else as text.
func (c *cli) print(v any, text func(io.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(c.out)
	return nil
}

// oneArg is the command's only argument, such as the purchase ID.
func (c *cli) oneArg(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("%s: give %s", c.name, what)
	}
	return args[0], nil
}

// A command registers its flags and returns what runs it.
type command func(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error

// commands are the console commands other than the purchase actions.
var commands = map[string]command{
	"buy":        buyCommand,
	"purchases":  purchasesCommand,
	"show":       showCommand,
	"watch":      watchCommand,
	"messages":   messagesCommand,
	"restart":    restartCommand,
	"usage":      usageCommand,
	"fail-usage": failUsageCommand,
}

func buyCommand(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	var buy BuyRequest
	fs.StringVar(&buy.BillingMode, "mode", "PERIOD", "billing mode: PERIOD, ONE_TIME, ON_DEMAND, ON_DEMAND_PKG")
	fs.StringVar(&buy.PeriodType, "period", "", "period type: month (default for PERIOD), year, day")
	fs.IntVar(&buy.PeriodNumber, "periods", 0, "number of periods (default 1)")
	fs.Int64Var(&buy.Quantity, "quantity", 0, "seats (default 10)")
	fs.StringVar(&buy.ProductID, "product", "", "productId (default demo-product)")
	fs.StringVar(&buy.SkuCode, "sku", "", "skuCode (default demo-sku)")
	fs.BoolVar(&buy.Supervised, "supervised", false, "a product under service supervision")
	fs.IntVar(&buy.TrialDays, "trial-days", 0, "sell a trial of this many days")
	fs.BoolVar(&buy.Debug, "debug", false, "send every call with testFlag=1, like the console's debugger")
	return func(ctx context.Context, c *cli, _ []string) error {
		if buy.BillingMode != ModePeriod && buy.BillingMode != ModeOnDemandPkg {
			// Only periodic products take the period defaults.
			buy.PeriodType, buy.PeriodNumber = "", 0
		}
		b, err := c.client.Buy(ctx, buy)
		if err != nil {
			return err
		}
		return c.print(b, func(w io.Writer) {
			fmt.Fprintf(w, "Bought: purchase %s (order %s, line %s).\n", b.PurchaseID, b.OrderID, b.OrderLineID)
			fmt.Fprintf(w, "Follow it: fulfillment emulator watch %s\n", b.PurchaseID)
		})
	}
}

func purchasesCommand(*flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	return func(ctx context.Context, c *cli, _ []string) error {
		ps, err := c.client.Purchases(ctx)
		if err != nil {
			return err
		}
		return c.print(ps, func(w io.Writer) {
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
	}
}

func showCommand(*flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		id, err := c.oneArg(args, "the purchase ID")
		if err != nil {
			return err
		}
		v, err := c.client.Purchase(ctx, id)
		if err != nil {
			return err
		}
		return c.print(v, func(w io.Writer) { printPurchase(w, v) })
	}
}

func watchCommand(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	withMerchant := fs.Bool("merchant", false, "also print the merchant's side, from EMULATOR_MERCHANT_ADMIN_URL")
	return func(ctx context.Context, c *cli, args []string) error {
		id, err := c.oneArg(args, "the purchase ID")
		if err != nil {
			return err
		}
		var m merchantAdmin
		if *withMerchant {
			if c.cfg.MerchantAdminURL == "" {
				return errors.New("watch -merchant needs EMULATOR_MERCHANT_ADMIN_URL and EMULATOR_MERCHANT_ADMIN_TOKEN")
			}
			m = merchantAdmin{url: c.cfg.MerchantAdminURL, token: string(c.cfg.MerchantAdminToken)}
		}
		return watchPurchase(ctx, c.client, id, c.out, m)
	}
}

func messagesCommand(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	all := fs.Bool("all", false, "include the calls answered since")
	return func(ctx context.Context, c *cli, _ []string) error {
		status := "failed"
		if *all {
			status = ""
		}
		ms, err := c.client.Messages(ctx, status)
		if err != nil {
			return err
		}
		return c.print(ms, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "MESSAGE\tACTIVITY\tSTATUS\tATTEMPTS\tERROR")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.ID, m.Activity, m.Status, m.Attempts, m.Error)
			}
			tw.Flush()
		})
	}
}

func restartCommand(*flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		id, err := c.oneArg(args, "the failed call's ID (see fulfillment emulator messages)")
		if err != nil {
			return err
		}
		if err := c.client.Restart(ctx, id); err != nil {
			return err
		}
		fmt.Fprintln(c.out, "Restarted; the purchase's timeline shows the answer.")
		return nil
	}
}

func usageCommand(*flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		id, err := c.oneArg(args, "the purchase ID or the instance ID")
		if err != nil {
			return err
		}
		v, err := c.client.PurchaseUsage(ctx, id)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			v, err = c.client.Usage(ctx, id)
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
				return fmt.Errorf("usage: %s is neither a purchase nor an instance of one", id)
			}
		}
		if err != nil {
			return err
		}
		return c.print(v, func(w io.Writer) { printUsage(w, v) })
	}
}

func failUsageCommand(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	var failure UsageFailures
	fs.IntVar(&failure.Status, "status", 0, "HTTP status, 400 to 599 (default: the code's documented status, 500 for MKT.0999)")
	fs.StringVar(&failure.Code, "code", "MKT.0999", "error_code: "+strings.Join(UsageFailureCodes, ", "))
	return func(ctx context.Context, c *cli, args []string) error {
		raw, err := c.oneArg(args, "how many pushes fail, such as: fail-usage 1")
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			return errors.New("fail-usage: the number of pushes must be a whole number from 1 to 1000")
		}
		failure.Count = n
		armed, err := c.client.FailUsage(ctx, failure)
		if err != nil {
			return err
		}
		return c.print(armed, func(w io.Writer) {
			fmt.Fprintf(w, "The next %d usage push(es) will be answered HTTP %d %s.\n", armed.Count, armed.Status, armed.Code)
		})
	}
}

// isAction reports whether a command is an action on a purchase.
func isAction(name string) bool {
	switch name {
	case ActRenew, ActRefundRenewal, ActUnsubscribe, ActUpgrade, ActConvert, ActArrears, ActPay,
		ActSubmitRequirements, ActConfirmDelivery, ActAccept, ActReject:
		return true
	}
	return false
}

// actionCommand is a buyer's or a console's action on a purchase.
func actionCommand(kind string) command {
	return func(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
		a := Action{Kind: kind}
		var start string
		switch kind {
		case ActRenew:
			fs.IntVar(&a.Periods, "periods", 1, "periods to add")
		case ActUpgrade:
			fs.Int64Var(&a.Quantity, "quantity", 0, "new number of seats")
			fs.StringVar(&a.SkuCode, "sku", "", "new skuCode")
		case ActConfirmDelivery:
			fs.StringVar(&a.Evidence, "evidence", "", "the delivery document (required)")
			fs.StringVar(&start, "start", "", "declared service start, RFC 3339")
		}
		return func(ctx context.Context, c *cli, args []string) error {
			id, err := c.oneArg(args, "the purchase ID")
			if err != nil {
				return err
			}
			if start != "" {
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return errors.New("confirm-delivery: -start must be an RFC 3339 time")
				}
				a.StartTime = &t
			}
			if err := c.client.Act(ctx, id, a); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "%s: accepted.\n", kind)
			return nil
		}
	}
}

func printScaled(raw, scaleSetting string, stdout io.Writer) error {
	scale, err := ParseScale(scaleSetting)
	if err != nil {
		return err
	}
	d, err := parseEmulatedDuration(raw)
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	real := Clock{Scale: scale}.Real(d)
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
