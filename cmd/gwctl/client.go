package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/webui"
)

type client struct {
	sock string
	http *http.Client
}

func newClient(root string) *client {
	sock := paths.Root(root).Join(paths.Socket)
	return &client{
		sock: sock,
		http: &http.Client{
			Timeout: 2 * time.Minute, // a stop waits out an app's kill_timeout
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", sock)
				},
			},
		},
	}
}

// do calls the API and decodes its JSON answer into out.
func (c *client) do(method, path string, q url.Values, out any) error {
	u := "http://gatewayd" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return err
	}
	return c.roundTrip(req, out)
}

// roundTrip sends req and decodes gatewayd's JSON answer into out; an
// answer of 300 or more becomes the API's own error text.
func (c *client) roundTrip(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read gatewayd's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e webui.Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("gatewayd answered %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("gatewayd's answer is not what gwctl expects: %w", err)
		}
	}
	return nil
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
	var apps []supervisor.AppState
	if err := c.do(http.MethodGet, "/api/apps", nil, &apps); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, apps)
	}
	printTable(w, apps, colorOK(w))
	return nil
}

func (c *client) statusOne(w io.Writer, name string, asJSON bool) error {
	var st supervisor.AppState
	if err := c.do(http.MethodGet, "/api/apps/"+url.PathEscape(name), nil, &st); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, st)
	}
	printShow(w, st, colorOK(w))
	return nil
}

func (c *client) action(w io.Writer, verb, name string, asJSON bool) error {
	var states []supervisor.AppState
	if err := c.do(http.MethodPost, "/api/apps/"+url.PathEscape(name)+"/"+verb, nil, &states); err != nil {
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
	var l webui.Logs
	if err := c.do(http.MethodGet, "/api/apps/"+url.PathEscape(name)+"/logs", url.Values{"n": {fmt.Sprint(n)}}, &l); err != nil {
		return err
	}
	for _, line := range l.Lines {
		fmt.Fprintln(w, line)
	}
	for follow {
		time.Sleep(300 * time.Millisecond) // the poll period of -f, not a wait for a condition
		var next webui.Logs
		if err := c.do(http.MethodGet, "/api/apps/"+url.PathEscape(name)+"/logs", url.Values{"since": {fmt.Sprint(l.Offset)}}, &next); err != nil {
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
