package inbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/inbox"
	"github.com/fulfillment-server/fulfillment/internal/testenv"
	"github.com/fulfillment-server/fulfillment/store"
)

// spoolFile is a spooled callback on disk: the format DrainSpool reads
// after a restart, so it must not change silently.
type spoolFile struct {
	ReceivedAt time.Time `json:"receivedAt"`
	Body       string    `json:"body"`
}

// dirEntries lists the names in dir, subdirectories marked with a slash.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := []string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			name += "/"
		}
		out = append(out, name)
	}
	return out
}

// spooledFiles lists the spooled callbacks (*.json), in name order.
func spooledFiles(t *testing.T, dir string) []string {
	t.Helper()
	out := []string{}
	for _, name := range dirEntries(t, dir) {
		if strings.HasSuffix(name, ".json") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func readSpoolFile(t *testing.T, path string) spoolFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var f spoolFile
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&f), "%s", raw)
	return f
}

func backlog(t *testing.T, s *inbox.Spool) int {
	t.Helper()
	n, err := s.Backlog()
	require.NoError(t, err)
	return n
}

func TestSpoolPutNamesFilesByReceiveTime(t *testing.T) {
	// A directory that does not exist yet: Put creates it.
	s := &inbox.Spool{Dir: filepath.Join(t.TempDir(), "spool", "callbacks")}
	t0 := time.Date(2030, 3, 4, 5, 6, 7, 8, time.FixedZone("CST", 8*3600))
	// Put out of time order, with times whose digit counts differ.
	puts := []struct {
		at   time.Time
		body string
	}{
		{t0.Add(time.Hour), refreshBody("i1", "R3")},
		{t0, refreshBody("i1", "R1")},
		{t0.Add(time.Nanosecond), refreshBody("i1", "R2")},
		{time.Unix(9, 0), refreshBody("i1", "R0")},
	}
	for _, p := range puts {
		require.NoError(t, s.Put([]byte(p.body), p.at, time.Time{}))
	}

	names := spooledFiles(t, s.Dir)

	require.Len(t, names, len(puts))
	var bodies []string
	for _, name := range names {
		require.Regexp(t, regexp.MustCompile(`^[0-9]{20}-[0-9a-f]+\.json$`), name)
		f := readSpoolFile(t, filepath.Join(s.Dir, name))
		require.True(t, strings.HasPrefix(name, fmt.Sprintf("%020d-", f.ReceivedAt.UnixNano())),
			"%s is named by its receive time %s", name, f.ReceivedAt)
		require.Equal(t, time.UTC, f.ReceivedAt.Location())
		bodies = append(bodies, f.Body)
	}
	require.Equal(t, []string{puts[3].body, puts[1].body, puts[2].body, puts[0].body}, bodies,
		"names sort in receive order")
	require.Equal(t, len(puts), backlog(t, s))

	info, err := os.Stat(s.Dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "callbacks are readable by the server only")
}

func TestSpoolPutLeavesNoTemporaryFiles(t *testing.T) {
	s := &inbox.Spool{Dir: t.TempDir()}
	at := time.Now()
	for i := range 20 {
		// The same receive time: the random suffix keeps them apart.
		require.NoError(t, s.Put([]byte(refreshBody("i1", fmt.Sprintf("R%d", i))), at, time.Time{}))
	}

	entries := dirEntries(t, s.Dir)

	require.Len(t, entries, 20)
	for _, name := range entries {
		require.True(t, strings.HasSuffix(name, ".json"), "unexpected file %s", name)
		require.False(t, strings.HasPrefix(name, "."), "temporary file %s left behind", name)
	}
	require.Equal(t, 20, backlog(t, s))
}

func TestSpoolPutFailsWhenTheDirectoryCannotBeCreated(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, []byte("x"), 0o600))
	s := &inbox.Spool{Dir: filepath.Join(blocker, "spool")}

	require.Error(t, s.Put([]byte(refreshBody("i1", "R1")), time.Now(), time.Time{}))
	_, err := s.ClaimNonce("N1")
	require.Error(t, err)
}

func TestSpoolClaimNonce(t *testing.T) {
	s := &inbox.Spool{Dir: t.TempDir()}

	fresh, err := s.ClaimNonce("4D2A6F0E8C1B4A3F9E7D5C3B1A0F8E6D")
	require.NoError(t, err)
	require.True(t, fresh)

	fresh, err = s.ClaimNonce("4D2A6F0E8C1B4A3F9E7D5C3B1A0F8E6D")
	require.NoError(t, err)
	require.False(t, fresh, "a nonce is used once")

	fresh, err = s.ClaimNonce("../../etc/passwd")
	require.NoError(t, err)
	require.True(t, fresh, "another nonce is fresh, and names no path")

	require.Equal(t, []string{"nonces/"}, dirEntries(t, s.Dir), "claims live in their own directory")
	claims := dirEntries(t, filepath.Join(s.Dir, "nonces"))
	require.Len(t, claims, 2)
	for _, name := range claims {
		require.Regexp(t, `^[0-9a-f]{64}$`, name, "claims are named by a digest of the nonce")
	}
	require.Zero(t, backlog(t, s), "nonce claims are not callbacks")
}

func TestSpoolBacklog(t *testing.T) {
	s := &inbox.Spool{Dir: filepath.Join(t.TempDir(), "not-yet")}
	require.Zero(t, backlog(t, s), "a spool never written to is empty")

	require.NoError(t, s.Put([]byte(refreshBody("i1", "R1")), time.Now(), time.Time{}))
	require.NoError(t, s.Put([]byte(refreshBody("i1", "R2")), time.Now(), time.Time{}))
	_, err := s.ClaimNonce("N1")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.Dir, "00000000000000000001-x.json.bad"), []byte("?"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(s.Dir, ".tmp-123"), []byte("{"), 0o600))

	require.Equal(t, 2, backlog(t, s), "only the spooled callbacks count")

	t.Run("unreadable spool", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		_, err := (&inbox.Spool{Dir: file}).Backlog()
		require.Error(t, err)
	})
}

func TestDrainSpoolRecordsInReceiveOrder(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	require.NoError(t, ib.DeliverNow(ctx, record(t, ib, newInstanceBody("O1", "inst-1"))))
	s := &inbox.Spool{Dir: t.TempDir()}
	t0 := time.Now().Add(-time.Minute)
	// Spooled out of order; received in the order refresh, FREEZE, UNFREEZE, release.
	require.NoError(t, s.Put([]byte(statusBody("inst-1", "UNFREEZE")), t0.Add(2*time.Second), time.Time{}))
	require.NoError(t, s.Put([]byte(refreshBody("inst-1", "R1")), t0, time.Time{}))
	require.NoError(t, s.Put([]byte(releaseBody("inst-1")), t0.Add(3*time.Second), time.Time{}))
	require.NoError(t, s.Put([]byte(statusBody("inst-1", "FREEZE")), t0.Add(time.Second), time.Time{}))

	n, err := ib.DrainSpool(ctx, s)

	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Zero(t, backlog(t, s))
	require.Empty(t, dirEntries(t, s.Dir))
	cbs, err := ib.Store.CallbacksOf(ctx, "inst-1")
	require.NoError(t, err)
	var keys []string
	for _, cb := range cbs {
		keys = append(keys, cb.DedupKey)
	}
	want := []string{
		"newInstance:O1:O1-1",
		"refreshInstance:inst-1:R1:R1-1",
		"updateInstanceStatus:inst-1:FREEZE:1",
		"updateInstanceStatus:inst-1:UNFREEZE:2",
		"releaseInstance:inst-1",
	}
	require.Equal(t, want, keys)
	require.True(t, slices.IsSorted(seqsOf(cbs)), "sequence numbers follow the receive order")
	require.Equal(t, want, fake.keys(), "each was delivered in order")
	require.Equal(t, refreshBody("inst-1", "R1"), cbs[1].Body, "the body is kept as received")

	n, err = ib.DrainSpool(ctx, s)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left")
}

func seqsOf(cbs []store.Callback) []int64 {
	out := []int64{}
	for _, cb := range cbs {
		out = append(out, cb.Seq)
	}
	return out
}

func TestDrainSpoolSetsAsideCorruptFiles(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	require.NoError(t, ib.DeliverNow(ctx, record(t, ib, newInstanceBody("O1", "inst-1"))))
	s := &inbox.Spool{Dir: t.TempDir()}
	t0 := time.Now().Add(-time.Minute)
	require.NoError(t, s.Put([]byte(refreshBody("inst-1", "R1")), t0, time.Time{}))
	require.NoError(t, s.Put([]byte(statusBody("inst-1", "FREEZE")), t0.Add(2*time.Second), time.Time{}))
	// Between them: a file that is not JSON, and one whose body is no request.
	notJSON := fmt.Sprintf("%020d-bad1.json", t0.Add(time.Second).UnixNano())
	notRequest := fmt.Sprintf("%020d-bad2.json", t0.Add(time.Second).UnixNano()+1)
	require.NoError(t, os.WriteFile(filepath.Join(s.Dir, notJSON), []byte("{not json"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(s.Dir, notRequest),
		[]byte(`{"receivedAt":"2030-01-01T00:00:00Z","body":"{\"activity\":\"nothing\"}"}`), 0o600))
	require.Equal(t, 4, backlog(t, s))

	n, err := ib.DrainSpool(ctx, s)

	require.NoError(t, err, "a corrupt file does not stop the others")
	require.Equal(t, 2, n)
	require.ElementsMatch(t, []string{notJSON + ".bad", notRequest + ".bad"}, dirEntries(t, s.Dir))
	require.Zero(t, backlog(t, s), "set aside files are not retried")
	raw, err := os.ReadFile(filepath.Join(s.Dir, notJSON+".bad"))
	require.NoError(t, err)
	require.Equal(t, "{not json", string(raw), "kept as it was for a person to read")
	require.Equal(t, []string{"newInstance:O1:O1-1", "refreshInstance:inst-1:R1:R1-1", "updateInstanceStatus:inst-1:FREEZE:1"},
		fake.keys())
}

func TestDrainSpoolDropsCallbacksForUnknownInstances(t *testing.T) {
	ctx := context.Background()
	ib, fake := newInbox(t)
	require.NoError(t, ib.DeliverNow(ctx, record(t, ib, newInstanceBody("O1", "inst-1"))))
	s := &inbox.Spool{Dir: t.TempDir()}
	t0 := time.Now().Add(-time.Minute)
	require.NoError(t, s.Put([]byte(refreshBody("inst-ghost", "R1")), t0, time.Time{}))
	require.NoError(t, s.Put([]byte(refreshBody("inst-1", "R2")), t0.Add(time.Second), time.Time{}))

	n, err := ib.DrainSpool(ctx, s)

	require.NoError(t, err)
	require.Equal(t, 2, n, "the dropped callback left the spool too")
	require.Empty(t, dirEntries(t, s.Dir))
	_, err = ib.Store.InstanceKey(ctx, "inst-ghost")
	require.ErrorIs(t, err, store.ErrUnknownInstance, "nothing was allocated")
	ghost, err := ib.Store.CallbacksOf(ctx, "inst-ghost")
	require.NoError(t, err)
	require.Empty(t, ghost)
	undelivered, err := ib.Store.UndeliveredCount(ctx)
	require.NoError(t, err)
	require.Zero(t, undelivered)
	require.Equal(t, []string{"newInstance:O1:O1-1", "refreshInstance:inst-1:R2:R2-1"}, fake.keys())
}

func TestDrainSpoolKeepsFilesWhileTheDatabaseIsDown(t *testing.T) {
	ctx := context.Background()
	db := testenv.NewStore(t)
	fake := &fakeTemporal{}
	ib := &inbox.Inbox{Store: db.Callbacks, Temporal: fake, TaskQueue: taskQueue}
	require.NoError(t, ib.DeliverNow(ctx, record(t, ib, newInstanceBody("O1", "inst-1"))))
	s := &inbox.Spool{Dir: t.TempDir()}
	require.NoError(t, s.Put([]byte(refreshBody("inst-1", "R1")), time.Now(), time.Time{}))
	require.NoError(t, s.Put([]byte(statusBody("inst-1", "FREEZE")), time.Now(), time.Time{}))
	before := spooledFiles(t, s.Dir)
	require.NoError(t, db.Close())

	n, err := ib.DrainSpool(ctx, s)

	require.Error(t, err)
	require.Zero(t, n)
	require.Equal(t, before, spooledFiles(t, s.Dir), "the files wait for the database")
	require.Equal(t, 2, backlog(t, s))
	require.Len(t, fake.Calls(), 1, "only the newInstance delivered before")
}

func TestDrainSpoolForgetsOldNonceClaims(t *testing.T) {
	ib, _ := newInbox(t)
	s := &inbox.Spool{Dir: t.TempDir()}
	for _, nonce := range []string{"OLD-1", "OLD-2"} {
		fresh, err := s.ClaimNonce(nonce)
		require.NoError(t, err)
		require.True(t, fresh)
	}
	past := time.Now().Add(-10 * time.Minute)
	claims := filepath.Join(s.Dir, "nonces")
	for _, name := range dirEntries(t, claims) {
		require.NoError(t, os.Chtimes(filepath.Join(claims, name), past, past))
	}
	fresh, err := s.ClaimNonce("RECENT")
	require.NoError(t, err)
	require.True(t, fresh)

	n, err := ib.DrainSpool(context.Background(), s)

	require.NoError(t, err)
	require.Zero(t, n)
	require.Len(t, dirEntries(t, claims), 1, "only the recent claim is kept")
	fresh, err = s.ClaimNonce("RECENT")
	require.NoError(t, err)
	require.False(t, fresh, "a claim inside the window is still remembered")
	fresh, err = s.ClaimNonce("OLD-1")
	require.NoError(t, err)
	require.True(t, fresh, "a claim past the window is forgotten (its signature has expired anyway)")
}
