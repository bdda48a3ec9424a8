package supervisor

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Log size defaults: the box writes to flash, so logs stay small.
const (
	DefaultLogMaxBytes = 1 << 20
	DefaultLogFiles    = 3
)

// rotatingWriter keeps a log within files × maxBytes: path, path.1, ...
// path.(files-1), oldest last. Writes are cut at line ends, so a rotated
// file ends with a whole line; only a single line longer than maxBytes makes
// a file larger than maxBytes.
type rotatingWriter struct {
	path     string
	maxBytes int64
	files    int

	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool
}

// NewRotatingWriter returns a writer appending to path and rotating it by
// size. maxBytes <= 0 and files <= 0 take the defaults (1 MiB, 3 files).
// The folder is created and the file opened on the first write, so errors
// show up there. It is safe for concurrent use.
func NewRotatingWriter(path string, maxBytes int64, files int) io.WriteCloser {
	if maxBytes <= 0 {
		maxBytes = DefaultLogMaxBytes
	}
	if files <= 0 {
		files = DefaultLogFiles
	}
	return &rotatingWriter{path: path, maxBytes: maxBytes, files: files}
}

func (w *rotatingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("log %s: %w", w.path, os.ErrClosed)
	}
	if err := w.open(); err != nil {
		return 0, err
	}
	total := len(p)
	for len(p) > 0 {
		room := w.maxBytes - w.size
		if int64(len(p)) <= room {
			if err := w.write(p); err != nil {
				return total - len(p), err
			}
			break
		}
		// Take the whole lines that still fit; if none does, start a new
		// file, unless this one is empty (then the long line goes in whole).
		cut := 0
		if room > 0 {
			cut = bytes.LastIndexByte(p[:room], '\n') + 1
		}
		if cut == 0 {
			if w.size > 0 {
				if err := w.rotate(); err != nil {
					return total - len(p), err
				}
				continue
			}
			if cut = bytes.IndexByte(p, '\n') + 1; cut == 0 {
				cut = len(p)
			}
		}
		if err := w.write(p[:cut]); err != nil {
			return total - len(p), err
		}
		p = p[cut:]
		if len(p) > 0 {
			if err := w.rotate(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (w *rotatingWriter) write(p []byte) error {
	n, err := w.f.Write(p)
	w.size += int64(n)
	if err != nil {
		// Reopen on the next write: the file may have been removed or the
		// disk may have room again.
		w.f.Close()
		w.f = nil
		return fmt.Errorf("log %s: %w", w.path, err)
	}
	return nil
}

func (w *rotatingWriter) open() error {
	if w.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
		return fmt.Errorf("log folder: %w", err)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening log: %w", err)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// rotate shifts path.N-1 → path.N ... path → path.1 and starts path afresh.
func (w *rotatingWriter) rotate() error {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if w.files <= 1 {
		if err := os.Truncate(w.path, 0); err != nil {
			return fmt.Errorf("rotating log: %w", err)
		}
	} else {
		for i := w.files - 1; i >= 1; i-- {
			from := w.path
			if i > 1 {
				from = fmt.Sprintf("%s.%d", w.path, i-1)
			}
			if err := os.Rename(from, fmt.Sprintf("%s.%d", w.path, i)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("rotating log: %w", err)
			}
		}
	}
	return w.open()
}

func (w *rotatingWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
