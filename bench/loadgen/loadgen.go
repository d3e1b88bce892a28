// Package loadgen drives a running fulfillment server the way KooGallery
// does under load: signed production-interface callbacks for many
// purchases at once, with the marketplace's redeliveries, and measures what
// a merchant needs to know — how fast every callback is answered, at what
// rate, with which result codes, and how long until every callback has been
// applied by its instance workflow. It also measures the raw ceiling of the
// Temporal server underneath (ceiling.go) and the expiry storm of many
// purchases expiring in the same minute (storm.go). "fulfillment bench" is
// its command line (cli.go); "make bench" (bench/load) uses it too.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fulfillment-server/fulfillment/bench/benchenv"
	"github.com/fulfillment-server/fulfillment/koogallery"
)

// Target is the server under load.
type Target struct {
	// URL is the server's base URL (its /produce, /metrics and admin API).
	URL string
	// AccessKey signs the callbacks and checks the answers' Body-Sign.
	AccessKey string
	// AdminToken reads instances through the admin API to check that
	// every callback was applied exactly once.
	AdminToken string
	// HTTP is the client; nil means one sized for the concurrency.
	HTTP *http.Client
}

func (t Target) client(concurrency int) *http.Client {
	if t.HTTP != nil {
		return t.HTTP
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = concurrency*2, concurrency*2
	// KooGallery gives up on an answer after about 20 s.
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// Answer is one production-interface answer as the load generator saw it.
type Answer struct {
	// Kind is the callback: newInstance, queryInstance, refreshInstance,
	// FREEZE, UNFREEZE or releaseInstance.
	Kind string
	// Code is the resultCode, or what went wrong instead: "HTTP 503",
	// "timeout", "transport", "unsigned" (missing or wrong Body-Sign),
	// "unreadable".
	Code string
	// Latency runs from when the callback was due to be sent (not when a
	// busy client got round to it, so a slow server cannot hide its
	// queueing) until the whole answer was read.
	Latency    time.Duration
	InstanceID string
	// Raw is the answer's body, for queryInstance's info.
	Raw []byte
}

// send posts one signed callback and judges the answer like the
// marketplace: HTTP 200, a valid Body-Sign, a resultCode.
func send(ctx context.Context, hc *http.Client, t Target, kind string, body []byte, due time.Time) Answer {
	a := Answer{Kind: kind}
	query := koogallery.SignedQuery(t.AccessKey, body, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL+"/produce?"+query.Encode(), bytes.NewReader(body))
	if err != nil {
		a.Code = "transport"
		return a
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	resp, err := hc.Do(req)
	if err != nil {
		a.Latency = time.Since(due)
		var timeout interface{ Timeout() bool }
		if errors.As(err, &timeout) && timeout.Timeout() {
			a.Code = "timeout"
		} else {
			a.Code = "transport"
		}
		return a
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	a.Latency, a.Raw = time.Since(due), raw
	switch {
	case err != nil:
		a.Code = "transport"
	case resp.StatusCode != http.StatusOK:
		a.Code = fmt.Sprintf("HTTP %d", resp.StatusCode)
	case koogallery.VerifyBodySign(resp.Header.Get(koogallery.BodySignHeader), t.AccessKey, raw) != nil:
		a.Code = "unsigned"
	default:
		var r struct {
			ResultCode string `json:"resultCode"`
			InstanceID string `json:"instanceId"`
		}
		if json.Unmarshal(raw, &r) != nil || r.ResultCode == "" {
			a.Code = "unreadable"
		} else {
			a.Code, a.InstanceID = r.ResultCode, r.InstanceID
		}
	}
	return a
}

// Stats gathers answers from many goroutines.
type Stats struct {
	mu      sync.Mutex
	answers []Answer
	first   time.Time
	last    time.Time
}

func (s *Stats) add(a Answer, sentAt time.Time) {
	a.Raw = nil
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first.IsZero() || sentAt.Before(s.first) {
		s.first = sentAt
	}
	if now := time.Now(); now.After(s.last) {
		s.last = now
	}
	s.answers = append(s.answers, a)
}

// Summary is the digest of a run's answers.
type Summary struct {
	Answers int
	// Elapsed runs from the first callback sent to the last answer read.
	Elapsed time.Duration
	// ByKind holds the latencies per callback kind, and "all".
	ByKind map[string]Latency
	// Codes counts answers by result code (or failure).
	Codes map[string]int
	// Started is when the first callback was sent.
	Started time.Time
}

// Rate is the answers a second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Answers) / s.Elapsed.Seconds()
}

// Latency summarises the answer times of one kind of callback.
type Latency struct {
	Count          int
	P50, P99, Max  time.Duration
	OverOneSecond  int
	OverFiftyMilli int
}

// Summary digests what was gathered.
func (s *Stats) Summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Summary{Answers: len(s.answers), Elapsed: s.last.Sub(s.first), Started: s.first,
		ByKind: map[string]Latency{}, Codes: map[string]int{}}
	byKind := map[string][]time.Duration{}
	for _, a := range s.answers {
		byKind[a.Kind] = append(byKind[a.Kind], a.Latency)
		byKind["all"] = append(byKind["all"], a.Latency)
		out.Codes[a.Code]++
	}
	for kind, ds := range byKind {
		slices.Sort(ds)
		l := Latency{Count: len(ds), P50: benchenv.Percentile(ds, 50), P99: benchenv.Percentile(ds, 99), Max: ds[len(ds)-1]}
		for _, d := range ds {
			if d > time.Second {
				l.OverOneSecond++
			}
			if d > 50*time.Millisecond {
				l.OverFiftyMilli++
			}
		}
		out.ByKind[kind] = l
	}
	return out
}

// schedule hands out the moments callbacks are due: evenly spaced at rate
// a second from the start, or "now" when rate is zero (as fast as the
// clients go). Spacing the whole run from one start, rather than pacing
// each client, keeps the offered load fixed whatever the server does.
type schedule struct {
	mu    sync.Mutex
	start time.Time
	rate  float64
	n     int
}

func newSchedule(rate float64) *schedule { return &schedule{start: time.Now(), rate: rate} }

// next returns when the next callback is due, after waiting for it.
func (s *schedule) next(ctx context.Context) (time.Time, error) {
	if s.rate <= 0 {
		return time.Now(), ctx.Err()
	}
	s.mu.Lock()
	due := s.start.Add(time.Duration(float64(s.n) / s.rate * float64(time.Second)))
	s.n++
	s.mu.Unlock()
	if wait := time.Until(due); wait > 0 {
		select {
		case <-ctx.Done():
			return due, ctx.Err()
		case <-time.After(wait):
		}
	}
	return due, nil
}

// validate checks the common knobs of a run.
func validate(instances, concurrency int, rate float64) error {
	var problems []string
	if instances < 1 {
		problems = append(problems, "the number of instances must be at least 1")
	}
	if concurrency < 1 {
		problems = append(problems, "the concurrency must be at least 1")
	}
	if rate < 0 {
		problems = append(problems, "the rate must not be negative (0: as fast as the clients go)")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
