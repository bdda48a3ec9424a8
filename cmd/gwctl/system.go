package main

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"time"

	"github.com/homebox/gateway/webui/api"
)

// system prints the box's version, slots and last update.
func (c *client) system(w io.Writer, asJSON bool) error {
	var s api.System
	if err := c.do("GET", "/api/system", nil, &s); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, s)
	}
	fmt.Fprintf(w, "version   %s (%s)\n", s.Version, s.Arch)
	if !s.Slots {
		fmt.Fprintf(w, "slots     none: %s\n", orDash(s.Problem))
		return nil
	}
	slot := func(label string, sl *api.Slot) {
		if sl == nil || sl.State == "empty" {
			fmt.Fprintf(w, "%-9s -\n", label)
			return
		}
		tries := ""
		if sl.State == "trial" {
			tries = fmt.Sprintf(", %d tries left", sl.TriesLeft)
		}
		fmt.Fprintf(w, "%-9s %s  %s (%s%s)\n", label, sl.Slot, sl.Version, sl.State, tries)
	}
	slot("booted", s.Booted)
	slot("other", s.Other)
	if u := s.LastUpdate; u != nil {
		fmt.Fprintf(w, "update    %s to slot %s: %s, %s", u.Version, u.Slot, u.State, u.Time.Local().Format(time.DateTime))
		if u.Message != "" {
			fmt.Fprintf(w, " (%s)", u.Message)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// update installs a bundle that is on the box: gatewayd reads it from its
// path (the socket is root's), so nothing is copied through gwctl.
func (c *client) update(w io.Writer, file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	var out api.Updated
	if err := c.do("POST", "/api/system/update", url.Values{"path": {abs}}, &out); err != nil {
		return err
	}
	fmt.Fprintf(w, "installed %s into slot %s: the box reboots into it now\n", out.Version, out.Slot)
	return nil
}

// systemAction posts to a route that ends in a reboot.
func (c *client) systemAction(w io.Writer, path, said string) error {
	if err := c.do("POST", path, nil, nil); err != nil {
		return err
	}
	fmt.Fprintln(w, said)
	return nil
}
