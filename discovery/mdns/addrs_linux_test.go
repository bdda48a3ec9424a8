package mdns

import (
	"net/netip"
	"testing"
)

func TestParseIfInet6(t *testing.T) {
	data := []byte(`20010db8000000000000000000000001 02 40 00 40     eth0
20010db8000000000000000000000002 02 40 00 80     eth0
fe800000000000000000000000000001 02 40 20 c8     eth0
00000000000000000000000000000001 01 80 10 80       lo
garbage
`)
	got := parseIfInet6(data)
	want := map[ifAddr]bool{
		{index: 2, addr: netip.MustParseAddr("2001:db8::1")}: true, // tentative
		{index: 2, addr: netip.MustParseAddr("fe80::1")}:     true, // DAD failed
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("%v not found unusable in %v", k, got)
		}
	}
}
