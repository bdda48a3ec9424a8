package image

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"time"
)

// WriteTarGz writes entries as a gzipped tar. Same entries and mtime, same
// bytes: entries in the given (sorted) order, owned by 0:0 "root", every
// time mtime, plain ustar headers (no atime/ctime, no PAX records), and a
// gzip header without name or time.
func WriteTarGz(w io.Writer, entries []Entry, mtime time.Time) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	// The zero Header means: no name, no comment, mtime 0.
	tw := tar.NewWriter(gz)
	mtime = mtime.UTC().Truncate(time.Second)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.Path,
			Mode:    int64(e.Mode.Perm()),
			Uid:     0,
			Gid:     0,
			Uname:   "root",
			Gname:   "root",
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		switch e.Kind {
		case Dir:
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		case File:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.Data))
		case Symlink:
			h.Typeflag = tar.TypeSymlink
			h.Linkname = e.Target
		default:
			return fmt.Errorf("tar %s: unknown kind %v", e.Path, e.Kind)
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", e.Path, err)
		}
		if e.Kind == File {
			if _, err := tw.Write(e.Data); err != nil {
				return fmt.Errorf("tar %s: %w", e.Path, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	return nil
}
