package gateway

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/gateway/mosquittoconf"
)

// TestLogDestSyslogWithFacility: log_dest syslog sends each line to the
// system logger, tagged mosquitto, under log_facility's localN.
func TestLogDestSyslogWithFacility(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	syslogNetwork, syslogAddr = "unixgram", path
	defer func() { syslogNetwork, syslogAddr = "", "" }()

	for _, c := range []struct{ conf, prefix string }{
		{"log_dest syslog\nlog_facility 5\n", "<174>"}, // local5 (21) * 8 + info (6)
		{"log_dest syslog\n", "<30>"},                  // daemon (3) * 8 + info
	} {
		cfg, ds := mosquittoconf.Check("m.conf", []byte(c.conf), t.TempDir())
		if !ds.OK() {
			t.Fatal(ds.Err())
		}
		log, closer, err := NewLogger(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello syslog")
		_ = closer.Close()
		buf := make([]byte, 4096)
		_ = sock.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := string(buf[:n])
		if !strings.HasPrefix(got, c.prefix) || !strings.Contains(got, "mosquitto") || !strings.Contains(got, `msg="hello syslog"`) || strings.Contains(got, "time=") {
			t.Errorf("%q: syslog got %q, want prefix %s, tag mosquitto, the message and no second time", c.conf, got, c.prefix)
		}
	}
}

// TestLogDestSyslogWithoutALogger: a box without a system logger gets the
// lines on stderr, and a line that says why, rather than losing them.
func TestLogDestSyslogWithoutALogger(t *testing.T) {
	syslogNetwork, syslogAddr = "unixgram", filepath.Join(t.TempDir(), "none")
	defer func() { syslogNetwork, syslogAddr = "", "" }()
	cfg, ds := mosquittoconf.Check("m.conf", []byte("log_dest syslog\n"), t.TempDir())
	if !ds.OK() {
		t.Fatal(ds.Err())
	}
	var errOut strings.Builder
	log, closer, err := NewLogger(cfg, nil, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	log.Info("still seen")
	if got := errOut.String(); !strings.Contains(got, "log_dest syslog: no system logger") || !strings.Contains(got, `msg="still seen"`) {
		t.Fatalf("stderr: %q", got)
	}
}
