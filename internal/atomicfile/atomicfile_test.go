package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesAtomicallyAndKeepsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(p, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new\n"), 0); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "new\n" || st.Mode().Perm() != 0o640 {
		t.Fatalf("got %q mode %v", b, st.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if err := Write(filepath.Join(dir, "no-such-dir", "x"), []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), "no-such-dir") {
		t.Errorf("write into a missing folder: %v", err)
	}
}
