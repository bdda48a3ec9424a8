package slots

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEntryNames(t *testing.T) {
	tests := []struct {
		name  string
		ok    bool
		want  Entry
		state string
	}{
		{"gateway-a.conf", true, Entry{Slot: A}, "good"},
		{"gateway-b+3.conf", true, Entry{Slot: B, Counting: true, Left: 3}, "trial"},
		{"gateway-b+2-1.conf", true, Entry{Slot: B, Counting: true, Left: 2, Done: 1}, "trial"},
		{"gateway-b+0-3.conf", true, Entry{Slot: B, Counting: true, Left: 0, Done: 3}, "bad"},
		{"gateway-a+0.conf", true, Entry{Slot: A, Counting: true}, "bad"},
		{"gateway-c.conf", false, Entry{}, ""},
		{"gateway-a.conf.tmp", false, Entry{}, ""},
		{".entry-123.tmp", false, Entry{}, ""},
		{"debian-6.1.conf", false, Entry{}, ""},
		{"gateway-a+x.conf", false, Entry{}, ""},
	}
	for _, tc := range tests {
		e, ok := ParseEntryName(tc.name)
		if ok != tc.ok || e != tc.want {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, e, ok, tc.want, tc.ok)
			continue
		}
		if ok && (e.Name() != tc.name || e.State() != tc.state) {
			t.Errorf("%s: name back %s, state %s", tc.name, e.Name(), e.State())
		}
	}
}

func TestSlotOptions(t *testing.T) {
	tests := []struct{ in, want string }{
		{"root=PARTLABEL=rootA gateway.slot=a ro console=ttyAMA0 quiet", "root=PARTLABEL=rootB gateway.slot=b ro console=ttyAMA0 quiet"},
		{"console=ttyS0 rw root=/dev/sda2", "root=PARTLABEL=rootB gateway.slot=b ro console=ttyS0"},
		{"", "root=PARTLABEL=rootB gateway.slot=b ro"},
		{"quiet ro ro gateway.slot=a panic=10", "root=PARTLABEL=rootB gateway.slot=b quiet ro panic=10"},
	}
	for _, tc := range tests {
		if got := SlotOptions(tc.in, B); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseEntry(t *testing.T) {
	e := Entry{Slot: B, Version: "1.4.0+rc1", Serial: 1764860000, Options: "quiet", Counting: true, Left: 3}
	got, err := ParseEntry(e.Name(), e.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "1.4.0+rc1" || got.Serial != 1764860000 || got.Options != "root=PARTLABEL=rootB gateway.slot=b ro quiet" || got.Title != "Gateway 1.4.0+rc1 (slot B)" {
		t.Fatalf("%+v", got)
	}
	// An entry someone edited by hand keeps working; its version falls
	// back to the serial.
	got, err = ParseEntry("gateway-a.conf", []byte("# mine\ntitle My gateway\nversion 7\noptions quiet\n"))
	if err != nil || got.Version != "7" || got.Title != "My gateway" {
		t.Fatalf("%+v %v", got, err)
	}
	for _, tc := range []struct{ name, data, msg string }{
		{"gateway-a.conf", "title x\nversion 1.4\n", `gateway-a.conf line 2: version "1.4": want the build's serial`},
		{"gateway-a.conf", "title x\n", "gateway-a.conf: no version line"},
		{"other.conf", "version 1\n", "other.conf: not a gateway slot entry"},
	} {
		if _, err := ParseEntry(tc.name, []byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want %q", tc.data, err, tc.msg)
		}
	}
}

func TestTwoEntriesForOneSlot(t *testing.T) {
	f := newFixture(t)
	write(t, filepath.Join(f.ESP, EntriesDir, "gateway-a+3.conf"), read(t, filepath.Join(f.ESP, EntriesDir, "gateway-a.conf")))
	_, err := f.Status()
	if err == nil || !strings.Contains(err.Error(), "has two entries for slot A, gateway-a+3.conf and gateway-a.conf: remove the wrong one by hand") {
		t.Fatalf("status: %v", err)
	}
}

func TestDevice(t *testing.T) {
	f := newFixture(t)
	if dev, err := f.Device("rootB"); err != nil || dev != filepath.Join(f.DevDir, "vda3") {
		t.Fatalf("rootB: %s %v", dev, err)
	}
	if _, err := f.Device("rootC"); err == nil || !strings.Contains(err.Error(), "no partition labelled rootC (PARTNAME=rootC in") {
		t.Fatalf("rootC: %v", err)
	}
	// A second gateway disk plugged in.
	write(t, filepath.Join(f.SysBlock, "sda3/uevent"), "DEVNAME=sda3\nDEVTYPE=partition\nPARTNAME=rootB\n")
	if _, err := f.Device("rootB"); err == nil || !strings.Contains(err.Error(), "2 partitions labelled rootB") || !strings.Contains(err.Error(), "unplug the other gateway disk") {
		t.Fatalf("two rootB: %v", err)
	}
}

func TestFactoryReset(t *testing.T) {
	f := newFixture(t)
	data := filepath.Join(f.Root, DataDir)
	write(t, filepath.Join(data, "gateway/devices.json"), "{}")
	write(t, filepath.Join(data, "mosquitto/mosquitto.conf"), "listener 1883\n")
	write(t, filepath.Join(data, ".ssh/authorized_keys"), "ssh-ed25519 AAAA")
	write(t, filepath.Join(data, "lost+found/#12"), "kept")
	if did, err := ApplyFactoryReset(f.Root); err != nil || did {
		t.Fatalf("no reset asked: %v %v", did, err)
	}
	if err := f.FactoryReset(); err != nil {
		t.Fatal(err)
	}
	if f.reboots.Load() != 1 || !ResetPending(f.Root) {
		t.Fatalf("%d reboots, pending %v", f.reboots.Load(), ResetPending(f.Root))
	}
	// Nothing is wiped before the reboot.
	if read(t, filepath.Join(data, "gateway/devices.json")) != "{}" {
		t.Fatal("wiped before the reboot")
	}
	if did, err := ApplyFactoryReset(f.Root); err != nil || !did {
		t.Fatalf("apply: %v %v", did, err)
	}
	des, _ := os.ReadDir(data)
	if len(des) != 1 || des[0].Name() != "lost+found" || read(t, filepath.Join(data, "lost+found/#12")) != "kept" {
		t.Fatalf("left after the wipe: %v", des)
	}
	if did, err := ApplyFactoryReset(f.Root); err != nil || did {
		t.Fatalf("second apply: %v %v", did, err)
	}
	// The slots are untouched: the box boots the same version.
	if st := f.status(t); st.Booted.Version != "1.0.0" || st.LastUpdate != nil {
		t.Fatalf("%+v", st)
	}
}
