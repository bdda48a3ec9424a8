package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homebox/gateway/internal/testkit"
)

// gwctl is the thin client of the API over SSH: it speaks the JSON
// contract (webui/api) and links none of the server's libraries. The Go
// toolchain's own vendored copy of x/crypto (under "vendor/", used by
// net/http's TLS) is part of the standard library and allowed.
func TestGwctlLinksNoServerLibrary(t *testing.T) {
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "./cmd/gwctl")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/labstack/echo", "github.com/mochi-mqtt/", "github.com/eclipse/paho",
		"github.com/hashicorp/mdns", "golang.org/x/crypto",
	}
	ours := map[string]bool{}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("gwctl links %s", pkg)
			}
		}
		if rest, ok := strings.CutPrefix(pkg, "github.com/homebox/gateway/"); ok {
			ours[rest] = true
		}
	}
	for pkg := range ours {
		switch pkg {
		case "cmd/gwctl", "webui/api", "internal/paths", "internal/version":
		default:
			t.Errorf("gwctl imports %s: it should need only the API's contract and plain types", pkg)
		}
	}
}

// The SSH client goes on boxes with little flash: the arm64 build stays
// under 5 MiB.
func TestGwctlArm64IsSmall(t *testing.T) {
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gwctl")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/gwctl")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() >= 5<<20 {
		t.Errorf("arm64 gwctl is %.1f MiB, over 5 MiB", float64(st.Size())/(1<<20))
	}
	t.Logf("arm64 gwctl: %.2f MiB", float64(st.Size())/(1<<20))
}
