package listeners

import (
	"bytes"
	"net"
	"testing"
)

// TestAnswerConnReplaces: awaited packets are swapped where they appear in
// a write, in order, others pass unchanged, and a write that does not
// start at a packet is left alone.
func TestAnswerConnReplaces(t *testing.T) {
	connack := []byte{0x20, 0x03, 0x00, 0x00, 0x00}
	mosq := []byte{0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0x00, 0x0a}
	disc := []byte{0xe0, 0x02, 0x93, 0x00}
	suback := []byte{0x90, 0x03, 0x00, 0x01, 0x00}
	cases := []struct {
		name   string
		writes [][]byte
		want   []byte
	}{
		{"alone", [][]byte{connack}, mosq},
		{"followed", [][]byte{append(append([]byte{}, connack...), suback...)}, append(append([]byte{}, mosq...), suback...)},
		{"both in one write", [][]byte{cat(connack, suback, disc)}, cat(mosq, suback, []byte{0xe0, 0x01, 0x93})},
		{"later writes", [][]byte{connack, suback, disc}, cat(mosq, suback, []byte{0xe0, 0x01, 0x93})},
		{"cut packet", [][]byte{connack[:2], connack[2:]}, connack},
		{"another CONNACK first", [][]byte{{0x20, 0x02, 0x00, 0x00}, connack}, cat([]byte{0x20, 0x02, 0x00, 0x00}, connack)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			c := newAnswerConn(a)
			c.Replace(connack, mosq)
			c.Replace(disc, []byte{0xe0, 0x01, 0x93})
			got := make(chan []byte)
			go func() {
				var all []byte
				buf := make([]byte, 64)
				for len(all) < len(tc.want) {
					n, err := b.Read(buf)
					all = append(all, buf[:n]...)
					if err != nil {
						break
					}
				}
				got <- all
			}()
			for _, w := range tc.writes {
				if n, err := c.Write(w); err != nil || n != len(w) {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			if g := <-got; !bytes.Equal(g, tc.want) {
				t.Fatalf("got %x, want %x", g, tc.want)
			}
			a.Close()
		})
	}
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
