package mdns

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Address flags from linux/if_addr.h, as /proc/net/if_inet6 shows them.
const (
	ifaFDADFailed = 0x08
	ifaFTentative = 0x40
)

type ifAddr struct {
	index int
	addr  netip.Addr
}

// unusableV6 lists the IPv6 addresses the kernel will not send from: still
// in duplicate address detection (sendto fails with "cannot assign requested
// address", as seen at boot) or found duplicate. Go's Addrs does not say;
// leaving them out makes such an address "appear" once it becomes usable.
// Unreadable (some Android builds): nothing is left out.
func unusableV6() map[ifAddr]bool {
	data, err := os.ReadFile("/proc/net/if_inet6")
	if err != nil {
		return nil
	}
	return parseIfInet6(data)
}

// parseIfInet6 reads lines of "address ifindex prefixlen scope flags name",
// all but the name in hex.
func parseIfInet6(data []byte) map[ifAddr]bool {
	out := map[ifAddr]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		b, err := hex.DecodeString(f[0])
		if err != nil || len(b) != 16 {
			continue
		}
		index, err1 := strconv.ParseUint(f[1], 16, 32)
		flags, err2 := strconv.ParseUint(f[4], 16, 32)
		if err1 != nil || err2 != nil || flags&(ifaFTentative|ifaFDADFailed) == 0 {
			continue
		}
		out[ifAddr{index: int(index), addr: netip.AddrFrom16([16]byte(b))}] = true
	}
	return out
}
