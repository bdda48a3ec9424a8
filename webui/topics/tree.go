// Package topics is the console's topic explorer: what people install MQTT
// Explorer for. One client of the box's own subscribes to every topic and
// keeps a tree of them with message counts, the last value of each, and a
// short history of values, within fixed bounds whatever the traffic.
package topics

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds of what the tree keeps.
const (
	DefaultMaxTopics = 10000   // topics kept; messages on new ones past it are counted as dropped
	MaxPayload       = 4 << 10 // bytes of a value kept (the rest is cut, Truncated says so)
	HistoryLen       = 20      // numeric values kept per topic, for the sparkline
)

// Message is one message the explorer heard.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
	At       time.Time
}

// Point is one numeric value of a topic's history.
type Point struct {
	At    time.Time `json:"t"`
	Value string    `json:"value"`
}

type node struct {
	children map[string]*node
	messages int64 // in this subtree
	last     *Message
	cut      bool // last.Payload was cut to MaxPayload
	history  []sample
}

// sample is one numeric value of a topic's history, kept small: a tree of
// 20,000 topics holds 400,000 of them.
type sample struct {
	ms int64 // unix milliseconds
	v  float64
}

// Tree holds every topic heard, up to its bound.
type Tree struct {
	mu      sync.Mutex
	root    node
	topics  int
	max     int
	dropped int64
}

// NewTree keeps up to maxTopics topics (<= 0: DefaultMaxTopics).
func NewTree(maxTopics int) *Tree {
	if maxTopics <= 0 {
		maxTopics = DefaultMaxTopics
	}
	return &Tree{max: maxTopics}
}

// Record adds one message. A retained message with no payload clears the
// topic's value (as the broker does).
func (t *Tree) Record(m Message) {
	levels := strings.Split(m.Topic, "/")
	t.mu.Lock()
	defer t.mu.Unlock()
	// Make the path, unless it would be a topic past the bound.
	n := &t.root
	path := make([]*node, 0, len(levels)+1)
	path = append(path, n)
	for _, l := range levels {
		c := n.children[l]
		if c == nil {
			if t.topics >= t.max {
				t.dropped++
				return
			}
			if n.children == nil {
				n.children = map[string]*node{}
			}
			c = &node{}
			n.children[l] = c
		}
		n = c
		path = append(path, n)
	}
	if n.last == nil {
		t.topics++
	}
	for _, p := range path {
		p.messages++
	}
	if m.Retained && len(m.Payload) == 0 {
		n.last = &Message{Topic: m.Topic, At: m.At, QoS: m.QoS}
		n.cut = false
		return
	}
	n.cut = len(m.Payload) > MaxPayload
	if n.cut {
		m.Payload = m.Payload[:MaxPayload]
	}
	m.Payload = slices.Clone(m.Payload)
	n.last = &m
	if v, err := strconv.ParseFloat(strings.TrimSpace(string(m.Payload)), 64); err == nil && len(m.Payload) < 32 {
		if len(n.history) == HistoryLen {
			n.history = append(n.history[:0], n.history[1:]...)
		}
		n.history = append(n.history, sample{m.At.UnixMilli(), v})
	}
}

// Node is one topic of a listing, as the API shows it.
type Node struct {
	Topic      string   `json:"topic"`
	Messages   int64    `json:"messages"`              // in its subtree
	Children   int      `json:"children"`              // topics one level below
	Payload    *string  `json:"payload,omitempty"`     // the last value, as text
	PayloadHex *string  `json:"payload_hex,omitempty"` // or as hex, when it is not text
	Truncated  bool     `json:"truncated,omitempty"`   // the value was longer than MaxPayload
	Retained   *bool    `json:"retained,omitempty"`
	QoS        *byte    `json:"qos,omitempty"`
	AgeSeconds *float64 `json:"age_s,omitempty"`
}

// List returns the topics below prefix ("" for the top), depth levels
// deep (at least 1), in name order, each with its subtree's figures.
func (t *Tree) List(prefix string, depth int, now time.Time) []Node {
	depth = max(depth, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	if prefix != "" {
		for _, l := range strings.Split(prefix, "/") {
			if n = n.children[l]; n == nil {
				return []Node{}
			}
		}
	}
	out := []Node{}
	var walk func(n *node, path string, left int)
	walk = func(n *node, path string, left int) {
		for _, name := range slices.Sorted(maps.Keys(n.children)) {
			c := n.children[name]
			topic := name
			if path != "" {
				topic = path + "/" + name
			}
			out = append(out, view(topic, c, now))
			if left > 1 {
				walk(c, topic, left-1)
			}
		}
	}
	walk(n, prefix, depth)
	return out
}

// Get is one topic and its history.
func (t *Tree) Get(topic string, now time.Time) (Node, []Point, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for _, l := range strings.Split(topic, "/") {
		if n = n.children[l]; n == nil {
			return Node{}, nil, false
		}
	}
	hist := make([]Point, len(n.history))
	for i, p := range n.history {
		hist[i] = Point{At: time.UnixMilli(p.ms), Value: strconv.FormatFloat(p.v, 'g', -1, 64)}
	}
	return view(topic, n, now), hist, true
}

// Retained lists the topics at or below topic whose last message was
// retained (what "clear retained" clears).
func (t *Tree) Retained(topic string, subtree bool) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for _, l := range strings.Split(topic, "/") {
		if n = n.children[l]; n == nil {
			return nil
		}
	}
	var out []string
	var walk func(n *node, path string)
	walk = func(n *node, path string) {
		if n.last != nil && n.last.Retained && len(n.last.Payload) > 0 {
			out = append(out, path)
		}
		if !subtree {
			return
		}
		for name, c := range n.children {
			walk(c, path+"/"+name)
		}
	}
	walk(n, topic)
	slices.Sort(out)
	return out
}

// Stats are the tree's size and what its bound dropped.
func (t *Tree) Stats() (topics int, dropped int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.topics, t.dropped
}

func view(topic string, n *node, now time.Time) Node {
	v := Node{Topic: topic, Messages: n.messages, Children: len(n.children)}
	if m := n.last; m != nil {
		if utf8.Valid(m.Payload) {
			s := string(m.Payload)
			v.Payload = &s
		} else {
			h := spacedHex(m.Payload)
			v.PayloadHex = &h
		}
		r, q := m.Retained, m.QoS
		age := now.Sub(m.At).Seconds()
		v.Retained, v.QoS, v.AgeSeconds, v.Truncated = &r, &q, &age, n.cut
	}
	return v
}

func spacedHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 3*len(b))
	for i, c := range b {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
