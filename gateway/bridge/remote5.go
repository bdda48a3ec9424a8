package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// link5 is an MQTT 5 link through paho.golang. Each connection is a new
// paho client, all sharing the bridge's session5, so with cleansession
// false and a bridge_session_expiry_interval that outlasts the outage
// (Mosquitto's default 0 does not) what was in flight is resent with its
// packet id and QoS 2 stays exactly once across reconnections.
type link5 struct {
	client   *paho.Client
	sess     *session5
	lostCh   chan struct{}
	lostOnce sync.Once
	mu       sync.Mutex
	err      error
}

func dial5(ctx context.Context, cfg dialConfig, sess *session5) (*link5, error) {
	conn, err := dialNet(ctx, cfg.addr, cfg.tls, cfg.sock)
	if err != nil {
		return nil, err
	}
	l := &link5{sess: sess, lostCh: make(chan struct{})}
	aliases := newInAliases(cfg.topicAliasMax)
	l.client = paho.NewClient(paho.ClientConfig{
		ClientID:      cfg.clientID,
		Conn:          packets.NewThreadSafeConn(conn),
		Session:       sess,
		PacketTimeout: connectTimeout,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			topic, err := aliases.resolve(p)
			if err != nil {
				l.end(err)
				return false, err
			}
			cfg.onMessage(message{topic: topic, payload: p.Payload, qos: p.QoS, retain: p.Retain})
			return true, nil
		}},
		OnClientError: func(err error) { l.end(err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			l.end(fmt.Errorf("remote disconnected the bridge: reason %d", d.ReasonCode))
		},
	})
	cp := &paho.Connect{
		ClientID:   cfg.clientID,
		KeepAlive:  uint16(min(cfg.keepalive/time.Second, math.MaxUint16)),
		CleanStart: cfg.cleanSession,
		Properties: &paho.ConnectProperties{},
	}
	// bridge_session_expiry_interval; not written is Mosquitto's 0: the
	// remote ends the session when the connection drops.
	if cfg.sessionExpiry != nil && *cfg.sessionExpiry > 0 {
		cp.Properties.SessionExpiryInterval = cfg.sessionExpiry
	}
	if cfg.receiveMax > 0 {
		cp.Properties.ReceiveMaximum = &cfg.receiveMax
	}
	if cfg.topicAliasMax > 0 {
		cp.Properties.TopicAliasMaximum = &cfg.topicAliasMax
	}
	if cfg.username != "" {
		cp.Username, cp.UsernameFlag = cfg.username, true
	}
	if cfg.password != "" {
		cp.Password, cp.PasswordFlag = []byte(cfg.password), true
	}
	if cfg.will != nil {
		cp.WillMessage = &paho.WillMessage{Topic: cfg.will.topic, Payload: cfg.will.payload, QoS: cfg.will.qos, Retain: cfg.will.retain}
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if _, err := l.client.Connect(cctx, cp); err != nil {
		_ = conn.Close()
		return nil, err
	}
	go func() {
		<-l.client.Done()
		l.end(errors.New("connection closed"))
	}()
	return l, nil
}

func (l *link5) end(err error) {
	l.lostOnce.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.lostCh)
	})
}

func (l *link5) lost() <-chan struct{} { return l.lostCh }

func (l *link5) cause() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *link5) publish(m message, done func(error)) error {
	p := &paho.Publish{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain}
	if m.qos > 0 {
		l.sess.expect(done)
		defer l.sess.expect(nil)
	}
	// Sent in order by the bridge's one sender; acknowledgements come back
	// through session5.
	_, err := l.client.PublishWithOptions(context.Background(), p, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
	if errors.Is(err, paho.ErrNetworkErrorAfterStored) {
		return nil // in the session: resent on the next connection
	}
	return err
}

func (l *link5) subscribe(ctx context.Context, routes []route) error {
	s := &paho.Subscribe{}
	for _, r := range routes {
		if r.in {
			s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: r.remote, QoS: r.qos, NoLocal: true, RetainAsPublished: true})
		}
	}
	if len(s.Subscriptions) == 0 {
		return nil
	}
	ack, err := l.client.Subscribe(ctx, s)
	if err != nil {
		return err
	}
	for i, code := range ack.Reasons {
		if code >= 0x80 && i < len(s.Subscriptions) {
			return fmt.Errorf("remote refused the subscription to %q: reason %d", s.Subscriptions[i].Topic, code)
		}
	}
	return nil
}

func (l *link5) close(final message) {
	if final.topic != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = l.client.Publish(ctx, &paho.Publish{Topic: final.topic, Payload: final.payload, QoS: 1, Retain: final.retain})
		cancel()
	}
	_ = l.client.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-l.client.Done():
	case <-time.After(2 * time.Second):
	}
	l.end(nil)
}

// session5 is paho.golang's in-memory session with a hook that tells the
// bridge when each of its publishes is fully acknowledged, and when the
// remote lost the session so that it must be sent again.
type session5 struct {
	*state.State
	mu      sync.Mutex
	cur     func(error)
	next    uint64
	pending map[uint64]*pend5
}

type pend5 struct {
	done func(error)
	stop chan struct{}
}

func newSession5() *session5 {
	return &session5{State: state.NewInMemory(), pending: map[uint64]*pend5{}}
}

func (s *session5) expect(done func(error)) {
	s.mu.Lock()
	s.cur = done
	s.mu.Unlock()
}

func (s *session5) AddToSession(ctx context.Context, pk session.Packet, resp chan<- packets.ControlPacket) error {
	s.mu.Lock()
	done := s.cur
	s.cur = nil
	s.mu.Unlock()
	if done == nil || pk.Type() != packets.PUBLISH {
		return s.State.AddToSession(ctx, pk, resp)
	}
	mine := make(chan packets.ControlPacket, 1)
	if err := s.State.AddToSession(ctx, pk, mine); err != nil {
		return err
	}
	p := &pend5{done: done, stop: make(chan struct{})}
	s.mu.Lock()
	id := s.next
	s.next++
	s.pending[id] = p
	s.mu.Unlock()
	go func() {
		var r packets.ControlPacket
		select {
		case r = <-mine:
		case <-p.stop:
			return
		}
		select {
		case resp <- r:
		default:
		}
		s.mu.Lock()
		_, still := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		if still {
			p.done(ackResult(r))
		}
	}()
	return nil
}

// ackResult turns the session's answer into the bridge's verdict.
func ackResult(r packets.ControlPacket) error {
	switch c := r.Content.(type) {
	case *packets.Puback:
		if c.ReasonCode >= 0x80 {
			return fmt.Errorf("remote refused the message: reason %d", c.ReasonCode)
		}
		return nil
	case *packets.Pubrec:
		if c.ReasonCode >= 0x80 {
			return fmt.Errorf("remote refused the message: reason %d", c.ReasonCode)
		}
		return nil
	case *packets.Pubcomp:
		return nil
	}
	return errResend // removed from the session without an answer
}

// ConAckReceived hands every publish in flight back to the bridge when the
// remote has no session for us (paho then forgets them silently).
func (s *session5) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	if !ca.SessionPresent {
		s.resendAll()
	}
	return s.State.ConAckReceived(w, cp, ca)
}

func (s *session5) resendAll() {
	s.mu.Lock()
	ps := s.pending
	s.pending = map[uint64]*pend5{}
	s.mu.Unlock()
	for _, p := range ps {
		close(p.stop)
		p.done(errResend)
	}
}

// shutdown ends the session when the bridge stops; the queue keeps what
// was in flight for the next start.
func (s *session5) shutdown() {
	s.mu.Lock()
	ps := s.pending
	s.pending = map[uint64]*pend5{}
	s.mu.Unlock()
	for _, p := range ps {
		close(p.stop)
	}
	_ = s.State.Close()
}

func (l *link5) unsubscribe(ctx context.Context, filters []string) error {
	_, err := l.client.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters})
	return err
}
