package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/atomicfile"
	"github.com/homebox/gateway/internal/paths"
)

// loopbackListeners rewrites a freshly seeded mosquitto.conf so that every
// listener with no bind address binds 127.0.0.1: `make run` on a laptop in
// a café must not offer an anonymous broker to the café's Wi-Fi. Only the
// shipped default is changed (the caller passes a file it just wrote); an
// owner who binds elsewhere in their own copy is told otherwise and kept.
func loopbackListeners(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := mosquittoconf.ParseDocument(path, data)
	changed := false
	for i, l := range doc.Lines {
		if l.Option == "listener" && len(l.Words()) == 1 {
			doc.Lines[i].Raw = strings.TrimRight(l.Raw, " \t") + " 127.0.0.1"
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return atomicfile.Write(path, doc.Bytes(), 0)
}

// brokerListeners says where the broker listens, from the conf in force:
// "mqtt 127.0.0.1:1883", "websockets *:9001".
func brokerListeners(root string) ([]string, error) {
	at := paths.Root(root)
	cfg, diags := mosquittoconf.Load(at.Join(paths.MosquittoConf))
	if !diags.OK() || cfg == nil {
		return nil, diags.Err()
	}
	var out []string
	for _, l := range cfg.Listeners {
		host := l.Address
		if host == "" {
			host = "*"
		}
		kind := l.Protocol
		if l.TLS() {
			kind += "+tls"
		}
		out = append(out, fmt.Sprintf("%-10s %s", kind, net.JoinHostPort(host, strconv.Itoa(l.Port))))
	}
	return out, nil
}

// printListeners writes the banner's broker lines.
func printListeners(w io.Writer, root string) {
	ls, err := brokerListeners(root)
	if err != nil {
		fmt.Fprintf(w, "  broker:   mosquitto.conf has mistakes: %v\n", err)
		return
	}
	for i, l := range ls {
		label := "broker:"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "  %-9s %s\n", label, l)
	}
}
