package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/homebox/gateway/webui/api"

	"golang.org/x/sys/unix"
)

// consolePassword sets the console's admin password over the root-only
// socket. The password comes from stdin: typed twice, unseen, on a
// terminal; the first line otherwise (for scripts).
func (c *client) consolePassword(stdin *os.File, w io.Writer) error {
	pw, err := readPassword(stdin, w, "new console password")
	if err != nil {
		return err
	}
	if err := c.send("POST", "/api/console/password", map[string]string{"password": pw}, nil); err != nil {
		return err
	}
	fmt.Fprintln(w, "console password set; every console session was ended")
	return nil
}

// readPassword reads a password: typed twice, unseen, on a terminal; the
// first line otherwise (for scripts).
func readPassword(in *os.File, w io.Writer, what string) (string, error) {
	fd := int(in.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil { // not a terminal: one line
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			return "", errors.New("give the " + what + " on stdin")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	r := bufio.NewReader(in)
	ask := func(prompt string) (string, error) {
		fmt.Fprint(w, prompt)
		line, err := r.ReadString('\n')
		fmt.Fprintln(w)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	a, err := ask(what + ": ")
	if err != nil {
		return "", err
	}
	b, err := ask("again: ")
	if err != nil {
		return "", err
	}
	if a != b {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return a, nil
}

// devices prints discovery's registry.
func (c *client) devices(w io.Writer, asJSON bool) error {
	var list []api.Device
	if err := c.do("GET", "/api/devices", nil, &list); err != nil {
		return err
	}
	if asJSON {
		if list == nil {
			list = []api.Device{}
		}
		return writeJSON(w, list)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODEL\tSOURCE\tADDRESS\tAVAILABILITY\tLAST SEEN")
	for _, d := range list {
		seen := "-"
		if !d.LastSeen.IsZero() {
			seen = time.Since(d.LastSeen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(d.Name), orDash(d.Model), orDash(strings.Join(d.Sources, ",")),
			orDash(d.Address), orDash(d.Availability), seen)
	}
	return tw.Flush()
}
