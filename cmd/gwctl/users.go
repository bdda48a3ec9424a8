package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/homebox/gateway/webui/api"
)

// users is `gwctl users ...`: the broker's users, its logins switch and
// device logins, the console's users page over SSH. Passwords come from
// stdin (typed twice, unseen, on a terminal), never from the command line.
func (c *client) users(w io.Writer, args []string, asJSON bool) error {
	if len(args) == 0 {
		var u api.Users
		if err := c.do("GET", "/api/broker/users", nil, &u); err != nil {
			return err
		}
		var l api.Logins
		if err := c.do("GET", "/api/broker/logins", nil, &l); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(w, struct {
				api.Users
				LoginsRequired bool `json:"logins_required"`
			}{u, l.Required})
		}
		state := "off: clients without a login get in"
		if l.Required {
			state = "required"
		}
		fmt.Fprintf(w, "logins: %s\npassword file: %s\nacl file: %s\n", state, orDash(u.PasswordFile), orDash(u.ACLFile))
		for _, name := range u.Users {
			fmt.Fprintln(w, "  "+name)
		}
		return nil
	}
	need := func(n int, form string) error {
		if len(args) != n {
			return usageError("usage: gwctl " + form)
		}
		return nil
	}
	switch args[0] {
	case "add", "passwd":
		if err := need(2, "users "+args[0]+" NAME < password"); err != nil {
			return err
		}
		pw, err := readPassword(os.Stdin, w, "password for "+args[1])
		if err != nil {
			return err
		}
		if err := c.send("POST", "/api/broker/users", api.UserInput{Username: args[1], Password: pw}, nil); err != nil {
			return err
		}
		fmt.Fprintf(w, "user %s saved; the broker runs with it\n", args[1])
	case "rm":
		if err := need(2, "users rm NAME"); err != nil {
			return err
		}
		if err := c.send("DELETE", "/api/broker/users/"+url.PathEscape(args[1]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(w, "user %s removed\n", args[1])
	case "device":
		if err := need(2, "users device NAME"); err != nil {
			return err
		}
		var d api.DeviceLogin
		if err := c.send("POST", "/api/broker/devices", api.DeviceInput{Name: args[1]}, &d); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(w, d)
		}
		fmt.Fprintf(w, "host:             %s\nport:             %d\nuser:             %s\npassword:         %s\ndiscovery prefix: %s\nacl:\n  %s\n",
			d.Host, d.Port, d.Username, d.Password, d.DiscoveryPrefix, strings.Join(d.ACL, "\n  "))
	case "require", "open":
		if err := need(1, "users require|open"); err != nil {
			return err
		}
		if err := c.send("PUT", "/api/broker/logins", api.LoginsInput{Required: args[0] == "require"}, nil); err != nil {
			return err
		}
		if args[0] == "require" {
			fmt.Fprintln(w, "logins are required now; the box's own clients keep working")
		} else {
			fmt.Fprintln(w, "anonymous clients get in again")
		}
	default:
		return usageError(fmt.Sprintf("unknown users command %q (add, passwd, rm, device, require, open)", args[0]))
	}
	return nil
}
