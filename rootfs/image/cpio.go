package image

import (
	"compress/gzip"
	"fmt"
	"io"
	"time"
)

// cpio "newc" mode bits.
const (
	cpioDir  = 0o040000
	cpioFile = 0o100000
	cpioLink = 0o120000
	cpioChr  = 0o020000
)

// WriteInitramfs writes entries as a gzipped newc cpio archive, the format
// the kernel unpacks into its first root, plus the /dev/console device
// the kernel opens for /init's output before anything mounts devtmpfs.
// Written here rather than by cpio(1) so that inode numbers, times and
// owners are fixed by construction: same entries, same bytes.
func WriteInitramfs(w io.Writer, entries []Entry, mtime time.Time) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	cw := &cpioWriter{w: gz, mtime: mtime.Unix()}
	hasDev := false
	for _, e := range entries {
		var mode uint32
		var data []byte
		switch e.Kind {
		case Dir:
			mode = cpioDir
		case File:
			mode, data = cpioFile, e.Data
		case Symlink:
			mode, data = cpioLink, []byte(e.Target)
		}
		if err := cw.add(e.Path, mode|uint32(e.Mode.Perm()), data, 0, 0); err != nil {
			return err
		}
		if e.Path == "dev" {
			hasDev = true
		}
	}
	if !hasDev {
		if err := cw.add("dev", cpioDir|0o755, nil, 0, 0); err != nil {
			return err
		}
	}
	if err := cw.add("dev/console", cpioChr|0o600, nil, 5, 1); err != nil {
		return err
	}
	if err := cw.add("TRAILER!!!", 0, nil, 0, 0); err != nil {
		return err
	}
	return gz.Close()
}

type cpioWriter struct {
	w     io.Writer
	mtime int64
	ino   uint32
	off   int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.off % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) add(name string, mode uint32, data []byte, rmajor, rminor uint32) error {
	c.ino++
	nlink := 1
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	ino := c.ino
	if name == "TRAILER!!!" {
		ino = 0
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, uint32(c.mtime), len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	if err := c.write([]byte(hdr)); err != nil {
		return err
	}
	if err := c.write(append([]byte(name), 0)); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}
