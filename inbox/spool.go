package inbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// Spool is a directory on local disk that holds verified callbacks while
// Postgres is unreachable. Only callbacks the marketplace may send just once
// go there (koogallery.Delivery.MustNotFail): the others are answered 000005
// and sent again. Each file is written to a temporary name, synced, and
// renamed, so a callback answered 000000 is on disk whatever happens next.
// DrainSpool moves them into the inbox once Postgres is back.
type Spool struct {
	Dir string

	// drain serialises DrainSpool, so that each file is recorded once and
	// a request that drains before recording its own callback waits for
	// a drain under way to finish.
	drain sync.Mutex
}

// spooled is one spooled callback.
type spooled struct {
	ReceivedAt time.Time `json:"receivedAt"`
	// SentAt is the marketplace's signed timestamp; the expiry changes of
	// callbacks spooled on different replicas are ordered by it.
	SentAt time.Time `json:"sentAt,omitzero"`
	Body   string    `json:"body"`
}

// nonceWindow is how long a nonce claimed in the spool is remembered: the
// request signature's window and a margin.
const nonceWindow = 3 * time.Minute

// Put stores a verified callback durably, with when it was received and
// when the marketplace sent it (zero if unknown).
func (s *Spool) Put(body []byte, receivedAt, sentAt time.Time) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("spool: create %s: %w", s.Dir, err)
	}
	raw, err := json.Marshal(spooled{ReceivedAt: receivedAt.UTC(), SentAt: sentAt.UTC(), Body: string(body)})
	if err != nil {
		return fmt.Errorf("spool: encode: %w", err)
	}
	name := fmt.Sprintf("%020d-%s.json", receivedAt.UnixNano(), randomSuffix())
	return writeDurably(s.Dir, name, raw)
}

// ClaimNonce remembers a request nonce while the database's nonce memory is
// unreachable; false means it was already used.
func (s *Spool) ClaimNonce(nonce string) (bool, error) {
	dir := filepath.Join(s.Dir, "nonces")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("spool: create %s: %w", dir, err)
	}
	sum := sha256.Sum256([]byte(nonce))
	f, err := os.OpenFile(filepath.Join(dir, hex.EncodeToString(sum[:])), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("spool: claim nonce: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("spool: claim nonce: %w", err)
	}
	return true, nil
}

// Backlog counts the spooled callbacks.
func (s *Spool) Backlog() (int, error) {
	names, err := s.names()
	return len(names), err
}

func (s *Spool) names() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool: read %s: %w", s.Dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // names start with the receive time
	return names, nil
}

// forgetOldNonces removes nonce claims older than the signature window.
func (s *Spool) forgetOldNonces(now time.Time) {
	dir := filepath.Join(s.Dir, "nonces")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > nonceWindow {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// DrainSpool records spooled callbacks in the inbox, oldest first, and
// delivers them. It stops at the first database failure (Postgres is still
// away) and returns how many it moved. A spooled callback for an instance
// that turns out not to exist is dropped with a warning: it was verified, but
// nothing can apply it.
func (ib *Inbox) DrainSpool(ctx context.Context, s *Spool) (int, error) {
	s.drain.Lock()
	defer s.drain.Unlock()
	s.forgetOldNonces(time.Now())
	names, err := s.names()
	if err != nil || len(names) == 0 {
		return 0, err
	}
	moved := 0
	for _, name := range names {
		path := filepath.Join(s.Dir, name)
		raw, err := os.ReadFile(path)
		if err != nil {
			return moved, fmt.Errorf("spool: read %s: %w", name, err)
		}
		var sp spooled
		var req koogallery.Request
		perr := json.Unmarshal(raw, &sp)
		if perr == nil {
			req, perr = koogallery.ParseRequest([]byte(sp.Body))
		}
		if perr != nil {
			// Never written by Put; keep it aside for a person to read.
			ib.logger().Error("Unreadable spool file moved aside", "file", name, "error", perr)
			_ = os.Rename(path, path+".bad")
			continue
		}
		rec, err := ib.Record(ctx, req, []byte(sp.Body), sp.SentAt)
		switch {
		case errors.Is(err, store.ErrUnknownInstance):
			ib.logger().Warn("Spooled callback names an unknown instance; dropped", "file", name, "activity", req.Activity())
		case err != nil:
			return moved, err
		default:
			dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
			if err := ib.DeliverNow(dctx, rec); err != nil {
				ib.logger().Info("Spooled callback recorded; delivery left to the relay", "seq", rec.Callback.Seq, "error", err)
			}
			cancel()
			ib.logger().Info("Spooled callback recorded", "activity", req.Activity(), "seq", rec.Callback.Seq,
				"received_at", sp.ReceivedAt)
		}
		if err := os.Remove(path); err != nil {
			return moved, fmt.Errorf("spool: remove %s: %w", name, err)
		}
		moved++
	}
	return moved, nil
}

// RunSpoolDrain drains the spool until ctx ends.
func (ib *Inbox) RunSpoolDrain(ctx context.Context, s *Spool, interval time.Duration) {
	for {
		if n, err := ib.DrainSpool(ctx, s); err != nil && ctx.Err() == nil {
			ib.logger().Warn("Spool not drained yet", "error", err)
		} else if n > 0 {
			ib.logger().Info("Spool drained", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// writeDurably writes data to dir/name so that it is either wholly there
// or not at all, and survives a crash once the call returns.
func writeDurably(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("spool: create: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("spool: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("spool: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("spool: rename: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync dir: %w", err)
	}
	return nil
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
