package mdns

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"time"

	hmdns "github.com/hashicorp/mdns"
)

// BrowseTypes are the service types of the devices owners have: other
// brokers, ESPHome, Shelly, HomeKit accessories and web consoles.
var BrowseTypes = []string{"_mqtt._tcp", "_esphomelib._tcp", "_shelly._tcp", "_hap._tcp", "_http._tcp"}

// Entry is one service instance that answered.
type Entry struct {
	Type      string   // "_mqtt._tcp"
	Instance  string   // instance label, unescaped ("living-room plug")
	Name      string   // full instance name ("living-room\ plug._mqtt._tcp.local.")
	Host      string   // "plug.local."
	Addrs     []net.IP // IPv4 first
	Port      int
	TXT       []string
	Interface string
}

// Browser asks for service types on each interface, now and every Every.
type Browser struct {
	Interfaces []net.Interface
	Types      []string      // BrowseTypes when empty
	Every      time.Duration // between rounds; 5 minutes when zero
	Wait       time.Duration // how long each query listens; 2 s when zero
	Logger     *slog.Logger
	// Found receives every entry heard; it runs on the browser's goroutine.
	Found func(Entry)

	// follows, when set, skips interfaces no longer followed (Follower).
	follows func(net.Interface) bool
}

// Run browses until ctx ends.
func (b *Browser) Run(ctx context.Context) {
	every := b.Every
	if every <= 0 {
		every = 5 * time.Minute
	}
	for {
		b.Round(ctx)
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Round queries every type on every interface once.
func (b *Browser) Round(ctx context.Context) {
	types := b.Types
	if len(types) == 0 {
		types = BrowseTypes
	}
	logger := b.Logger
	if logger == nil {
		logger = slog.Default()
	}
	for _, ifi := range b.Interfaces {
		for _, typ := range types {
			if ctx.Err() != nil {
				return
			}
			if b.follows != nil && !b.follows(ifi) {
				break
			}
			if err := b.query(ctx, ifi, typ); err != nil {
				logger.Warn("mdns: browse failed", "interface", ifi.Name, "type", typ, "error", err)
			}
		}
	}
}

func (b *Browser) query(ctx context.Context, ifi net.Interface, typ string) error {
	v4, v6, err := families(ifi)
	if err != nil {
		return err
	}
	if !v4 && !v6 {
		return nil
	}
	wait := b.Wait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	// hashicorp/mdns drops entries when the channel is full: buffer plenty
	// and drain while the query runs.
	entries := make(chan *hmdns.ServiceEntry, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range entries {
			if b.Found != nil {
				b.Found(toEntry(e, typ, ifi.Name))
			}
		}
	}()
	iface := ifi
	err = hmdns.QueryContext(ctx, &hmdns.QueryParam{
		Service:     typ,
		Domain:      "local",
		Timeout:     wait,
		Interface:   &iface,
		Entries:     entries,
		DisableIPv4: !v4,
		DisableIPv6: !v6,
		Logger:      log.New(io.Discard, "", 0),
	})
	close(entries)
	<-done
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("query %s on %s: %w", typ, ifi.Name, err)
	}
	return nil
}

func toEntry(e *hmdns.ServiceEntry, typ, iface string) Entry {
	out := Entry{Type: typ, Name: e.Name, Host: e.Host, Port: e.Port, TXT: e.InfoFields, Interface: iface}
	suffix := "." + strings.Trim(typ, ".") + "." + domain
	inst := strings.TrimSuffix(e.Name, suffix)
	out.Instance = unescapeLabel(inst)
	if e.AddrV4 != nil {
		out.Addrs = append(out.Addrs, e.AddrV4)
	}
	if e.AddrV6IPAddr != nil {
		out.Addrs = append(out.Addrs, e.AddrV6IPAddr.IP)
	}
	return out
}

// unescapeLabel undoes DNS presentation escapes (\. \\ \032).
func unescapeLabel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n < 256 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
