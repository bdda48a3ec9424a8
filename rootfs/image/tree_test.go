package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testEpoch = time.Unix(1700000000, 0).UTC()

func TestTreeRefusesPathsOutsideAndConflicts(t *testing.T) {
	tr := NewTree()
	for _, p := range []string{"", ".", "..", "../etc/passwd", "/../x"} {
		if err := tr.AddFile(p, 0o644, nil); err == nil {
			t.Errorf("AddFile(%q) accepted", p)
		}
	}
	if err := tr.AddFile("etc/a", 0o644, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := tr.AddFile("/etc/a", 0o644, []byte("a")); err != nil {
		t.Errorf("the same file twice: %v", err)
	}
	err := tr.AddFile("etc/a", 0o644, []byte("b"))
	if err == nil || !strings.Contains(err.Error(), "etc/a") {
		t.Errorf("a file added twice with other content: %v", err)
	}
	if err := tr.AddFile("etc/a/b", 0o644, nil); err == nil || !strings.Contains(err.Error(), "parent etc/a is a file") {
		t.Errorf("a file under a file: %v", err)
	}
	if err := tr.AddSymlink("etc/l", ""); err == nil {
		t.Error("empty symlink target accepted")
	}
	// Parents appear, sorted before their content; an explicit dir mode wins.
	if err := tr.AddDir("etc", 0o750); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range tr.Entries() {
		got = append(got, e.Path+" "+e.Kind.String()+" "+e.Mode.String())
	}
	want := []string{"etc dir -rwxr-x---", "etc/a file -rw-r--r--"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("entries %q, want %q", got, want)
	}
}

func TestOverlayModesFromContentAndNoLinks(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string, mode os.FileMode) {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("embed.go", "package rootfs\n", 0o644)
	write("etc/init.d/x", "#!/bin/sh\n", 0o600) // a script, checked out without x bits
	write("etc/x.conf", "a = 1\n", 0o777)       // a conf, checked out with them
	write("etc/deep/folder/f", "f", 0o644)      // folders 0700 on disk
	tr := NewTree()
	if err := tr.AddOverlay(dir); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range tr.Entries() {
		got = append(got, e.Path+" "+e.Mode.String())
	}
	want := "etc -rwxr-xr-x|etc/deep -rwxr-xr-x|etc/deep/folder -rwxr-xr-x|etc/deep/folder/f -rw-r--r--|" +
		"etc/init.d -rwxr-xr-x|etc/init.d/x -rwxr-xr-x|etc/x.conf -rw-r--r--"
	if strings.Join(got, "|") != want {
		t.Errorf("overlay entries\n got %s\nwant %s", strings.Join(got, "|"), want)
	}

	if err := os.Symlink("x.conf", filepath.Join(dir, "etc/link")); err != nil {
		t.Fatal(err)
	}
	err := NewTree().AddOverlay(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "etc/link")) {
		t.Errorf("a symlink in the overlay: %v", err)
	}
}

func TestBoxTreeNeedsInitFilesAndMakesLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc/gateway"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := BoxTree(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "etc/systemd/system/gatewayd.service") {
		t.Fatalf("overlay without init files: %v", err)
	}

	// The repository's overlay has everything.
	tr, err := BoxTree("..", map[string][]byte{"gatewayd": []byte("elf"), "gwctl": []byte("elf")})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Entry{}
	for _, e := range tr.Entries() {
		byPath[e.Path] = e
	}
	for p, want := range map[string]string{
		"usr/bin/gatewayd":                    "file -rwxr-xr-x",
		"usr/bin/gwctl":                       "file -rwxr-xr-x",
		"etc/gateway/gateway.yaml":            "file -rw-r--r--",
		"etc/mosquitto/mosquitto.conf":        "file -rw-r--r--",
		"etc/systemd/system/gatewayd.service": "file -rw-r--r--",
		"etc/init.d/gatewayd":                 "file -rwxr-xr-x",
		"usr/share/gateway/openrc/gatewayd":   "file -rwxr-xr-x",
		"data":                                "dir -rwxr-xr-x",
		"var/log/gateway":                     "dir -rwxr-xr-x",
		"run/gateway":                         "dir -rwxr-xr-x",
		"etc/rc3.d/S02gatewayd":               "symlink ../init.d/gatewayd",
		"etc/rc0.d/K01gatewayd":               "symlink ../init.d/gatewayd",
		systemdWants:                          "symlink ../gatewayd.service",
		"embed.go":                            "",
		"seed.go":                             "",
	} {
		e, ok := byPath[p]
		got := ""
		if ok {
			got = e.Kind.String() + " " + e.Mode.String()
			if e.Kind == Symlink {
				got = "symlink " + e.Target
			}
		}
		if got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	for p := range byPath {
		if strings.HasPrefix(p, "data/") {
			t.Errorf("/data must be empty in the image, holds %s", p)
		}
	}
}

func TestTarGzIsDeterministicAndAnonymous(t *testing.T) {
	tr := NewTree()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.AddFile("usr/bin/b", 0o755, []byte("bin")))
	must(tr.AddFile("etc/a.conf", 0o644, []byte("conf")))
	must(tr.AddDir("data", 0o755))
	must(tr.AddSymlink("etc/l", "a.conf"))

	var one, two bytes.Buffer
	must(WriteTarGz(&one, tr.Entries(), testEpoch))
	must(WriteTarGz(&two, tr.Entries(), testEpoch))
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Fatal("two writes of the same tree differ")
	}
	var other bytes.Buffer
	must(WriteTarGz(&other, tr.Entries(), testEpoch.Add(time.Second)))
	if bytes.Equal(one.Bytes(), other.Bytes()) {
		t.Fatal("the epoch does not reach the archive")
	}

	raw := one.Bytes()
	// gzip header: flags (byte 3) carry no name or comment, mtime (4..7) is 0.
	if raw[3] != 0 || !bytes.Equal(raw[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip header % x: want no flags and mtime 0", raw[:10])
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	must(err)
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q mtime %v", zr.Name, zr.ModTime)
	}
	tarr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tarr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" {
			t.Errorf("%s: owner %d:%d %s:%s", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(testEpoch) || len(h.PAXRecords) != 0 {
			t.Errorf("%s: mtime %v pax %v", h.Name, h.ModTime, h.PAXRecords)
		}
	}
	want := "data/ etc/ etc/a.conf etc/l usr/ usr/bin/ usr/bin/b"
	if strings.Join(names, " ") != want {
		t.Errorf("tar order %q, want %q", strings.Join(names, " "), want)
	}
}

func TestBadOptionsWriteNothing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	base := Options{ModuleDir: "../..", OutDir: out, Version: "v1", Commit: "abc", Epoch: testEpoch, Arches: []Arch{Arches[2]}}
	for name, c := range map[string]struct {
		change func(*Options)
		want   string
	}{
		"version":  {func(o *Options) { o.Version = "v1/../x" }, `version "v1/../x"`},
		"commit":   {func(o *Options) { o.Commit = "" }, `commit ""`},
		"no epoch": {func(o *Options) { o.Epoch = time.Time{} }, "SOURCE_DATE_EPOCH"},
		"epoch":    {func(o *Options) { o.Epoch = time.Unix(-5, 0) }, "SOURCE_DATE_EPOCH -5"},
		"arch":     {func(o *Options) { o.Arches = []Arch{{Name: "mips"}} }, `unknown architecture "mips"`},
		"twice":    {func(o *Options) { o.Arches = []Arch{Arches[0], Arches[0]} }, "arm64 given twice"},
		"module":   {func(o *Options) { o.ModuleDir = t.TempDir() }, "no go.mod"},
		"tool":     {func(o *Options) { o.Mksquashfs = "no-such-mksquashfs" }, "no-such-mksquashfs not found (Debian package squashfs-tools)"},
	} {
		o := base
		c.change(&o)
		_, err := Build(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", name, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%s: the output folder was made: %v", name, err)
		}
	}
	if _, err := LookupArch("armv7"); err != nil {
		t.Error(err)
	}
	if got := Arches[1].Target(); got != "linux/arm/v7" {
		t.Errorf("armv7 target %q", got)
	}
}
