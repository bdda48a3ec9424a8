package connwrap

import (
	"crypto/tls"
	"net"
	"testing"
)

type wrap struct{ net.Conn }

func (w wrap) Unwrap() net.Conn { return w.Conn }

type marked struct{ wrap }

func TestFind(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	stack := wrap{marked{wrap{a}}}
	if m, ok := Find[marked](stack); !ok || m.Unwrap() != a {
		t.Errorf("Find[marked] = %v, %v", m, ok)
	}
	if _, ok := Find[*tls.Conn](stack); ok {
		t.Error("found a TLS connection where there is none")
	}
	// TLS stops the walk: what is beneath it is not the connection's bytes.
	over := wrap{tls.Server(marked{wrap{a}}, &tls.Config{})}
	if _, ok := Find[*tls.Conn](over); !ok {
		t.Error("TLS connection not found")
	}
	if _, ok := Find[marked](over); ok {
		t.Error("looked beneath TLS")
	}
}
