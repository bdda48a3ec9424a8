package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/webui/api"
)

type client struct {
	sock    string
	timeout time.Duration
}

func newClient(root string) *client {
	// A stop waits out an app's kill_timeout, so an answer may take a while.
	return &client{sock: paths.Root(root).Join(paths.Socket), timeout: 2 * time.Minute}
}

// do calls the API and decodes its JSON answer into out.
func (c *client) do(method, path string, q url.Values, out any) error {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.roundTrip(method, path, nil, out)
}

// send calls the API with a JSON body and decodes its JSON answer into out.
func (c *client) send(method, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.roundTrip(method, path, b, out)
}

// roundTrip sends one request and decodes gatewayd's JSON answer into out;
// an answer of 300 or more becomes the API's own error text.
func (c *client) roundTrip(method, path string, body []byte, out any) error {
	code, status, answer, err := c.exchange(method, path, body)
	if err != nil {
		return err
	}
	if code >= 300 {
		var e api.Error
		if json.Unmarshal(answer, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("gatewayd answered %s", status)
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("gatewayd's answer is not what gwctl expects: %w", err)
		}
	}
	return nil
}

// exchange is one HTTP/1.0 request on a fresh connection to the control
// socket. gwctl speaks this much HTTP itself rather than through net/http,
// whose TLS (never used on a local socket) would make the binary twice
// the size; HTTP/1.0 keeps the answer a plain body up to the close, with
// no chunking to undo.
func (c *client) exchange(method, path string, body []byte) (code int, status string, answer []byte, err error) {
	conn, err := net.DialTimeout("unix", c.sock, 10*time.Second)
	if err != nil {
		return 0, "", nil, c.connError(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, "", nil, err
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.0\r\nHost: gatewayd\r\nAccept: application/json\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return 0, "", nil, fmt.Errorf("talk to gatewayd at %s: %w", c.sock, err)
	}
	tp := textproto.NewReader(bufio.NewReader(conn))
	line, err := tp.ReadLine()
	if err != nil {
		return 0, "", nil, fmt.Errorf("read gatewayd's answer: %w", err)
	}
	proto, status, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") {
		return 0, "", nil, fmt.Errorf("gatewayd's answer is not HTTP: %q", line)
	}
	if code, err = strconv.Atoi(strings.SplitN(status, " ", 2)[0]); err != nil {
		return 0, "", nil, fmt.Errorf("gatewayd's answer has no status code: %q", line)
	}
	if _, err := tp.ReadMIMEHeader(); err != nil {
		return 0, "", nil, fmt.Errorf("read gatewayd's answer: %w", err)
	}
	answer, err = io.ReadAll(io.LimitReader(tp.R, 64<<20))
	if err != nil {
		return 0, "", nil, fmt.Errorf("read gatewayd's answer: %w", err)
	}
	return code, status, answer, nil
}

// connError says why gatewayd could not be reached, in a person's words.
func (c *client) connError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("gatewayd is not running (no socket at %s)", c.sock)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("gatewayd is not running (the socket at %s is left from an earlier run)", c.sock)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot open %s: permission denied (the control socket is root-only: run gwctl as root)", c.sock)
	}
	return fmt.Errorf("talk to gatewayd at %s: %w", c.sock, err)
}

func (c *client) statusAll(w io.Writer, asJSON bool) error {
	var apps []api.App
	if err := c.do("GET", "/api/apps", nil, &apps); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, apps)
	}
	printTable(w, apps, colorOK(w))
	return nil
}

func (c *client) statusOne(w io.Writer, name string, asJSON bool) error {
	var st api.App
	if err := c.do("GET", "/api/apps/"+url.PathEscape(name), nil, &st); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, st)
	}
	printShow(w, st, colorOK(w))
	return nil
}

func (c *client) action(w io.Writer, verb, name string, asJSON bool) error {
	var states []api.App
	if err := c.do("POST", "/api/apps/"+url.PathEscape(name)+"/"+verb, nil, &states); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, states)
	}
	printTable(w, states, colorOK(w))
	return nil
}

// logs prints the last n lines; with follow it then polls for new ones
// until killed. Polling the API keeps gwctl off the log files, which may
// be rotated under it.
func (c *client) logs(w io.Writer, name string, n int, follow bool) error {
	var l api.Logs
	if err := c.do("GET", "/api/apps/"+url.PathEscape(name)+"/logs", url.Values{"n": {fmt.Sprint(n)}}, &l); err != nil {
		return err
	}
	for _, line := range l.Lines {
		fmt.Fprintln(w, line)
	}
	for follow {
		time.Sleep(300 * time.Millisecond) // the poll period of -f, not a wait for a condition
		var next api.Logs
		if err := c.do("GET", "/api/apps/"+url.PathEscape(name)+"/logs", url.Values{"since": {fmt.Sprint(l.Offset)}}, &next); err != nil {
			return err
		}
		for _, line := range next.Lines {
			fmt.Fprintln(w, line)
		}
		l = next
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// colorOK is true only on a terminal, and never with NO_COLOR set: gwctl's
// output is read by scripts and over plain SSH pipes too.
func colorOK(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
