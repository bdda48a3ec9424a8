package rootfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/homebox/gateway/internal/paths"
)

func TestSeedWritesOnceAndNeverOverwrites(t *testing.T) {
	root := t.TempDir()
	var shipped []string
	if err := fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			shipped = append(shipped, filepath.Join(root, p))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(shipped) == 0 {
		t.Fatal("the overlay is empty")
	}

	// An owner's edit made before the first start must survive it.
	conf := filepath.Join(root, "etc/gateway/gateway.yaml")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("# mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	wrote, err := Seed(root)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(slices.Clone(shipped), func(p string) bool { return p == conf })
	slices.Sort(wrote)
	slices.Sort(want)
	if !slices.Equal(wrote, want) {
		t.Errorf("wrote %v\nwant %v", wrote, want)
	}
	for _, p := range want {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		orig, _ := FS.ReadFile(filepath.ToSlash(p[len(root)+1:]))
		if string(got) != string(orig) {
			t.Errorf("%s differs from the overlay", p)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v", p, st.Mode())
		}
	}
	if b, _ := os.ReadFile(conf); string(b) != "# mine\n" {
		t.Errorf("the owner's gateway.yaml was overwritten: %q", b)
	}
	for _, d := range paths.Folders {
		if st, err := os.Stat(filepath.Join(root, d)); err != nil || !st.IsDir() {
			t.Errorf("folder %s: %v", d, err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, "etc/*/.seed-*"))
	if len(leftovers) != 0 {
		t.Errorf("temp files left: %v", leftovers)
	}

	again, err := Seed(root)
	if err != nil || len(again) != 0 {
		t.Errorf("second seed wrote %v, %v; want nothing", again, err)
	}
}

func TestSeedReportsUnwritableRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(root, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Seed(root); err == nil {
		t.Fatal("seeding under a regular file succeeded")
	}
}
