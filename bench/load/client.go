package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/homebox/gateway/internal/mqttwire"
)

// keepAlive is what the generator's clients ask for. Roles that hold a
// connection longer than this ping (see client.pinger).
const keepAlive = 60

// client is one MQTT connection of a worker.
type client struct {
	id   string
	conn *net.TCPConn
	r    *mqttwire.Reader

	wmu sync.Mutex // writes come from the role's loop and the pinger
}

// dial connects and logs in. It fails unless the broker accepts.
func dial(ctx context.Context, s *Spec, index int) (*client, error) {
	id := fmt.Sprintf("%s-%d-%d", s.ClientPrefix, os.Getpid(), index)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", id, err)
	}
	c := &client{id: id, conn: nc.(*net.TCPConn), r: mqttwire.NewReader(nc, 64<<10, 1<<20)}
	if deadline, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(deadline)
	}
	pkt := mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: id, Username: s.Username, Password: s.Password, KeepAlive: keepAlive, CleanSession: true})
	if _, err := c.conn.Write(pkt); err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("client %s: send CONNECT: %w", id, err)
	}
	pk, err := c.r.Next()
	if err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("client %s: wait for CONNACK: %w", id, err)
	}
	code, err := mqttwire.ConnackCode(pk)
	if err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("client %s: %w", id, err)
	}
	if code != 0 {
		c.conn.Close()
		return nil, fmt.Errorf("client %s: broker refused the connection with CONNACK code %d (5 = not authorised)", id, code)
	}
	_ = c.conn.SetDeadline(time.Time{})
	return c, nil
}

// subscribe sends one SUBSCRIBE and waits for its SUBACK.
func (c *client) subscribe(ctx context.Context, filter string, qos byte) error {
	if deadline, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(deadline)
		defer c.conn.SetDeadline(time.Time{})
	}
	if err := c.write(mqttwire.AppendSubscribe(nil, 1, filter, qos)); err != nil {
		return fmt.Errorf("client %s: send SUBSCRIBE %s: %w", c.id, filter, err)
	}
	pk, err := c.r.Next()
	if err != nil {
		return fmt.Errorf("client %s: wait for SUBACK: %w", c.id, err)
	}
	if pk.Type != mqttwire.SUBACK || len(pk.Body) != 3 {
		return fmt.Errorf("client %s: expected a SUBACK for %s, got packet type %d", c.id, filter, pk.Type)
	}
	if pk.Body[2] == 0x80 {
		return fmt.Errorf("client %s: broker refused the subscription to %s", c.id, filter)
	}
	return nil
}

func (c *client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

// pinger keeps a long-held connection alive until ctx ends.
func (c *client) pinger(ctx context.Context) {
	t := time.NewTicker(keepAlive / 2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.write(mqttwire.AppendPingreq(nil)) != nil {
				return
			}
		}
	}
}

// closeGracefully sends DISCONNECT, half-closes and waits (briefly) for the
// broker to close its side, so nothing sent before is cut off by a reset.
func (c *client) closeGracefully(wait time.Duration) {
	_ = c.write(mqttwire.AppendDisconnect(nil))
	_ = c.conn.CloseWrite()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	_, _ = io.Copy(io.Discard, c.conn)
	_ = c.conn.Close()
}

// Payload layout: publisher index, sequence number, send time; the rest
// is filler up to PayloadSize.
const (
	offIndex = 0
	offSeq   = 4
	offTime  = 12
)

func newPayload(index int) []byte {
	p := make([]byte, PayloadSize)
	for i := range p {
		p[i] = 'x'
	}
	binary.BigEndian.PutUint32(p[offIndex:], uint32(index))
	return p
}

func stampPayload(p []byte, seq uint64, now int64) {
	binary.BigEndian.PutUint64(p[offSeq:], seq)
	binary.BigEndian.PutUint64(p[offTime:], uint64(now))
}

var errShortPayload = errors.New("payload shorter than the generator's header")

func readPayload(p []byte) (index int, seq uint64, sent int64, err error) {
	if len(p) < offTime+8 {
		return 0, 0, 0, errShortPayload
	}
	return int(binary.BigEndian.Uint32(p[offIndex:])), binary.BigEndian.Uint64(p[offSeq:]), int64(binary.BigEndian.Uint64(p[offTime:])), nil
}
