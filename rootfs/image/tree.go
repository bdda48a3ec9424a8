package image

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Kind is what an Entry is.
type Kind int

// The kinds an image holds: nothing else (no devices, no hard links) so
// every format writes them the same way.
const (
	Dir Kind = iota
	File
	Symlink
)

func (k Kind) String() string {
	switch k {
	case Dir:
		return "dir"
	case File:
		return "file"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Entry is one path of the image. Owner and time are not fields: every
// entry is root:root and dated SOURCE_DATE_EPOCH, so no two builds differ
// by who or when.
type Entry struct {
	Path   string      // slash-separated, relative to /, e.g. "usr/bin/gatewayd"
	Kind   Kind        //
	Mode   fs.FileMode // permission bits only
	Data   []byte      // File content
	Target string      // Symlink target
}

// Tree is an image's content, built up in memory so that the tarball and
// the squashfs are written from the same list.
type Tree struct {
	entries map[string]Entry
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{entries: map[string]Entry{}} }

// cleanPath checks that p names a path inside the image.
func cleanPath(p string) (string, error) {
	c := path.Clean(strings.TrimPrefix(p, "/"))
	if p == "" || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("image path %q: not a path inside the image", p)
	}
	return c, nil
}

// add puts e in the tree with its parent folders (0755 unless already
// there). A path added twice with different content is an error: two
// sources disagreeing about a file is a packaging mistake, not a choice.
func (t *Tree) add(e Entry) error {
	p, err := cleanPath(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	e.Mode &= fs.ModePerm
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if old, ok := t.entries[dir]; ok {
			if old.Kind != Dir {
				return fmt.Errorf("image path %s: parent %s is a %s", p, dir, old.Kind)
			}
			continue
		}
		t.entries[dir] = Entry{Path: dir, Kind: Dir, Mode: 0o755}
	}
	if old, ok := t.entries[p]; ok {
		if old.Kind == Dir && e.Kind == Dir {
			t.entries[p] = e // an explicit mode wins over the implied 0755
			return nil
		}
		if old.Kind != e.Kind || old.Mode != e.Mode || old.Target != e.Target || !bytes.Equal(old.Data, e.Data) {
			return fmt.Errorf("image path %s: added twice with different content", p)
		}
	}
	t.entries[p] = e
	return nil
}

// AddDir adds a folder.
func (t *Tree) AddDir(p string, mode fs.FileMode) error {
	return t.add(Entry{Path: p, Kind: Dir, Mode: mode})
}

// AddFile adds a regular file.
func (t *Tree) AddFile(p string, mode fs.FileMode, data []byte) error {
	return t.add(Entry{Path: p, Kind: File, Mode: mode, Data: data})
}

// AddSymlink adds a symbolic link.
func (t *Tree) AddSymlink(p, target string) error {
	if target == "" {
		return fmt.Errorf("image path %s: empty symlink target", p)
	}
	return t.add(Entry{Path: p, Kind: Symlink, Mode: 0o777, Target: target})
}

// Entries are the tree's entries sorted by path. A folder sorts before
// what it holds because a prefix sorts before its extensions.
func (t *Tree) Entries() []Entry {
	out := make([]Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// AddOverlay adds the files under dir (the repository's rootfs/) as they
// will sit under /. Go sources (the package that embeds the overlay) are
// left out. Modes come from the content, not from the checkout, whose
// modes depend on the umask: a file starting with "#!" is 0755, any other
// 0644, folders 0755. Anything but files and folders is refused.
func (t *Tree) AddOverlay(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("overlay %s: %w", dir, err)
		}
		if p == "." {
			return nil
		}
		where := filepath.Join(dir, filepath.FromSlash(p))
		switch {
		case d.IsDir():
			return t.AddDir(p, 0o755)
		case d.Type().IsRegular():
			if strings.HasSuffix(p, ".go") {
				return nil
			}
			data, err := root.ReadFile(p)
			if err != nil {
				return fmt.Errorf("overlay: %w", err)
			}
			mode := fs.FileMode(0o644)
			if bytes.HasPrefix(data, []byte("#!")) {
				mode = 0o755
			}
			return t.AddFile(p, mode, data)
		default:
			return fmt.Errorf("overlay %s: a %v; the overlay holds only files and folders (links are made by the build)", where, d.Type())
		}
	})
}
