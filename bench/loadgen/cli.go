package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/fulfillment-server/fulfillment/koogallery/mockapi"
)

const benchUsage = `fulfillment bench: fire signed callbacks at a running server, as KooGallery does under load.

Usage: fulfillment bench [flags]

Plays whole purchase lives (newInstance, queryInstance, refreshInstance, FREEZE,
UNFREEZE, queryInstance, releaseInstance) for -instances purchases, -concurrency
at a time, at -rate callbacks a second (0: flat out), sending -redeliver of the
changing callbacks twice. Reports answer latency p50/p99/max per callback,
answers a second, result codes, and the time until every callback was applied;
then reads every instance's timeline for lost and duplicated effects.

The orders are <prefix>-<n>. The server's Query Order must know them: -orders
serves them on that address as the marketplace's open API (AK/SK from
KOOGALLERY_AK and KOOGALLERY_SK), so start the server with KOOGALLERY_API_URL
pointing there. With -temporal, also measures the Temporal server's raw
ceiling (bare SignalWithStart at the same concurrency) and the ratio.

Environment: KOOGALLERY_ACCESS_KEY (signs the calls), FULFILLMENT_ADMIN_TOKEN
(reads the timelines). "make bench" runs all of it on a stack of its own.

Flags:
`

// Main runs "fulfillment bench [flags]": one Mix against the server at
// -url and, with -temporal, the Ceiling of that Temporal server, printed as
// tables.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { fmt.Fprint(stdout, benchUsage); fs.PrintDefaults() }
	url := fs.String("url", "http://127.0.0.1:8080", "the server's base URL")
	instances := fs.Int("instances", 200, "purchases whose whole life is played")
	concurrency := fs.Int("concurrency", 32, "purchases played at the same time")
	rate := fs.Float64("rate", 0, "callbacks a second (0: as fast as they are answered)")
	redeliver := fs.Float64("redeliver", 0.2, "share of the changing callbacks sent twice")
	prefix := fs.String("prefix", "", "order ID prefix (default: LOAD-<time>, new orders every run)")
	orders := fs.String("orders", "", "serve the orders as the marketplace's open API on this address (host:port)")
	temporal := fs.String("temporal", "", "the Temporal frontend (host:port) whose raw ceiling to measure too")
	patience := fs.Duration("patience", 15*time.Minute, "how long to wait for every callback to be applied")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	target := Target{URL: *url, AccessKey: getenv("KOOGALLERY_ACCESS_KEY"), AdminToken: getenv("FULFILLMENT_ADMIN_TOKEN")}
	if target.AccessKey == "" || target.AdminToken == "" {
		return errors.New("bench: set KOOGALLERY_ACCESS_KEY and FULFILLMENT_ADMIN_TOKEN to the server's")
	}
	if *prefix == "" {
		*prefix = "LOAD-" + strconv.FormatInt(time.Now().Unix(), 36)
	}
	if *orders != "" {
		ak, sk := getenv("KOOGALLERY_AK"), getenv("KOOGALLERY_SK")
		if ak == "" || sk == "" {
			return errors.New("bench: -orders needs KOOGALLERY_AK and KOOGALLERY_SK, the key pair the server signs Query Order with")
		}
		l, err := net.Listen("tcp", *orders)
		if err != nil {
			return fmt.Errorf("bench: serve the orders: %w", err)
		}
		srv := &http.Server{Handler: mockapi.New(mockapi.Config{AK: ak, SK: sk, Orders: NewOrders()}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		fmt.Fprintf(stdout, "Serving the orders %s-<n> on http://%s\n", *prefix, l.Addr())
	}
	res, err := RunMix(ctx, target, Mix{
		Instances: *instances, Concurrency: *concurrency, Rate: *rate, Redeliver: *redeliver,
		OrderPrefix: *prefix, Patience: *patience,
	})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	printMix(stdout, res, *instances)
	if *temporal == "" {
		return nil
	}
	tc, err := client.DialContext(ctx, client.Options{HostPort: *temporal})
	if err != nil {
		return fmt.Errorf("bench: connect to Temporal: %w", err)
	}
	defer tc.Close()
	ceiling, err := RunCeiling(ctx, tc, Ceiling{
		Instances: *instances, Concurrency: *concurrency, TaskQueue: "loadgen-ceiling", Patience: *patience,
	})
	if err != nil {
		return fmt.Errorf("bench: ceiling: %w", err)
	}
	applied := res.AppliedRate(*instances)
	fmt.Fprintf(stdout, "\nTemporal ceiling: %d bare SignalWithStart in %s (%.0f/s answered, p99 %s); all received after %s: %.0f signals/s; %d errors\n",
		ceiling.Signals, ceiling.Sent.Round(time.Millisecond), ceiling.SentRate(), ceiling.Latency.P99, ceiling.Applied.Round(time.Millisecond),
		ceiling.AppliedRate(), ceiling.Errors)
	if ceiling.AppliedRate() > 0 {
		fmt.Fprintf(stdout, "Ratio: %.0f changing callbacks applied/s ÷ %.0f signals/s = %.0f %%\n",
			applied, ceiling.AppliedRate(), 100*applied/ceiling.AppliedRate())
	}
	return nil
}

// printMix writes a run's figures as a table.
func printMix(w io.Writer, r MixResult, instances int) {
	fmt.Fprintf(w, "%d answers in %s: %.0f/s\n\n", r.Answers, r.Elapsed.Round(time.Millisecond), r.Rate())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "callback\tanswers\tp50\tp99\tmax\t")
	for _, k := range []string{"newInstance", "queryInstance", "refreshInstance", "FREEZE", "UNFREEZE", "releaseInstance", "all"} {
		if l, ok := r.ByKind[k]; ok {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t\n", k, l.Count, l.P50.Round(100*time.Microsecond),
				l.P99.Round(100*time.Microsecond), l.Max.Round(100*time.Microsecond))
		}
	}
	tw.Flush()
	codes := make([]string, 0, len(r.Codes))
	for c := range r.Codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	fmt.Fprint(w, "\nResult codes:")
	for _, c := range codes {
		fmt.Fprintf(w, " %s×%d", c, r.Codes[c])
	}
	fmt.Fprintln(w)
	if r.Applied > 0 {
		fmt.Fprintf(w, "All applied %s after the first call: %.0f changing callbacks/s\n", r.Applied.Round(time.Millisecond), r.AppliedRate(instances))
	} else {
		fmt.Fprintln(w, "Not every callback was applied within the patience")
	}
	fmt.Fprintf(w, "Timelines checked: %d; callbacks lost: %d; applied twice: %d\n", r.Checked, r.Lost, r.Duplicated)
}
