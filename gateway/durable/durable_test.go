package durable

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/homebox/gateway/internal/testkit"
)

// crashEnv makes the test binary a child that writes to a store and is then
// killed with SIGKILL, without any flush or close.
const crashEnv = "DURABLE_TEST_CRASH_STORE"

// crashGroupEnv, set in the child as well, makes it write from many
// goroutines at once (group append) instead of one.
const crashGroupEnv = "DURABLE_TEST_CRASH_GROUP"

const crashKeys = 5000

// Group crash child: crashWriters goroutines, crashKeys/crashWriters keys each.
const crashWriters = 8

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestMain turns the test binary into the crash child when crashEnv is set.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		if os.Getenv(crashGroupEnv) != "" {
			crashGroupChild(path)
		}
		crashChild(path)
	}
	os.Exit(m.Run())
}

// crashChild writes to a store and kills itself with SIGKILL. Its intervals
// are long, so nothing reaches bbolt or the disk on its own before the kill:
// only the log in the kernel can bring the changes back.
func crashChild(path string) {
	st, err := openStore(path, defaultBucket, &bbolt.Options{Timeout: time.Second}, quiet(), time.Hour, time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := range crashKeys {
		st.set(fmt.Sprintf("k%05d", i), []byte(fmt.Sprintf("v%d", i)), false)
	}
	for i := 0; i < crashKeys; i += 2 {
		st.set(fmt.Sprintf("k%05d", i), nil, true)
	}
	st.set("k00001", []byte("last"), false)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the kill is on its way
}

// crashGroupChild is crashChild with crashWriters goroutines writing at
// once, so that their records share write(2)s. Each writer also lets a
// deleteTrackedSoon be followed by a put of the same key, which must win,
// and ends with a deleteTrackedSoon followed by a set of another key, which
// must carry it.
func crashGroupChild(path string) {
	st, err := openStore(path, defaultBucket, &bbolt.Options{Timeout: time.Second}, quiet(), time.Hour, time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			for i := w; i < crashKeys; i += crashWriters {
				st.set(fmt.Sprintf("k%05d", i), []byte(fmt.Sprintf("v%d", i)), false)
			}
			for i := w; i < crashKeys; i += crashWriters {
				if i%2 == 0 {
					st.set(fmt.Sprintf("k%05d", i), nil, true)
				}
			}
			again := fmt.Sprintf("again%d", w)
			putTracked(st, inflightRef{again, 1}, again, []byte("first"))
			st.deleteTrackedSoon(inflightRef{again, 1})
			putTracked(st, inflightRef{again, 1}, again, []byte("second"))
			gone := fmt.Sprintf("gone%d", w)
			putTracked(st, inflightRef{gone, 1}, gone, []byte("x"))
			st.deleteTrackedSoon(inflightRef{gone, 1})
			st.set(fmt.Sprintf("carrier%d", w), []byte("c"), false)
		})
	}
	wg.Wait()
	st.set("k00001", []byte("last"), false)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the kill is on its way
}

// crash runs crashChild on a store at path and waits for its SIGKILL.
func crash(t *testing.T, path string, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), crashEnv+"="+path), env...)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
}

func contents(t *testing.T, st *store) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := st.scan("", func(k string, v []byte) error { got[k] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func open(t *testing.T, path string) *store {
	t.Helper()
	st, err := openStore(path, defaultBucket, &bbolt.Options{Timeout: time.Second}, quiet(), SyncEvery, FlushEvery)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.close() })
	return st
}

// wantAfterCrash is what the child wrote: odd keys, k00001 = "last".
func wantAfterCrash() map[string]string {
	want := map[string]string{}
	for i := 1; i < crashKeys; i += 2 {
		want[fmt.Sprintf("k%05d", i)] = fmt.Sprintf("v%d", i)
	}
	want["k00001"] = "last"
	return want
}

func TestKill9LosesNothingWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	crash(t, path)
	if logs, _ := filepath.Glob(path + ".wal.*"); len(logs) == 0 {
		t.Fatal("the killed child left no log: the test proves nothing")
	}
	st := open(t, path)
	got, want := contents(t, st), wantAfterCrash()
	if len(got) != len(want) {
		t.Fatalf("%d keys after the crash, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %q after the crash, want %q", k, got[k], v)
		}
	}
	if logs, _ := filepath.Glob(path + ".wal.*"); len(logs) != 1 {
		t.Fatalf("logs after replay: %v, want only the new one", logs)
	}
}

func TestTornTailKeepsWhatCameBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	crash(t, path)
	logs, _ := filepath.Glob(path + ".wal.*")
	if len(logs) != 1 {
		t.Fatalf("logs: %v", logs)
	}
	data, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	// A power cut can leave half a record at the end.
	if err := os.WriteFile(logs[0], data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	got, want := contents(t, open(t, path)), wantAfterCrash()
	// The last record (k00001 = "last") is torn: k00001 keeps its earlier value.
	want["k00001"] = "v1"
	if len(got) != len(want) || got["k00001"] != "v1" || got["k04999"] != "v4999" {
		t.Fatalf("after a torn tail: %d keys, k00001=%q; want %d keys, k00001=v1", len(got), got["k00001"], len(want))
	}
}

func TestDamagedRecordStopsReplayThere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	crash(t, path)
	logs, _ := filepath.Glob(path + ".wal.*")
	data, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Garble a byte inside the 11th record's body: the first 10 puts
	// (k00000..k00009) stay, nothing after is applied.
	off := 0
	for range 10 {
		off += recordHeader + int(uint32(data[off])|uint32(data[off+1])<<8|uint32(data[off+2])<<16|uint32(data[off+3])<<24)
	}
	data[off+recordHeader+2] ^= 0xff
	if err := os.WriteFile(logs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	got := contents(t, open(t, path))
	if len(got) != 10 || got["k00000"] != "v0" || got["k00009"] != "v9" {
		t.Fatalf("after a damaged record: %v", got)
	}
}

func TestCloseMovesEverythingIntoBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	st, err := openStore(path, defaultBucket, &bbolt.Options{Timeout: time.Second}, quiet(), time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st.set("a", []byte("1"), false)
	st.set("b", []byte("2"), false)
	st.set("a", nil, true)
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	if logs, _ := filepath.Glob(path + ".wal.*"); len(logs) != 0 {
		t.Fatalf("logs left after a clean close: %v", logs)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(defaultBucket))
		if b.Get([]byte("a")) != nil || string(b.Get([]byte("b"))) != "2" {
			t.Fatalf("bolt holds a=%q b=%q, want a deleted and b=2", b.Get([]byte("a")), b.Get([]byte("b")))
		}
		return nil
	})
}

func TestFlushWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	// Short intervals and a small pending limit: many flushes and log
	// rotations happen while four writers go on.
	st, err := openStore(path, defaultBucket, &bbolt.Options{Timeout: time.Second}, quiet(), time.Millisecond, 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	st.maxPending = 50
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				st.set(fmt.Sprintf("w%d-%04d", w, i), []byte{byte(i)}, false)
				if i%3 == 0 {
					st.set(fmt.Sprintf("w%d-%04d", w, i), nil, true)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	st2 := open(t, path)
	got := contents(t, st2)
	want := 0
	for i := range 2000 {
		if i%3 != 0 {
			want++
		}
	}
	if len(got) != 4*want {
		t.Fatalf("%d keys, want %d", len(got), 4*want)
	}
}

func TestKill9LosesNothingWrittenByConcurrentSets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	crash(t, path, crashGroupEnv+"=1")
	got, want := contents(t, open(t, path)), wantAfterCrash()
	for w := range crashWriters {
		want[fmt.Sprintf("again%d", w)] = "second"
		want[fmt.Sprintf("carrier%d", w)] = "c"
	}
	if len(got) != len(want) {
		t.Fatalf("%d keys after the crash, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %q after the crash, want %q", k, got[k], v)
		}
	}
}

func TestUnwaitedDeleteReachesTheLogAtTheNextSyncTick(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	st, err := openStore(path, defaultBucket, &bbolt.Options{Timeout: time.Second}, quiet(), time.Millisecond, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	putTracked(st, inflightRef{"a", 1}, "a", []byte("1"))
	st.deleteTrackedSoon(inflightRef{"a", 1})
	// Nothing else is written: only the sync tick can carry the delete.
	var changes map[string]change
	testkit.WaitForReport(t, 10*time.Second, "the delete in the log", func() bool {
		changes = map[string]change{}
		if _, _, err := readLog(st.logName(st.gen), changes); err != nil {
			t.Fatal(err)
		}
		return changes["a"].del
	}, func() string { return fmt.Sprintf("the log holds %v", changes) })
}

func TestPutAndDeleteBetweenFlushesLeaveBoltAsItWas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	st, err := openStore(path, defaultBucket, &bbolt.Options{Timeout: time.Second}, quiet(), time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	oldRef, newRef := inflightRef{"old", 1}, inflightRef{"new", 1}
	putTracked(st, oldRef, "old", []byte("1"))
	st.flush() // "old" is in bbolt now
	// A new key put and deleted before the next flush: nothing for bbolt.
	putTracked(st, newRef, "new", []byte("x"))
	st.deleteTrackedSoon(newRef)
	// A key bbolt holds, deleted, then put again (a new message with the
	// same id) and deleted again: the first delete must still reach bbolt.
	st.deleteTrackedSoon(oldRef)
	putTracked(st, oldRef, "old", []byte("2"))
	st.deleteTrackedSoon(oldRef)
	st.mu.Lock()
	_, newPending := st.pending["new"]
	old := st.pending["old"]
	st.mu.Unlock()
	if newPending || !old.del {
		t.Fatalf("pending: new kept %v, old = %+v; want new gone and old a delete", newPending, old)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, open(t, path)); len(got) != 0 {
		t.Fatalf("after close: %v, want nothing", got)
	}
}

// putTracked is st.putTracked with the record built as the hook builds it.
func putTracked(st *store, ref inflightRef, key string, val []byte) {
	rec := startPut(key, len(val))
	at := len(rec)
	rec = append(rec, val...)
	sealRecord(rec)
	st.putTracked(ref, key, rec, rec[at:])
}

func TestRecordBuiltOutsideTheLockIsTheSameRecord(t *testing.T) {
	rec := startPut("IFM_c:1", 3)
	rec = append(rec, "abc"...)
	sealRecord(rec)
	if want := appendRecord(nil, opPut, "IFM_c:1", []byte("abc")); string(rec) != string(want) {
		t.Fatalf("startPut/sealRecord gave %x, appendRecord %x", rec, want)
	}
}

func TestLogOfChangesThatCancelOutIsStillRotated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	st, err := openStore(path, defaultBucket, &bbolt.Options{Timeout: time.Second}, quiet(), time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	first := st.logName(st.gen)
	for i := range 100 {
		ref := inflightRef{"c", uint16(i + 1)}
		putTracked(st, ref, fmt.Sprintf("IFM_c:%d", i+1), []byte("m"))
		st.deleteTrackedSoon(ref)
	}
	st.flush() // nothing pending: every put was deleted
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("the log of 200 records that cancel out was kept (%v): it would grow for ever", err)
	}
}
