package webui

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxLogRead bounds what one answer reads of a log, whatever it asks for.
const maxLogRead = 4 << 20

// tail returns the last n lines of file and its size. A file not there yet
// (an app that never printed) is empty, not an error.
func tail(file string, n int) ([]string, int64, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	if n == 0 {
		return []string{}, size, nil
	}
	// Read backwards in chunks until n+1 newlines are in hand.
	const chunk = 32 << 10
	var buf []byte
	pos := size
	for pos > 0 && bytes.Count(buf, []byte{'\n'}) <= n && int64(len(buf)) < maxLogRead {
		step := min(int64(chunk), pos)
		pos -= step
		part := make([]byte, step)
		if _, err := f.ReadAt(part, pos); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		buf = append(part, buf...)
	}
	lines := splitLines(buf)
	if pos > 0 && len(lines) > 0 {
		lines = lines[1:] // the first one is cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, size, nil
}

// readSince returns the lines written after offset, at most max of them.
// A file now shorter than offset was rotated: read the new one from its
// start. Only whole lines are returned; the offset stops before a partial one.
func readSince(file string, offset int64, max int) ([]string, int64, bool, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, 0, offset > 0, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, false, err
	}
	rotated := st.Size() < offset
	if rotated {
		offset = 0
	}
	want := min(st.Size()-offset, maxLogRead)
	buf := make([]byte, want)
	got, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, false, err
	}
	buf = buf[:got]
	end := bytes.LastIndexByte(buf, '\n') + 1
	buf = buf[:end]
	lines := splitLines(buf)
	if len(lines) > max {
		// Keep the newest; the reader asked to follow, not to replay.
		lines = lines[len(lines)-max:]
	}
	return lines, offset + int64(end), rotated, nil
}

func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\n")
}
