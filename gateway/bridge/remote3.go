package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// link3 is an MQTT 3.1 / 3.1.1 link through paho.mqtt.golang. Each
// connection is a new paho client, but all of a bridge's clients share one
// store3, so with cleansession false paho resends what was in flight with
// the same packet ids (DUP set) and a QoS 2 message is not delivered twice.
type link3 struct {
	client   paho3.Client
	store    *store3
	lostCh   chan struct{}
	lostOnce sync.Once
	mu       sync.Mutex
	err      error
}

// errRefusedVersion marks a CONNACK refusing the protocol version (a
// broker that does not know try_private).
var errRefusedVersion = errors.New("remote refused the protocol version")

func dial3(ctx context.Context, cfg dialConfig, st *store3) (*link3, error) {
	l := &link3{store: st, lostCh: make(chan struct{})}
	version := uint(cfg.version)
	if cfg.private {
		version |= 0x80
	}
	o := paho3.NewClientOptions().
		AddBroker("tcp://" + cfg.addr).
		SetClientID(cfg.clientID).
		SetCleanSession(cfg.cleanSession).
		SetKeepAlive(cfg.keepalive).
		SetProtocolVersion(version).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).
		SetResumeSubs(false).
		SetOrderMatters(true).
		SetStore(st).
		SetCustomOpenConnectionFn(func(*url.URL, paho3.ClientOptions) (net.Conn, error) {
			return dialNet(ctx, cfg.addr, cfg.tls, cfg.sock)
		}).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			cfg.onMessage(message{topic: m.Topic(), payload: m.Payload(), qos: m.Qos(), retain: m.Retained()})
		}).
		SetConnectionLostHandler(func(_ paho3.Client, err error) { l.end(err) })
	if cfg.username != "" {
		o.SetUsername(cfg.username)
	}
	if cfg.password != "" {
		o.SetPassword(cfg.password)
	}
	if cfg.will != nil {
		o.SetBinaryWill(cfg.will.topic, cfg.will.payload, cfg.will.qos, cfg.will.retain)
	}
	l.client = paho3.NewClient(o)
	tok := l.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		l.client.Disconnect(0)
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		if errors.Is(err, packets.ErrorRefusedBadProtocolVersion) {
			return nil, fmt.Errorf("%w: %w", errRefusedVersion, err)
		}
		return nil, err
	}
	if !l.client.IsConnectionOpen() {
		if ct, ok := tok.(*paho3.ConnectToken); ok && ct.ReturnCode() == packets.ErrRefusedBadProtocolVersion {
			return nil, errRefusedVersion
		}
		return nil, errors.New("connection refused")
	}
	return l, nil
}

func (l *link3) end(err error) {
	l.lostOnce.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.lostCh)
	})
}

func (l *link3) lost() <-chan struct{} { return l.lostCh }

func (l *link3) cause() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *link3) publish(m message, done func(error)) error {
	if m.qos == 0 {
		tok := l.client.Publish(m.topic, 0, m.retain, m.payload)
		if tok.WaitTimeout(0) && tok.Error() != nil {
			return tok.Error()
		}
		return nil
	}
	l.store.expect(done)
	tok := l.client.Publish(m.topic, m.qos, m.retain, m.payload)
	if !l.store.taken() { // paho refused it before storing it
		<-tok.Done()
		if err := tok.Error(); err != nil {
			return err
		}
		return errors.New("publish not stored")
	}
	return nil
}

func (l *link3) subscribe(ctx context.Context, routes []route) error {
	filters := map[string]byte{}
	for _, r := range routes {
		if r.in {
			filters[r.remote] = r.qos
		}
	}
	if len(filters) == 0 {
		return nil
	}
	tok := l.client.SubscribeMultiple(filters, nil)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return ctx.Err()
	case <-l.lostCh:
		return errors.New("connection lost while subscribing")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	for f, granted := range tok.(*paho3.SubscribeToken).Result() {
		if granted == 0x80 {
			return fmt.Errorf("remote refused the subscription to %q", f)
		}
	}
	return nil
}

func (l *link3) close(final message) {
	if final.topic != "" {
		tok := l.client.Publish(final.topic, 1, final.retain, final.payload)
		tok.WaitTimeout(2 * time.Second)
	}
	l.client.Disconnect(250)
	l.end(nil)
}

// store3 is paho.mqtt.golang's session store for one bridge. It keeps the
// packets in the order they were first stored (paho resends in the order
// All returns), and it is how the bridge learns that a message is really
// delivered: paho deletes an outbound publish from the store only when
// its PUBACK or PUBCOMP arrives.
type store3 struct {
	mu      sync.Mutex
	n       uint64
	packets map[string]stored3
	done    map[uint16]func(error) // outbound publishes by packet id
	cur     func(error)            // set by the sender just before Publish
}

type stored3 struct {
	n  uint64
	pk packets.ControlPacket
}

func newStore3() *store3 {
	return &store3{packets: map[string]stored3{}, done: map[uint16]func(error){}}
}

// expect ties the next outbound publish stored to done.
func (s *store3) expect(done func(error)) {
	s.mu.Lock()
	s.cur = done
	s.mu.Unlock()
}

// taken reports whether the publish after expect was stored, and forgets
// the expectation.
func (s *store3) taken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.cur == nil
	s.cur = nil
	return ok
}

func (s *store3) Open()  {}
func (s *store3) Close() {}

func (s *store3) Put(key string, pk packets.ControlPacket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.packets[key]
	if !ok {
		s.n++
		e.n = s.n
	}
	e.pk = pk
	s.packets[key] = e
	if _, isPub := pk.(*packets.PublishPacket); isPub && s.cur != nil && strings.HasPrefix(key, "o.") {
		s.done[pk.Details().MessageID] = s.cur
		s.cur = nil
	}
}

func (s *store3) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.packets[key].pk
}

func (s *store3) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.packets))
	for k := range s.packets {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return s.packets[keys[i]].n < s.packets[keys[j]].n })
	return keys
}

func (s *store3) Del(key string) {
	s.mu.Lock()
	delete(s.packets, key)
	var done func(error)
	if id, ok := strings.CutPrefix(key, "o."); ok {
		if n, err := strconv.ParseUint(id, 10, 16); err == nil {
			done = s.done[uint16(n)]
			delete(s.done, uint16(n))
		}
	}
	s.mu.Unlock()
	if done != nil {
		done(nil)
	}
}

// Reset is called when a clean session starts: whatever was in flight is
// gone from the remote's view and must be sent again.
func (s *store3) Reset() {
	s.mu.Lock()
	s.packets = map[string]stored3{}
	dones := s.done
	s.done = map[uint16]func(error){}
	s.mu.Unlock()
	for _, d := range dones {
		d(errResend)
	}
}

// dropAll forgets everything in flight (the bridge stops); the queue still
// has the messages for the next start.
func (s *store3) dropAll() {
	s.mu.Lock()
	s.packets = map[string]stored3{}
	s.done = map[uint16]func(error){}
	s.mu.Unlock()
}

func (l *link3) unsubscribe(ctx context.Context, filters []string) error {
	tok := l.client.Unsubscribe(filters...)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-l.lostCh:
		return errors.New("connection lost while unsubscribing")
	}
}
