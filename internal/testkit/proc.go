package testkit

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// Alive is true while pid exists and is not a zombie. pid 1 on the test
// machines does not reap orphans, so a process that is gone may linger as
// a zombie: it counts as gone.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// RequireRoot skips a test that needs root, and fails it under CI (which
// runs as root), so such a test never silently skips there.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s needs root: run the tests as root (CI is set, so this is a failure, not a skip)", why)
	}
	t.Skipf("%s needs root (CI runs this as root)", why)
}
