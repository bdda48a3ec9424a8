package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// message is one message crossing a bridge.
type message struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
}

// errQueueFull is returned by push when max_queued_messages is reached.
var errQueueFull = errors.New("queue full (max_queued_messages)")

// queue holds a bridge's out messages at QoS 1 and 2 from the moment they
// are published locally until the remote acknowledged them. It is ordered
// by sequence number; with a db every push and ack is an fsynced bbolt
// transaction, so a kill -9 loses nothing.
type queue struct {
	mu     sync.Mutex
	db     *bbolt.DB // nil: memory only
	max    int
	next   uint64
	items  []qitem
	cursor int           // every item before cursor has been handed to the link
	kick   chan struct{} // signalled when something is pushed or unhanded
}

type qitem struct {
	seq    uint64
	m      message
	handed bool
}

var bucketOut = []byte("out")

// openQueue opens (or creates) the queue; path "" keeps it in memory.
func openQueue(path string, max int) (*queue, error) {
	q := &queue{max: max, next: 1, kick: make(chan struct{}, 1)}
	if path == "" {
		return q, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("bridge queue folder: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("bridge queue %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketOut)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			seq := binary.BigEndian.Uint64(k)
			q.items = append(q.items, qitem{seq: seq, m: m})
			q.next = seq + 1
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bridge queue %s: %w", path, err)
	}
	q.db = db
	return q, nil
}

// push appends m durably.
func (q *queue) push(m message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.max > 0 && len(q.items) >= q.max {
		return errQueueFull
	}
	seq := q.next
	if q.db != nil {
		err := q.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketOut).Put(seqKey(seq), encodeMessage(m))
		})
		if err != nil {
			return fmt.Errorf("bridge queue: %w", err)
		}
	}
	q.next++
	q.items = append(q.items, qitem{seq: seq, m: m})
	q.signal()
	return nil
}

func (q *queue) signal() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// take returns the oldest message not yet handed to the link and marks it
// handed.
func (q *queue) take() (uint64, message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for ; q.cursor < len(q.items); q.cursor++ {
		if !q.items[q.cursor].handed {
			q.items[q.cursor].handed = true
			it := q.items[q.cursor]
			q.cursor++
			return it.seq, it.m, true
		}
	}
	return 0, message{}, false
}

func (q *queue) find(seq uint64) int {
	i := sort.Search(len(q.items), func(i int) bool { return q.items[i].seq >= seq })
	if i < len(q.items) && q.items[i].seq == seq {
		return i
	}
	return -1
}

// ack removes a message the remote fully acknowledged (or that can never
// be delivered).
func (q *queue) ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := q.find(seq)
	if i < 0 {
		return nil
	}
	if q.db != nil {
		err := q.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketOut).Delete(seqKey(seq)) })
		if err != nil {
			return fmt.Errorf("bridge queue: %w", err)
		}
	}
	if i == 0 {
		q.items[0] = qitem{}
		q.items = q.items[1:]
	} else {
		q.items = append(q.items[:i], q.items[i+1:]...)
	}
	if q.cursor > i {
		q.cursor--
	}
	return nil
}

// unhand puts a message back to be sent again (the link lost it).
func (q *queue) unhand(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if i := q.find(seq); i >= 0 {
		q.items[i].handed = false
		q.cursor = min(q.cursor, i)
		q.signal()
	}
}

// queuedRetained reports whether a retained message for topic waits in
// the queue (it will reach the remote in order, so the retained replay
// at connect time skips it).
func (q *queue) queuedRetained(localTopic string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range q.items {
		if it.m.retain && it.m.topic == localTopic {
			return true
		}
	}
	return false
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *queue) close() error {
	if q.db == nil {
		return nil
	}
	return q.db.Close()
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// encodeMessage: qos, retain, topic length (uint16), topic, payload.
func encodeMessage(m message) []byte {
	b := make([]byte, 0, 4+len(m.topic)+len(m.payload))
	r := byte(0)
	if m.retain {
		r = 1
	}
	b = append(b, m.qos, r)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.topic)))
	b = append(b, m.topic...)
	return append(b, m.payload...)
}

func decodeMessage(b []byte) (message, error) {
	if len(b) < 4 {
		return message{}, errors.New("short record")
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if len(b) < 4+n || b[0] > 2 || b[1] > 1 {
		return message{}, errors.New("bad record")
	}
	return message{
		qos:     b[0],
		retain:  b[1] == 1,
		topic:   string(b[4 : 4+n]),
		payload: append([]byte(nil), b[4+n:]...),
	}, nil
}
