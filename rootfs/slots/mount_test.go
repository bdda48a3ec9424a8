package slots

import (
	"strings"
	"testing"
)

// The kernel here has no vfat (the qemu test mounts the real ESP): what
// runs here is the check that keeps a mounted ESP as it is, and the error
// when mounting fails.
func TestMountESP(t *testing.T) {
	if ok, err := isMountPoint("/proc"); err != nil || !ok {
		t.Fatalf("/proc: %v %v", ok, err)
	}
	f := newFixture(t)
	if ok, err := isMountPoint(f.ESP); err != nil || ok {
		t.Fatalf("%s: %v %v", f.ESP, ok, err)
	}
	// Mounted already: left alone.
	if err := mountESP(&Box{ESP: "/proc"}); err != nil {
		t.Fatal(err)
	}
	// vda1 is a regular file, not a block device with a FAT on it.
	err := mountESP(f.Box)
	if err == nil || !strings.Contains(err.Error(), "the ESP: mount "+f.DevDir+"/vda1 (vfat) at "+f.ESP+": ") {
		t.Fatalf("mount: %v", err)
	}
}
