package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPasswordFromAPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { io.WriteString(w, "correct horse\r\nignored\n"); w.Close() }()
	pw, err := readPassword(r, io.Discard, "password")
	r.Close()
	if err != nil || pw != "correct horse" {
		t.Errorf("got %q %v", pw, err)
	}
	empty, err := os.Create(filepath.Join(t.TempDir(), "empty"))
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if _, err := readPassword(empty, io.Discard, "password"); err == nil || !strings.Contains(err.Error(), "stdin") {
		t.Errorf("empty stdin: %v", err)
	}
}
