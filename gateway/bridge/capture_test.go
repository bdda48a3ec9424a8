package bridge

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// captureRemote is a minimal MQTT 5 remote that accepts every bridge
// connection, acknowledges what needs it, and records what it received
// and from where: it shows what the bridge put on the wire.
type captureRemote struct {
	ln net.Listener

	mu       sync.Mutex
	connects []*packets.Connect
	peers    []string // source address of each connection
	alpn     []string // negotiated ALPN of each TLS connection
	tlsVers  []uint16 // TLS version of each TLS connection
	clientCN []string // client certificate's common name, "" = none
	pubs     []*packets.Publish
	unsubs   [][]string
	subs     [][]string
	conns    []net.Conn
}

// startCapture listens on 127.0.0.1 port 0, with TLS when cfg is set.
func startCapture(t testing.TB, cfg *tls.Config) *captureRemote {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	c := &captureRemote{ln: ln}
	go c.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		c.mu.Lock()
		for _, cn := range c.conns {
			_ = cn.Close()
		}
		c.mu.Unlock()
	})
	return c
}

func (c *captureRemote) addr() string { return c.ln.Addr().String() }

func (c *captureRemote) accept() {
	for {
		cn, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conns = append(c.conns, cn)
		c.peers = append(c.peers, cn.RemoteAddr().String())
		c.mu.Unlock()
		go c.serve(cn)
	}
}

func (c *captureRemote) serve(cn net.Conn) {
	defer cn.Close()
	if tc, ok := cn.(*tls.Conn); ok {
		if tc.Handshake() != nil {
			return
		}
		c.mu.Lock()
		st := tc.ConnectionState()
		c.alpn = append(c.alpn, st.NegotiatedProtocol)
		c.tlsVers = append(c.tlsVers, st.Version)
		cn := ""
		if len(st.PeerCertificates) > 0 {
			cn = st.PeerCertificates[0].Subject.CommonName
		}
		c.clientCN = append(c.clientCN, cn)
		c.mu.Unlock()
	}
	for {
		cp, err := packets.ReadPacket(cn)
		if err != nil {
			return
		}
		switch p := cp.Content.(type) {
		case *packets.Connect:
			c.mu.Lock()
			c.connects = append(c.connects, p)
			c.mu.Unlock()
			_, err = (&packets.Connack{Properties: &packets.Properties{}}).WriteTo(cn)
		case *packets.Subscribe:
			var topics []string
			ack := &packets.Suback{PacketID: p.PacketID, Properties: &packets.Properties{}}
			for _, s := range p.Subscriptions {
				topics = append(topics, s.Topic)
				ack.Reasons = append(ack.Reasons, s.QoS)
			}
			c.mu.Lock()
			c.subs = append(c.subs, topics)
			c.mu.Unlock()
			_, err = ack.WriteTo(cn)
		case *packets.Unsubscribe:
			c.mu.Lock()
			c.unsubs = append(c.unsubs, p.Topics)
			c.mu.Unlock()
			_, err = (&packets.Unsuback{PacketID: p.PacketID, Reasons: make([]byte, len(p.Topics)), Properties: &packets.Properties{}}).WriteTo(cn)
		case *packets.Publish:
			c.mu.Lock()
			c.pubs = append(c.pubs, p)
			c.mu.Unlock()
			switch p.QoS {
			case 1:
				_, err = (&packets.Puback{PacketID: p.PacketID, Properties: &packets.Properties{}}).WriteTo(cn)
			case 2:
				_, err = (&packets.Pubrec{PacketID: p.PacketID, Properties: &packets.Properties{}}).WriteTo(cn)
			}
		case *packets.Pubrel:
			_, err = (&packets.Pubcomp{PacketID: p.PacketID, Properties: &packets.Properties{}}).WriteTo(cn)
		case *packets.Pingreq:
			_, err = (&packets.Pingresp{}).WriteTo(cn)
		case *packets.Disconnect:
			return
		}
		if err != nil {
			return
		}
	}
}

// send writes a QoS 0 publish to the newest bridge connection.
func (c *captureRemote) send(t testing.TB, p *packets.Publish) {
	t.Helper()
	c.mu.Lock()
	cn := c.conns[len(c.conns)-1]
	c.mu.Unlock()
	if p.Properties == nil {
		p.Properties = &packets.Properties{}
	}
	if _, err := p.WriteTo(cn); err != nil {
		t.Fatal(err)
	}
}

func (c *captureRemote) firstConnect() *packets.Connect {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.connects) == 0 {
		return nil
	}
	return c.connects[0]
}

// published returns the publishes received on topic.
func (c *captureRemote) published(topic string) []*packets.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*packets.Publish
	for _, p := range c.pubs {
		if p.Topic == topic {
			out = append(out, p)
		}
	}
	return out
}

func (c *captureRemote) connectCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.connects)
}
