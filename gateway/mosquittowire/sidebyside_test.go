package mosquittowire_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homebox/gateway/gateway"
	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/testkit"
)

// pair is Debian's Mosquitto and our broker, both on one conf.
type pair struct{ mosquitto, ours string }

// startPairFiles runs `mosquitto -c` and an in-process broker on the same
// conf body (the listener line is each one's own). {dir} in body is a
// folder of the test, where files are written first (password files).
func startPairFiles(t *testing.T, body string, files map[string]string) pair {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	body = strings.ReplaceAll(body, "{dir}", dir)
	return pair{mosquitto: startMosquitto(t, dir, body), ours: startOurs(t, dir, body)}
}

func startMosquitto(t *testing.T, dir, body string) string {
	t.Helper()
	bin := testkit.RequireTool(t, "mosquitto")
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	_, port, _ := net.SplitHostPort(addr)
	path := filepath.Join(dir, "mosquitto-real.conf")
	conf := "listener " + port + " 127.0.0.1\nlog_dest stderr\n" + body
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Mosquitto run as root drops to the mosquitto account: let it read
	// the test's files.
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	p := testkit.Start(t, bin, "-c", path)
	testkit.WaitForReport(t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, p.Output)
	return addr
}

func startOurs(t *testing.T, dir, body string) string {
	t.Helper()
	cfg, ds := mosquittoconf.Check("m.conf", []byte("listener 0 127.0.0.1\n"+body), dir)
	if !ds.OK() {
		t.Fatal(ds.Err())
	}
	b, err := gateway.New(gateway.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()[0]
}

// exchange sends frames to addr and returns what came back: each packet in
// hex, then how the exchange ended. With open, a PINGREQ follows the
// frames and the exchange ends at its PINGRESP ("open"); else at the
// broker's close ("closed", or "reset" when the peer reset the socket).
func exchange(t *testing.T, addr string, open bool, frames ...[]byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []byte
	for _, f := range frames {
		out = append(out, f...)
	}
	if open {
		out = append(out, pingreq...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	end := ""
	for end == "" {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		switch {
		case open && len(got) >= 2 && string(got[len(got)-2:]) == string(pingresp):
			end = "open"
			got = got[:len(got)-2]
		case errors.Is(err, io.EOF):
			end = "closed"
		case errors.Is(err, syscall.ECONNRESET):
			end = "reset"
		case err != nil:
			end = "error: " + err.Error()
		}
	}
	return split(got) + "| " + end
}

// split writes a byte stream as its packets in hex, one a word.
func split(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		n, size := 0, 1
		for i := 1; i < len(b) && i < 5; i++ {
			n |= int(b[i]&0x7f) << (7 * (i - 1))
			size++
			if b[i]&0x80 == 0 {
				break
			}
		}
		total := min(size+n, len(b))
		s.WriteString(hex.EncodeToString(b[:total]) + " ")
		b = b[total:]
	}
	return s.String()
}

// autoID is an id Mosquitto or admit made up ("auto-" and a UUID), in hex.
var autoID = regexp.MustCompile(hex.EncodeToString([]byte("auto-")) + `[0-9a-f]{72}`)

// masked hides the variable parts of an answer: assigned client ids.
func masked(s string) string { return autoID.ReplaceAllString(s, "<auto-id>") }
