package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Usage is the help text of "fulfillment emulator"; %[1]s is the program
// as it was run (bin/fulfillment).
const Usage = `%[1]s emulator: KooGallery, played locally against a production interface.

Usage: %[1]s emulator <command> [flags] [ID]

  serve                            run the emulator: its workflows, the consoles and the open API
  buy [flags]                      buy a product (see '%[1]s emulator buy -h')
  purchases                        list the purchases
  show ID                          a purchase: state, orders, access information, timeline, failed calls
  watch [-merchant] ID             print the purchase's timeline as it happens, in the order things
                                   happened, until its life ends; -merchant also prints the merchant's
                                   side (EMULATOR_MERCHANT_ADMIN_URL and EMULATOR_MERCHANT_ADMIN_TOKEN)
  renew [-periods N] ID            renew (refreshInstance RENEWAL, then UNFREEZE if frozen; for a
                                   license code, refreshLicenseCode: see License codes below)
  refund-renewal ID                refund the last renewal period (UNSUBSCRIBE_RENEWAL_PERIOD)
  unsubscribe ID                   unsubscribe (releaseInstance, or releaseLicenseCode, with the
                                   unsubscription order)
  upgrade -quantity N [-sku S] ID  change the spec (changeInstanceCheck, then upgradeInstance)
  convert ID                       trial to formal (TRIAL_TO_FORMAL)
  arrears ID | pay ID              pay-per-use account in arrears (FREEZE) / paid (UNFREEZE)
  submit-requirements ID           supervision: the buyer submits requirements
  confirm-requirements ID          supervision: the merchant confirms them (确认需求)
  reject-requirements -reason R ID supervision: the merchant rejects them (驳回); the buyer submits again
  confirm-delivery -evidence E -result R [-start RFC3339] ID
                                   supervision: the merchant confirms the service completed, with
                                   the evidence and the result description (服务结果描述)
  review-approve ID | review-reject -reason R ID
                                   supervision, products bought with -reviewed: Huawei Cloud's
                                   review (华为云复核) approves the delivery / sends it back
  accept ID | reject ID            supervision: the buyer accepts / rejects
  messages [-all]                  failed production-interface calls (生产接口消息)
  restart MESSAGE_ID               restart a failed call (重新启动)
  usage ID                         pay-per-use: the usage records received for a purchase or an
                                   instance, with totals and refused pushes (话单管理)
  pushes [-limit N] [PUSH_ID]      pay-per-use: the usage pushes (calls) received, newest first, with
                                   how many records and instances each carried; with PUSH_ID, that
                                   push and the records it delivered
  fail-usage [-status S] [-code C] N
                                   make the next N usage pushes fail (default 500 MKT.0999, the
                                   marketplace's internal error, which merchants retry)
  scale DURATION                   the real duration of an emulated one under EMULATOR_TIME_SCALE

 联营 kit (the merchant's server needs KOOGALLERY_KIT_ACCESS_KEY and its private key; the emulator
 the same kit key and EMULATOR_KIT_PUBLIC_KEY_FILE):
  bind [-enterprise NAME] ID       the buyer binds the app to an enterprise: tenantSync,
                                   applicationSync (an RSA-OAEP secret) and allOrgSync
  unbind ID                        the app is unbound: applicationSync and tenantSync, flag 0
  authorize [-role R] [-org D] ID USER...
                                   the administrator authorises users (authSync flag 1)
  revoke ID USER...                their authorisation is cancelled (authSync flag 3)
  remove-users ID USER...          they left the enterprise (authSync flag 0)
  department [-name N] [-parent P] [-delete] ID CODE
                                   a department is added, renamed, moved or deleted (singleOrgSync)
  probe-kit                        the seller's credential probe: every kit call with an empty
                                   instanceId, and what the merchant answered

 Online licences (在线开通License; buy -online-license):
  license-request [-fingerprint F] [-event E] ID
                                   a device asks for its licence (getLicenseAsync); show lists the
                                   licence the merchant uploaded for it

 License codes (License授权码 2.0; buy -license-code; the emulator and the merchant's server need
 the same KOOGALLERY_LICENSE_ACCESS_KEY): once the code is activated, renew sends
 refreshLicenseCode RENEWAL (then updateLicenseCodeStatus UNFREEZE if frozen), refund-renewal
 refreshLicenseCode UNSUBSCRIBE_RENEWAL_PERIOD, unsubscribe releaseLicenseCode with the
 unsubscription order; unrenewed, the code is frozen at expiry (FREEZE) and released after the
 retention (releaseLicenseCode). Before the activation they send nothing: the code has no expiry.

Flags go before or after the ID; -h after a command shows its flags. The commands other than
serve call the emulator at EMULATOR_URL; -json prints raw JSON. Variables that are not set are
read from ` + RunEnvFile + ` when it exists (make run writes it there: the addresses and
tokens of the stack it started).
`

// RunEnvFile is where make run (scripts/run-local.sh) writes the
// environment a second terminal needs, as shell exports; the console
// commands read the variables that are not set from it, relative to the
// working directory.
const RunEnvFile = ".data/run.env"

// synopses are the commands' arguments, for their -h.
var synopses = map[string]string{
	"buy": "[flags]", "purchases": "", "show": "ID", "watch": "[-merchant] ID", "messages": "[-all]",
	"restart": "MESSAGE_ID", "usage": "ID", "pushes": "[-limit N] [PUSH_ID]", "fail-usage": "[-status S] [-code C] N",
	ActRenew: "[-periods N] ID", ActUpgrade: "-quantity N [-sku S] ID", ActConfirmDelivery: "-evidence E -result R [-start RFC3339] ID",
	ActRejectRequirements: "-reason R ID", ActRejectReview: "-reason R ID",
	ActBind: "[-enterprise NAME] ID", ActAuthorize: "[-role R] [-org D] ID USER...", ActRevoke: "ID USER...",
	ActRemoveUsers: "ID USER...", ActDepartment: "[-name N] [-parent P] [-delete] ID CODE", "probe-kit": "",
	ActLicenseRequest: "[-fingerprint F] [-event E] ID",
}

// Main runs "<prog> emulator <command> [args]": serve, scale, or a console
// command against the emulator at EMULATOR_URL. prog is the program as the
// user ran it, for the commands it prints.
func Main(ctx context.Context, prog string, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintf(stdout, Usage, prog)
		return nil
	}
	name, rest := args[0], args[1:]
	env := &runEnv{getenv: getenv}
	if name != "serve" {
		// A second terminal has none of make run's variables: read them
		// from the file it wrote.
		if err := env.load(RunEnvFile); err != nil {
			return err
		}
	}
	cfg, err := LoadConfig(env.get)
	if err != nil {
		return err
	}
	switch name {
	case "serve":
		return Serve(ctx, cfg, cfg.Logger())
	case "scale":
		if len(rest) == 1 && isHelp(rest[0]) {
			fmt.Fprintf(stdout, "Usage: %s emulator scale DURATION\n\nThe real duration of an emulated one (24h, 15d) under EMULATOR_TIME_SCALE.\n", prog)
			return nil
		}
		if len(rest) != 1 {
			return errors.New("scale: give one emulated duration, such as 24h or 15d")
		}
		return printScaled(rest[0], cfg.TimeScale, stdout)
	}
	newCommand, ok := commands[name]
	if !ok {
		if !isAction(name) {
			return fmt.Errorf("unknown command %q; run '%s emulator help'", name, prog)
		}
		newCommand = actionCommand(name)
	}
	fs := flag.NewFlagSet(prog+" emulator "+name, flag.ContinueOnError)
	// The flag package's own messages stay quiet: the error is returned,
	// and -h prints the usage below.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := &cli{name: name, prog: prog, client: &Client{BaseURL: cfg.URL}, cfg: cfg, env: env, out: stdout}
	fs.BoolVar(&c.json, "json", false, "print raw JSON")
	run := newCommand(fs)
	positional, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		printCommandUsage(stdout, fs, prog, name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w (run '%s emulator %s -h')", name, err, prog, name)
	}
	return run(ctx, c, positional)
}

// printCommandUsage is a command's -h: its arguments and flags.
func printCommandUsage(w io.Writer, fs *flag.FlagSet, prog, name string) {
	synopsis, ok := synopses[name]
	if !ok {
		synopsis = "ID"
	}
	fmt.Fprintf(w, "Usage: %s emulator %s\n\nFlags", prog, strings.TrimSpace(name+" "+synopsis))
	if strings.Contains(synopsis, "ID") || strings.HasSuffix(synopsis, " N") {
		fmt.Fprint(w, " (before or after the argument)")
	}
	fmt.Fprintln(w, ":")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// parseInterspersed parses flags wherever they are among the arguments
// (watch ID -merchant as well as watch -merchant ID) and returns the
// others; after "--" everything is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// runEnv is the environment, with the variables not set taken from the
// file make run writes.
type runEnv struct {
	getenv func(string) string
	file   map[string]string
	path   string
}

// load reads a file of shell exports (export NAME='value'); a missing file
// is no error.
func (e *runEnv) load(path string) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	e.file, e.path = map[string]string{}, path
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return fmt.Errorf("read %s: %q is not NAME=value", path, line)
		}
		if len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'' {
			value = value[1 : len(value)-1]
		}
		e.file[strings.TrimSpace(name)] = value
	}
	return nil
}

// get is the variable from the environment, else from the file.
func (e *runEnv) get(name string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return e.file[name]
}

// fromFile reports whether a variable comes from the file.
func (e *runEnv) fromFile(name string) bool { return e.getenv(name) == "" && e.file[name] != "" }

// cli is what a console command works with.
type cli struct {
	name   string
	prog   string
	client *Client
	cfg    Config
	env    *runEnv
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
	"pushes":     pushesCommand,
	"fail-usage": failUsageCommand,
	"probe-kit":  probeKitCommand,
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
	fs.BoolVar(&buy.Reviewed, "reviewed", false, "with -supervised: Huawei Cloud reviews the delivery (赋能云/基地云; the server's SUPERVISION_REVIEWED_PRODUCTS must name the product)")
	fs.IntVar(&buy.TrialDays, "trial-days", 0, "sell a trial of this many days")
	fs.BoolVar(&buy.Debug, "debug", false, "send every call with testFlag=1, like the console's debugger")
	fs.BoolVar(&buy.OnlineLicense, "online-license", false, "an online licence product (在线开通License): its devices ask for licences with license-request")
	fs.StringVar(&buy.Reset, "reset", "", "with -mode ON_DEMAND_PKG: a package whose content resets monthly or yearly (按月/按年重置), sold as demo-package-monthly or demo-package-yearly (the server's PACKAGE_RESET_PRODUCTS must name the product; make run does)")
	fs.StringVar(&buy.Interface, "interface", "v2", "the production interface of the listing: v2 (SaaS 2.0) or v1 (the withdrawn V1.0: GET calls with authToken, signed with KOOGALLERY_V1_ACCESS_KEY, the access information in the newInstance answer)")
	fs.BoolVar(&buy.LicenseCode, "license-code", false, "a license code (License授权码 2.0): the buyer receives a code that the merchant's software activates (POST /v1/licenses/{code}/activate)")
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
			fmt.Fprintf(w, "Follow it: %s\n", c.watchHint(b.PurchaseID))
			if buy.LicenseCode {
				c.printActivationHint(w, b.PurchaseID)
			}
			if c.cfg.MerchantAdminURL != "" && !c.env.fromFile("EMULATOR_MERCHANT_ADMIN_URL") {
				fmt.Fprintln(w, "  (from a terminal where EMULATOR_MERCHANT_ADMIN_URL and EMULATOR_MERCHANT_ADMIN_TOKEN are set as here)")
			}
		})
	}
}

// printActivationHint says how the merchant's software activates the
// code a license-code purchase sold, as a command that can be pasted.
func (c *cli) printActivationHint(w io.Writer, purchaseID string) {
	token := c.env.get("FULFILLMENT_LICENSE_TOKEN")
	if token == "" || c.cfg.MerchantAdminURL == "" {
		fmt.Fprintf(w, "The buyer receives license code %s; the merchant's software activates it with POST /v1/licenses/%s/activate.\n",
			licenseCodeOf(purchaseID), licenseCodeOf(purchaseID))
		c.printCodeLifeHint(w, purchaseID)
		return
	}
	// The token is named, not printed: the hint reads it where this
	// command did.
	source := ""
	if c.env.fromFile("FULFILLMENT_LICENSE_TOKEN") {
		source = ". " + RunEnvFile + " && "
	}
	fmt.Fprintf(w, "The buyer receives license code %s. Activate it, as the merchant's software would:\n", licenseCodeOf(purchaseID))
	fmt.Fprintf(w, "  %scurl -s -X POST -H \"Authorization: Bearer $FULFILLMENT_LICENSE_TOKEN\" %s/v1/licenses/%s/activate\n",
		source, strings.TrimRight(c.cfg.MerchantAdminURL, "/"), licenseCodeOf(purchaseID))
	c.printCodeLifeHint(w, purchaseID)
}

// printCodeLifeHint says how the rest of the code's life is played, once
// it is activated.
func (c *cli) printCodeLifeHint(w io.Writer, purchaseID string) {
	fmt.Fprintf(w, "Once activated, its validity counts: unrenewed, it is frozen at expiry and released after the retention. "+
		"Renew it: %[1]s emulator renew %[2]s; refund that renewal: %[1]s emulator refund-renewal %[2]s; "+
		"release it: %[1]s emulator unsubscribe %[2]s; its calls: %[1]s emulator show %[2]s\n", c.prog, purchaseID)
}

// defaultURL is EMULATOR_URL's default.
const defaultURL = "http://127.0.0.1:8090"

// watchHint is the command that follows a purchase, as it can be pasted
// into another terminal: with -merchant when the merchant's admin API is
// known, and with EMULATOR_URL when this terminal has its own.
func (c *cli) watchHint(id string) string {
	var b strings.Builder
	if u := c.env.getenv("EMULATOR_URL"); u != "" && u != c.env.file["EMULATOR_URL"] && u != defaultURL {
		b.WriteString("EMULATOR_URL=" + u + " ")
	}
	b.WriteString(c.prog + " emulator watch ")
	if c.cfg.MerchantAdminURL != "" && c.cfg.MerchantAdminToken != "" {
		b.WriteString("-merchant ")
	}
	b.WriteString(id)
	return b.String()
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
			var missing []string
			if c.cfg.MerchantAdminURL == "" {
				missing = append(missing, "EMULATOR_MERCHANT_ADMIN_URL")
			}
			if c.cfg.MerchantAdminToken == "" {
				missing = append(missing, "EMULATOR_MERCHANT_ADMIN_TOKEN")
			}
			if len(missing) > 0 {
				return fmt.Errorf("watch -merchant reads the merchant's side from the server's admin API and needs "+
					"EMULATOR_MERCHANT_ADMIN_URL and EMULATOR_MERCHANT_ADMIN_TOKEN; not set: %s.\n"+
					"make run writes both into %s, which this command reads when run from the repository's directory "+
					"while make run is up. Else set them to the server's address and its FULFILLMENT_ADMIN_TOKEN; for make run's server:\n"+
					"  export EMULATOR_MERCHANT_ADMIN_URL=http://127.0.0.1:8080 EMULATOR_MERCHANT_ADMIN_TOKEN=local-admin-token",
					strings.Join(missing, ", "), RunEnvFile)
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
		id, err := c.oneArg(args, "the failed call's ID (see '"+c.prog+" emulator messages')")
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

func pushesCommand(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	limit := fs.Int("limit", 50, "how many pushes, newest first (1 to 1000)")
	return func(ctx context.Context, c *cli, args []string) error {
		switch len(args) {
		case 0:
			if *limit < 1 || *limit > 1000 {
				return errors.New("pushes: -limit must be a whole number from 1 to 1000")
			}
			ps, err := c.client.UsagePushes(ctx, *limit)
			if err != nil {
				return err
			}
			return c.print(UsagePushes{Pushes: ps}, func(w io.Writer) { printUsagePushes(w, ps) })
		case 1:
			v, err := c.client.UsagePush(ctx, args[0])
			var apiErr *APIError
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
				return fmt.Errorf("pushes: no usage push %s (see '%s emulator pushes')", args[0], c.prog)
			}
			if err != nil {
				return err
			}
			return c.print(v, func(w io.Writer) { printUsagePush(w, v) })
		default:
			return fmt.Errorf("%s: give at most one push ID", c.name)
		}
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
		ActSubmitRequirements, ActConfirmRequirements, ActRejectRequirements, ActConfirmDelivery,
		ActApproveReview, ActRejectReview, ActAccept, ActReject,
		ActBind, ActUnbind, ActAuthorize, ActRevoke, ActRemoveUsers, ActDepartment, ActLicenseRequest:
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
			fs.StringVar(&a.Result, "result", "", "the description of the service's result, 服务结果描述 (required)")
			fs.StringVar(&start, "start", "", "declared service start, RFC 3339")
		case ActRejectRequirements, ActRejectReview:
			fs.StringVar(&a.Reason, "reason", "", "why (required)")
		case ActBind:
			fs.StringVar(&a.Enterprise, "enterprise", "", "the enterprise's name (default: made up from the purchase)")
		case ActAuthorize:
			fs.StringVar(&a.Role, "role", "user", "the users' role: user or admin")
			fs.StringVar(&a.OrgCode, "org", "", "the users' department (default: the first one)")
		case ActLicenseRequest:
			fs.StringVar(&a.Fingerprint, "fingerprint", "", "the device's fingerprint or hardware ID")
			fs.StringVar(&a.EventID, "event", "", "the marketplace's event ID (default: made up from the purchase)")
		case ActDepartment:
			fs.StringVar(&a.OrgName, "name", "", "the department's name (required for a new one)")
			fs.StringVar(&a.ParentCode, "parent", "", "the parent department's code (for one that exists: moves it)")
			fs.BoolVar(&a.Delete, "delete", false, "delete the department")
		}
		return func(ctx context.Context, c *cli, args []string) error {
			id, err := c.actionArgs(kind, &a, args)
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
			if kind == ActLicenseRequest {
				fmt.Fprintf(c.out, "See the licence the device received: %s emulator show %s\n", c.prog, id)
			}
			if isKitAction(kind) {
				fmt.Fprintf(c.out, "See it: %s emulator show %s (the enterprise as the marketplace knows it); %s\n",
					c.prog, id, c.watchHint(id))
			}
			return nil
		}
	}
}

// actionArgs reads an action's arguments: the purchase ID, then the
// users of authorize, revoke and remove-users, or the department's code.
func (c *cli) actionArgs(kind string, a *Action, args []string) (string, error) {
	switch kind {
	case ActAuthorize, ActRevoke, ActRemoveUsers:
		if len(args) < 2 {
			return "", fmt.Errorf("%s: give the purchase ID, then one or more user names", kind)
		}
		a.Users = args[1:]
		return args[0], nil
	case ActDepartment:
		if len(args) != 2 {
			return "", fmt.Errorf("%s: give the purchase ID, then the department's code", kind)
		}
		a.OrgCode = args[1]
		return args[0], nil
	}
	return c.oneArg(args, "the purchase ID")
}

func isKitAction(kind string) bool {
	switch kind {
	case ActBind, ActUnbind, ActAuthorize, ActRevoke, ActRemoveUsers, ActDepartment:
		return true
	}
	return false
}

// probeKitCommand plays the seller's credential application.
func probeKitCommand(*flag.FlagSet) func(ctx context.Context, c *cli, args []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		if len(args) != 0 {
			return errors.New("probe-kit takes no argument")
		}
		probe, err := c.client.ProbeKit(ctx)
		if err != nil {
			return err
		}
		return c.print(probe, func(w io.Writer) {
			fmt.Fprintln(w, "The seller's credential probe: the kit's calls with an empty instanceId.")
			for _, call := range probe.Calls {
				switch {
				case call.Error != "":
					fmt.Fprintf(w, "  %-16s failed: %s\n", call.Operation, call.Error)
				default:
					fmt.Fprintf(w, "  %-16s %s %s\n", call.Operation, call.ResultCode, call.ResultMsg)
				}
			}
		})
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
