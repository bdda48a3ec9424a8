package mdns

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// A listing that fails (as netlink does for Android apps) is logged once,
// retried, and never stops the Follower. The fake listing never yields an
// interface with an address, so nothing is ever sent on the machine's
// own interfaces.
func TestFollowListingFails(t *testing.T) {
	var logs testkit.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	adv, err := newAdvertiser("testbox", nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower(FollowConfig{Hostname: "testbox", Rescan: 2 * time.Millisecond, Logger: logger, Interfaces: []string{"eth9"}}, adv)

	var mu sync.Mutex
	listings, addrCalls := 0, 0
	fake := net.Interface{Index: 1 << 20, Name: "eth9", Flags: net.FlagUp | net.FlagMulticast}
	f.listIfaces = func() ([]net.Interface, error) {
		mu.Lock()
		defer mu.Unlock()
		listings++
		switch {
		case listings <= 5:
			return nil, errors.New("route ip+net: netlinkrib: permission denied")
		case listings <= 10:
			return nil, nil // the named interface is not there yet
		default:
			return []net.Interface{fake}, nil
		}
	}
	f.addrsOf = func(net.Interface) ([]net.IP, error) {
		mu.Lock()
		defer mu.Unlock()
		addrCalls++
		if addrCalls <= 5 {
			return nil, errors.New("route ip+net: netlinkrib: permission denied")
		}
		return nil, nil // up, but no address yet
	}
	f.start()
	defer f.Close()
	testkit.WaitFor(t, 10*time.Second, "20 rescans", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return addrCalls >= 10
	})
	if got := f.Interfaces(); len(got) != 0 {
		t.Errorf("advertising on %v with no address", got)
	}
	out := logs.String()
	for _, want := range []string{
		"list interfaces failed", "list interfaces works again",
		"configured interface failed", "configured interface works again",
		"list addresses failed", "list addresses works again",
	} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("%q logged %d times, want once; log:\n%s", want, n, out)
		}
	}
}
