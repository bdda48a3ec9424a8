package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/homebox/gateway/internal/testkit"
)

// The real binaries, built once for the whole test binary.
var gatewaydBin, gwctlBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "box-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := testkit.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "find module root:", err)
		return 1
	}
	gatewaydBin, gwctlBin = filepath.Join(dir, "gatewayd"), filepath.Join(dir, "gwctl")
	for bin, pkg := range map[string]string{gatewaydBin: "./cmd/gatewayd", gwctlBin: "./cmd/gwctl"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// writeConfig writes gateway.yaml under root.
func writeConfig(t *testing.T, root, yaml string) {
	t.Helper()
	p := filepath.Join(root, "etc/gateway/gateway.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}
