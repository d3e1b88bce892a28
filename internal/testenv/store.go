package testenv

import (
	"bytes"
	"sync"
	"testing"

	"github.com/fulfillment-server/fulfillment/store"
)

// NewStore returns the store of a fresh, migrated database of this test,
// closed when the test ends.
func NewStore(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), NewDatabase(t))
	if err != nil {
		t.Fatalf("testenv: open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("testenv: migrate: %v", err)
	}
	return db
}

// SyncBuffer collects output written from several goroutines (a logger
// shared by handlers, a child process's stdout and stderr).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
