package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// Record kinds in the log.
const (
	opPut byte = 1
	opDel byte = 2
	// opEnd closes a log file on rotation: a file without it, followed by a
	// later file, lost its tail in a power cut, and the later files are not
	// replayed (what is kept is always a prefix of what was written).
	opEnd byte = 3
)

// recordHeader is the length of the body (4 bytes) and its CRC-32C (4 bytes).
const recordHeader = 8

// maxRecord bounds a record's body when reading: a length above it is a torn
// or garbled header, not a record to allocate for.
const maxRecord = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// change is one pending change of a key: a value, or a delete.
type change struct {
	val []byte
	del bool
	// notInBolt: bbolt does not hold the key, so a delete of this put
	// needs no bbolt work (a QoS 1 message queued and acknowledged between
	// two flushes, most of them).
	notInBolt bool
}

// store is a bbolt file with a write-ahead log in front of it.
//
// Every change is in the log, in the kernel, before the set that made it
// returns, so it survives the broker being killed. Concurrent sets share
// write(2)s (group append): records are queued under the lock, and the first
// goroutine that finds no write in progress writes everything queued, its
// own record and those of the others, while they wait for it.
// deleteTrackedSoon queues a delete without waiting: it reaches the kernel
// with the next write, at the latest at the next sync tick. The log is
// fdatasynced every syncEvery (the most a power cut can lose), and every
// flushEvery the changes gathered since are written into bbolt in one
// transaction (bbolt fsyncs it; its file is never left half written), after
// which the older log file is deleted. The logs left by a crash are
// replayed into bbolt when the store opens.
type store struct {
	db     *bbolt.DB
	bucket []byte
	path   string // bbolt file; logs are path + ".wal.<gen>"
	log    *slog.Logger

	syncEvery, flushEvery time.Duration
	maxPending            int

	mu      sync.Mutex
	wal     *os.File
	gen     uint64
	pending map[string]change
	// tracked are the keys of the hook's queued messages, by client and
	// packet id: kept under mu, so that a message costs one lock and the
	// tracking sees changes in the log's order.
	tracked map[inflightRef]string
	dirty   bool  // written since the last fdatasync
	werr    error // first write error, logged once

	// Group append, all under mu: queue holds the records not yet written,
	// in order; writing is set while one goroutine (the writer) writes
	// batches without the lock, until the queue is empty (spare is the
	// buffer it will give back); batch, when not nil, is closed once the
	// records now queued are written: waiters sleep on it without the lock,
	// so a write wakes only its own records' goroutines and none of them
	// has to take the lock again. idle is signalled when a writer stops.
	queue, spare []byte
	writing      bool
	batch        chan struct{}
	idle         *sync.Cond
	// records and writes count records queued and write(2)s of batches,
	// for the benchmark's records per write; inLog counts the records of
	// the current log file, which flush rotates even when they cancel out
	// (nothing pending), so that the file does not grow for ever.
	records, writes, inLog uint64

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// openStore opens bbolt at path, replays logs a crash left, and starts the
// log writer.
func openStore(path, bucket string, opts *bbolt.Options, log *slog.Logger, syncEvery, flushEvery time.Duration) (*store, error) {
	db, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, err
	}
	s := &store{
		db: db, bucket: []byte(bucket), path: path, log: log,
		syncEvery: syncEvery, flushEvery: flushEvery, maxPending: 20000,
		pending: map[string]change{}, tracked: map[inflightRef]string{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(s.bucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.recover(); err != nil {
		_ = db.Close()
		return nil, err
	}
	f, err := s.createLog(s.gen)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.wal = f
	go s.run()
	return s, nil
}

func (s *store) logName(gen uint64) string {
	return s.path + ".wal." + strconv.FormatUint(gen, 10)
}

// logGens lists the generations of the log files beside the store, oldest first.
func (s *store) logGens() ([]uint64, error) {
	names, err := filepath.Glob(s.path + ".wal.*")
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, n := range names {
		g, err := strconv.ParseUint(strings.TrimPrefix(n, s.path+".wal."), 10, 64)
		if err != nil {
			continue // not ours
		}
		gens = append(gens, g)
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] < gens[j] })
	return gens, nil
}

// recover replays the logs into bbolt in one transaction and deletes them.
func (s *store) recover() error {
	gens, err := s.logGens()
	if err != nil {
		return err
	}
	if len(gens) == 0 {
		return nil
	}
	s.gen = gens[len(gens)-1] + 1
	changes := map[string]change{}
	n := 0
	for i, g := range gens {
		count, ended, err := readLog(s.logName(g), changes)
		n += count
		if err != nil {
			s.log.Warn("store log: stopped at a damaged record (the tail of a power cut); later records are lost",
				"file", s.logName(g), "records_kept", count, "error", err)
		}
		if err != nil || (!ended && i < len(gens)-1) {
			break // keep a prefix: nothing after a gap
		}
	}
	if err := s.commit(changes); err != nil {
		return fmt.Errorf("store log replay: %w", err)
	}
	for _, g := range gens {
		if err := os.Remove(s.logName(g)); err != nil {
			return fmt.Errorf("store log: %w", err)
		}
	}
	s.log.Info("store log replayed", "files", len(gens), "records", n, "keys", len(changes))
	return syncDir(filepath.Dir(s.path))
}

// readLog applies the records of one file to changes, in order. It reports
// how many it read, whether the file was closed by an end record, and an
// error for a damaged record (a torn tail ends the file without error).
func readLog(name string, changes map[string]change) (int, bool, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return 0, false, err
	}
	n := 0
	for len(data) > 0 {
		if len(data) < recordHeader {
			return n, false, nil // torn header
		}
		size := binary.LittleEndian.Uint32(data)
		sum := binary.LittleEndian.Uint32(data[4:])
		if size > maxRecord {
			return n, false, fmt.Errorf("record %d: length %d", n+1, size)
		}
		if len(data) < recordHeader+int(size) {
			return n, false, nil // torn body
		}
		body := data[recordHeader : recordHeader+int(size)]
		data = data[recordHeader+int(size):]
		if crc32.Checksum(body, castagnoli) != sum {
			return n, false, fmt.Errorf("record %d: checksum mismatch", n+1)
		}
		if len(body) == 0 {
			return n, false, fmt.Errorf("record %d: empty", n+1)
		}
		if body[0] == opEnd {
			return n, true, nil
		}
		klen, k := binary.Uvarint(body[1:])
		if k <= 0 || uint64(len(body)-1-k) < klen {
			return n, false, fmt.Errorf("record %d: bad key length", n+1)
		}
		key := string(body[1+k : 1+k+int(klen)])
		switch body[0] {
		case opPut:
			changes[key] = change{val: append([]byte(nil), body[1+k+int(klen):]...)}
		case opDel:
			changes[key] = change{del: true}
		default:
			return n, false, fmt.Errorf("record %d: unknown kind %d", n+1, body[0])
		}
		n++
	}
	return n, false, nil
}

// createLog creates log file gen and makes its name durable.
func (s *store) createLog(gen uint64) (*os.File, error) {
	f, err := os.OpenFile(s.logName(gen), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store log: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store folder sync: %w", err)
	}
	return nil
}

// appendRecord appends one record to b.
func appendRecord(b []byte, op byte, key string, val []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, op)
	if op != opEnd {
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
		b = append(b, val...)
	}
	body := b[start+recordHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// startPut begins, outside the store's lock, a put record of key whose
// value (about size bytes) the caller appends; sealRecord then completes it.
func startPut(key string, size int) []byte {
	b := make([]byte, 0, recordHeader+1+binary.MaxVarintLen64+len(key)+size)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, opPut)
	b = binary.AppendUvarint(b, uint64(len(key)))
	return append(b, key...)
}

// sealRecord writes the length and checksum of a record built by startPut.
func sealRecord(b []byte) {
	body := b[recordHeader:]
	binary.LittleEndian.PutUint32(b, uint32(len(body)))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(body, castagnoli))
}

// set records a change: into the log (in the kernel when set returns) and
// into the pending changes for the next bbolt transaction.
func (s *store) set(key string, val []byte, del bool) {
	s.mu.Lock()
	if !s.enqueue(key, val, del, false, nil) {
		s.mu.Unlock()
		return
	}
	s.awaitLogged()
}

// putTracked is set of a queued message known by ref. Unless ref is
// already tracked (a resend), the store does not hold its key: if it is
// deleted before the next flush, bbolt is not touched for it.
//
// rec is the put's whole log record, built by the caller with startPut and
// sealRecord (outside the lock, which then only copies it); val is the
// value within it.
func (s *store) putTracked(ref inflightRef, key string, rec, val []byte) {
	s.mu.Lock()
	_, known := s.tracked[ref]
	s.tracked[ref] = key
	if !s.enqueue(key, val, false, !known, rec) {
		s.mu.Unlock()
		return
	}
	s.awaitLogged()
}

// deleteTrackedSoon deletes the queued message known by ref, if it is
// stored (the others, mochi's own acks, cost a map lookup), without
// waiting for the log: the delete may be lost if the broker is killed
// within the next SyncEvery. It is written with the next set's write(2) or
// by the next sync tick, whichever comes first, and always before any
// later change, so a later put of the same key is never undone by it. Its
// loss only means a completed message is sent once more after a crash,
// which QoS 1 allows; this saves a write(2) per message.
func (s *store) deleteTrackedSoon(ref inflightRef) {
	s.mu.Lock()
	key, ok := s.tracked[ref]
	if !ok {
		s.mu.Unlock()
		return
	}
	delete(s.tracked, ref)
	s.enqueue(key, nil, true, false, nil)
	full := len(s.pending) >= s.maxPending
	s.mu.Unlock()
	if full {
		s.kickFlush()
	}
}

// awaitLogged returns once the record just queued is in the log; called
// with s.mu held, and returns without it.
func (s *store) awaitLogged() {
	full := len(s.pending) >= s.maxPending
	if s.writing {
		// The writer at work writes this record in its next batch.
		if s.batch == nil {
			s.batch = make(chan struct{})
		}
		done := s.batch
		s.mu.Unlock()
		<-done
	} else {
		s.writeAll()
		s.mu.Unlock()
	}
	if full {
		s.kickFlush()
	}
}

// enqueue queues a change's record (rec, or encoded here when nil) and
// applies the change to the pending changes; called with s.mu held. It
// returns false when the store is closed.
func (s *store) enqueue(key string, val []byte, del, isNew bool, rec []byte) bool {
	if s.wal == nil {
		s.log.Error("store closed; change not saved", "key", key)
		return false
	}
	if rec != nil {
		s.queue = append(s.queue, rec...)
	} else if del {
		s.queue = appendRecord(s.queue, opDel, key, nil)
	} else {
		s.queue = appendRecord(s.queue, opPut, key, val)
	}
	s.records++
	s.inLog++
	prev, had := s.pending[key]
	switch {
	case del && had && prev.notInBolt:
		delete(s.pending, key) // put and delete cancel out for bbolt
	case had:
		s.pending[key] = change{val: val, del: del, notInBolt: prev.notInBolt && !del}
	default:
		s.pending[key] = change{val: val, del: del, notInBolt: isNew && !del}
	}
	return true
}

// writeAll makes the caller the writer: it writes what is queued, one
// write(2) per batch, until nothing is; called with s.mu held and no
// writer at work, released during each write so that others can queue.
func (s *store) writeAll() {
	s.writing = true
	for len(s.queue) > 0 {
		batch, done, f := s.queue, s.batch, s.wal
		s.queue, s.batch = s.spare[:0], nil
		s.mu.Unlock()
		_, err := f.Write(batch)
		s.mu.Lock()
		s.spare, s.dirty = batch, true
		s.writes++
		if err != nil && s.werr == nil {
			s.werr = err
			s.log.Error("store log write failed; changes now reach the store only at the next flush", "error", err)
		}
		if done != nil {
			close(done)
		}
	}
	s.writing = false
	s.idle.Broadcast()
}

// waitIdle returns, with s.mu held, once no writer is at work.
func (s *store) waitIdle() {
	for s.writing {
		s.idle.Wait()
	}
}

func (s *store) kickFlush() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run fdatasyncs the log every syncEvery and moves the pending changes into
// bbolt every flushEvery (sooner when many are pending).
func (s *store) run() {
	defer close(s.done)
	syncT := time.NewTicker(s.syncEvery)
	defer syncT.Stop()
	flushT := time.NewTicker(s.flushEvery)
	defer flushT.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-syncT.C:
			s.syncLog()
		case <-flushT.C:
			s.flush()
		case <-s.kick:
			s.flush()
		}
	}
}

// syncLog writes what deleteTrackedSoon queued and fdatasyncs the current log if
// it was written since the last time. Only run's goroutine swaps the file,
// so it stays open meanwhile.
func (s *store) syncLog() {
	s.mu.Lock()
	if s.wal != nil && !s.writing { // a writer at work writes all anyway
		s.writeAll()
	}
	f, dirty := s.wal, s.dirty
	s.dirty = false
	s.mu.Unlock()
	if dirty && f != nil {
		if err := f.Sync(); err != nil {
			s.log.Error("store log sync failed", "error", err)
		}
	}
}

// flush starts a new log file, writes the changes of the old one into bbolt
// in one transaction, and deletes the old file.
func (s *store) flush() {
	s.mu.Lock()
	empty := len(s.pending) == 0 && s.inLog == 0
	s.mu.Unlock()
	if empty {
		return
	}
	next, err := s.createLog(s.gen + 1)
	if err != nil {
		s.log.Error("store flush: cannot start a new log; retrying later", "error", err)
		return
	}
	s.mu.Lock()
	s.waitIdle()
	// What is queued belongs to the old file's changes: it goes there,
	// with the end record, in one write under the lock (rare).
	old, changes := s.wal, s.pending
	batch := appendRecord(s.queue, opEnd, "", nil)
	_, werr := old.Write(batch)
	s.queue = batch[:0]
	if s.batch != nil {
		close(s.batch)
		s.batch = nil
	}
	// Sized as the last one: growing a map of thousands of keys step by
	// step, under the lock every set takes, stalls the sets.
	s.wal, s.pending, s.dirty = next, make(map[string]change, len(changes)), false
	s.inLog = 0
	s.gen++
	oldGen := s.gen - 1
	s.mu.Unlock()
	if werr != nil {
		s.log.Error("store log end record", "error", werr)
	}
	// The old file's records reach the disk before any record of the new
	// one is relied on, so a power cut keeps a prefix.
	if err := old.Sync(); err != nil {
		s.log.Error("store log sync failed", "error", err)
	}
	_ = old.Close()
	if err := s.commit(changes); err != nil {
		// The old log stays on disk and is replayed at the next start.
		s.log.Error("store flush failed; its log is kept for the next start", "error", err, "file", s.logName(oldGen))
		return
	}
	if err := os.Remove(s.logName(oldGen)); err != nil {
		s.log.Error("store log remove", "error", err)
	}
}

// commit writes changes into bbolt in one fsynced transaction.
func (s *store) commit(changes map[string]change) error {
	if len(changes) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(s.bucket)
		for k, c := range changes {
			var err error
			if c.del {
				err = b.Delete([]byte(k))
			} else {
				err = b.Put([]byte(k), c.val)
			}
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
		return nil
	})
}

// scan calls visit for every stored value whose key starts with prefix.
// It reads bbolt alone: call it only when nothing is pending (at start).
func (s *store) scan(prefix string, visit func(key string, val []byte) error) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(s.bucket).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			if err := visit(string(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// close flushes everything into bbolt, removes the log and closes bbolt.
func (s *store) close() error {
	close(s.stop)
	<-s.done
	s.flush()
	s.mu.Lock()
	s.waitIdle()
	f := s.wal
	s.wal = nil
	pendingLeft := len(s.pending)
	s.mu.Unlock()
	var errs []error
	if f != nil {
		errs = append(errs, f.Close())
		if pendingLeft == 0 {
			errs = append(errs, os.Remove(f.Name()))
		}
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}
