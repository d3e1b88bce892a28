package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// watchPurchase prints the timeline as it grows, until the purchase ends;
// with a merchant admin API, the merchant's state changes too.
func watchPurchase(ctx context.Context, c *Client, id string, stdout io.Writer, m merchantAdmin) error {
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

// merchantAdmin is the merchant's admin API, for watch -merchant.
type merchantAdmin struct{ url, token string }

// state reads an instance's state from the merchant's admin API.
func (m merchantAdmin) state(ctx context.Context, instanceID string) (string, string, error) {
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
