package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The console commands' text output.

// printUsage prints an instance's usage records as the seller console's
// 话单管理 lists them.
func printUsage(w io.Writer, v UsageView) {
	fmt.Fprintf(w, "Usage records of instance %s", v.InstanceID)
	if v.PurchaseID != "" {
		fmt.Fprintf(w, " (purchase %s)", v.PurchaseID)
	}
	fmt.Fprintln(w, ", as the marketplace received them (times UTC):")
	if len(v.Records) > 0 {
		tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "METERING_SN\tBEGIN\tEND\tVALUE\tPACKAGE\tRECEIVED\tSIGNED\tPUSH")
		for _, r := range v.Records {
			pkg := r.RelatePkgInstance
			if pkg == "" {
				pkg = "-"
			}
			// How the push was written: the body form its signature covered
			// and usage_value's JSON type, e.g. "raw, number".
			signed := "-"
			if r.SignedForm != "" {
				signed = r.SignedForm + ", " + r.ValueForm
			}
			// The call that delivered it, and what else it carried: a
			// batch of many instances shows as such.
			push := "-"
			if r.PushID != "" {
				push = fmt.Sprintf("%s (%d record(s), %d instance(s))", r.PushID, r.PushRecords, r.PushInstances)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.MeteringSN, r.BeginTime.UTC().Format(time.DateTime),
				r.EndTime.UTC().Format(time.DateTime), r.UsageValue, pkg, r.ReceivedAt.UTC().Format(time.DateTime), signed, push)
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

// printUsagePushes prints the accepted usage pushes, newest first.
func printUsagePushes(w io.Writer, ps []ReceivedPush) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "No usage push received.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "PUSH\tRECEIVED\tRECORDS\tNEW\tINSTANCES\tSIGNED")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", p.PushID, p.ReceivedAt.UTC().Format(time.DateTime),
			p.Records, p.NewRecords, p.Instances, p.SignedForm+", "+p.ValueForm)
	}
	tw.Flush()
}

// printUsagePush prints one push and the records it delivered first.
func printUsagePush(w io.Writer, v UsagePushView) {
	p := v.Push
	fmt.Fprintf(w, "Usage push %s, received %s UTC (signed %s, %s): %d record(s) of %d instance(s), %d new.\n",
		p.PushID, p.ReceivedAt.UTC().Format(time.DateTime), p.SignedForm, p.ValueForm, p.Records, p.Instances, p.NewRecords)
	if len(v.Records) == 0 {
		fmt.Fprintln(w, "It delivered no record first: each was delivered by an earlier push.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tMETERING_SN\tBEGIN\tEND\tVALUE")
	for _, r := range v.Records {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.InstanceID, r.MeteringSN, r.BeginTime.UTC().Format(time.DateTime),
			r.EndTime.UTC().Format(time.DateTime), r.UsageValue)
	}
	tw.Flush()
}

func printPurchase(w io.Writer, v PurchaseView) {
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
		if a.Released {
			fmt.Fprintf(w, "  login      none: the instance is released\n")
		}
		if a.DecryptError != "" {
			fmt.Fprintf(w, "  login      %s\n", a.DecryptError)
		}
		if a.Memo != "" {
			fmt.Fprintf(w, "  memo       %s\n", a.Memo)
		}
	}
	if k := v.Kit; k != nil {
		printKit(w, k)
	}
	if lc := v.LicenseCode; lc != nil {
		printLicenseCode(w, lc)
	}
	printLicenses(w, v.Licenses)
	fmt.Fprintln(w, "  orders:")
	for _, o := range v.Orders {
		fmt.Fprintf(w, "    %s  %-16s %s\n", o.OrderID, o.OrderType, o.SkuCode)
	}
	fmt.Fprintln(w, "  timeline (emulated time):")
	for _, e := range v.Timeline {
		fmt.Fprintf(w, "    %s  %-16s %s\n", e.EmulatedAt.UTC().Format("2006-01-02 15:04"), e.Kind, e.Message)
	}
	for _, m := range v.Failed {
		if m.Status == MessageFailed {
			fmt.Fprintf(w, "  failed call %s (%s, %d attempts): %s\n", m.ID, m.Activity, m.Attempts, m.Error)
		}
	}
}

// printKit shows the enterprise the app is bound to (联营 listings).
func printKit(w io.Writer, k *KitView) {
	fmt.Fprintf(w, "  enterprise %s (tenantId %s, code %s, %s)\n", k.Name, k.TenantID, k.TenantCode, k.DomainName)
	fmt.Fprintf(w, "  app        %s, client %s, secret SHA-256 %s\n", k.AppID, k.ClientID, k.SecretSHA256)
	for _, u := range k.Users {
		fmt.Fprintf(w, "  user       %-16s %-6s %-6s %s\n", u.UserName, u.Role, u.OrgCode, u.State)
	}
	for _, o := range k.Orgs {
		parent := o.ParentCode
		if parent == "" {
			parent = "(top)"
		}
		fmt.Fprintf(w, "  department %-8s %-16s under %s\n", o.OrgCode, o.OrgName, parent)
	}
}

// watchSettle is how long watch holds a line before printing it, so that
// the events of both sides, which are written a moment after they happen,
// print in the order they happened.
const watchSettle = 3 * time.Second

// watchLine is one line of watch: an event of either side.
type watchLine struct {
	at       time.Time // real, for the order
	emulated time.Time
	side     string
	kind     string
	message  string
}

// watchPurchase prints the purchase's timeline as it grows, until the
// purchase ends; with the merchant's admin API, the merchant's timeline
// too. Lines print in the order things happened (held watchSettle for the
// late writes), stamped with the emulated time they happened at.
func watchPurchase(ctx context.Context, c *Client, id string, stdout io.Writer, m merchantAdmin) error {
	seen := map[string]bool{}
	var pending []watchLine
	merchantState, merchantErr := "", ""
	for {
		polled := time.Now()
		v, err := c.Purchase(ctx, id)
		if err != nil {
			return err
		}
		for _, e := range v.Timeline {
			if key := "marketplace/" + e.Key; !seen[key] {
				seen[key] = true
				pending = append(pending, watchLine{at: e.At, emulated: e.EmulatedAt, side: "marketplace", kind: e.Kind, message: e.Message})
			}
		}
		if m.url != "" && v.InstanceID != "" {
			clock := Clock{Scale: v.TimeScale, Origin: v.ClockOrigin}
			inst, err := m.instance(ctx, v.InstanceID)
			switch {
			case err == nil:
				merchantState, merchantErr = inst.State, ""
				for _, e := range inst.Events {
					if key := "merchant/" + e.Key + "/" + e.Kind + "/" + e.At.String(); !seen[key] {
						seen[key] = true
						pending = append(pending, watchLine{at: e.At, emulated: clock.EmulatedAt(e.At), side: "merchant", kind: e.Kind, message: e.Message})
					}
				}
			case errors.Is(err, errNoInstanceYet):
				// newInstance has not reached the server yet.
			case err.Error() != merchantErr:
				merchantErr = err.Error()
				fmt.Fprintf(stdout, "(the merchant's side cannot be read: %v)\n", err)
			}
		}
		done := Ended(v.State) && (m.url == "" || v.InstanceID == "" || merchantState == "released" || merchantState == "failed")
		cut := polled.Add(-watchSettle)
		if done {
			cut = time.Now()
		}
		pending = printWatchLines(stdout, pending, cut)
		if done {
			fmt.Fprintf(stdout, "Purchase %s: %s.\n", id, v.State)
			return nil
		}
		select {
		case <-ctx.Done():
			printWatchLines(stdout, pending, time.Now().Add(time.Hour))
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// printWatchLines prints, in the order they happened, the lines that
// happened before cut, and returns the others.
func printWatchLines(w io.Writer, lines []watchLine, cut time.Time) []watchLine {
	slices.SortStableFunc(lines, func(a, b watchLine) int { return a.at.Compare(b.at) })
	n := 0
	for n < len(lines) && !lines[n].at.After(cut) {
		l := lines[n]
		msg := l.message
		if msg == "" {
			msg = "The state is now " + l.kind + "."
		}
		fmt.Fprintf(w, "%s  %-11s  %-16s %s\n", l.emulated.UTC().Format("2006-01-02 15:04"), l.side, l.kind, msg)
		n++
	}
	return slices.Delete(lines, 0, n)
}

// merchantAdmin is the merchant's admin API, for watch -merchant.
type merchantAdmin struct{ url, token string }

// merchantInstance is what watch reads of the merchant's instance.
type merchantInstance struct {
	State  string `json:"state"`
	Events []struct {
		At      time.Time `json:"at"`
		Kind    string    `json:"kind"`
		Message string    `json:"message"`
		Key     string    `json:"key"`
	} `json:"events"`
}

// errNoInstanceYet: the merchant does not know the instance (yet).
var errNoInstanceYet = errors.New("no such instance yet")

// instance reads an instance's state and timeline from the merchant's
// admin API.
func (m merchantAdmin) instance(ctx context.Context, instanceID string) (merchantInstance, error) {
	var v merchantInstance
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(m.url, "/")+"/v1/instances/"+url.PathEscape(instanceID), nil)
	if err != nil {
		return v, err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return v, fmt.Errorf("merchant admin API at %s: %w", m.url, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return v, errNoInstanceYet
	case http.StatusUnauthorized, http.StatusForbidden:
		return v, fmt.Errorf("merchant admin API at %s answered %d: EMULATOR_MERCHANT_ADMIN_TOKEN is not the server's FULFILLMENT_ADMIN_TOKEN", m.url, resp.StatusCode)
	default:
		return v, fmt.Errorf("merchant admin API at %s answered %d", m.url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("merchant admin API at %s: %w", m.url, err)
	}
	return v, nil
}

// printLicenses shows an online licence purchase's licence requests and
// the licences its devices received.
func printLicenses(w io.Writer, ls LicenseRequests) {
	if len(ls) == 0 {
		return
	}
	fmt.Fprintln(w, "  licences:")
	for _, l := range ls {
		device := l.Fingerprint
		if device == "" {
			device = "(no fingerprint)"
		}
		fmt.Fprintf(w, "    event %s  device %s  answered %s\n", l.EventID, device, l.ResultCode)
		if len(l.Uploads) == 0 && (l.ResultCode == "000000" || l.ResultCode == "000004") {
			fmt.Fprintln(w, "      not received yet")
		}
		for _, u := range l.Uploads {
			if u.Characters != "" {
				fmt.Fprintf(w, "      received %s  %s  %s\n", u.ReceivedAt.Local().Format(time.DateTime), u.Type, u.Characters)
			} else {
				fmt.Fprintf(w, "      received %s  %s %s, %d bytes, SHA-256 %s\n", u.ReceivedAt.Local().Format(time.DateTime),
					u.Type, u.FileName, u.Size, u.SHA256)
			}
		}
	}
}

// printLicenseCode shows a license code as the open API reports it, and
// the callbacks the marketplace sent about it.
func printLicenseCode(w io.Writer, lc *LicenseCodeShown) {
	fmt.Fprintf(w, "  license    %s: %s", lc.License, lc.Status)
	if exp := lc.ExpireTime; exp != nil {
		fmt.Fprintf(w, ", activated %s, expires %s (real)", lc.ActivatedAt.Local().Format(time.DateTime), exp.Local().Format(time.DateTime))
	}
	fmt.Fprintln(w)
	if len(lc.Calls) == 0 {
		return
	}
	fmt.Fprintln(w, "  license-code calls:")
	for _, call := range lc.Calls {
		result := call.Result
		switch result {
		case "":
			result = "retrying"
		case CallFailedForGood:
			result = "failed (restartable)"
		default:
			result = "answered " + result
		}
		fmt.Fprintf(w, "    %s  %-23s %-40s %s\n", call.SentAt.Local().Format(time.DateTime), call.Activity, call.Detail, result)
	}
}
