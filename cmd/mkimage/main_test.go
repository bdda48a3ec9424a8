package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The build itself is tested in fwimage, through this command as a child
// process; here: mistakes on the command line say what is wrong and write
// nothing.
func TestBadInputSaysWhatAndWritesNothing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	for _, c := range []struct {
		name  string
		epoch string
		args  []string
		code  int
		want  string
	}{
		{"arch", "1700000000", []string{"-arch", "arm64,mips"}, 2, `-arch: unknown architecture "mips" (known: arm64, armv7, amd64)`},
		{"epoch", "yesterday", nil, 1, `SOURCE_DATE_EPOCH "yesterday": not a number of seconds since 1970`},
		{"version", "1700000000", []string{"-version", "1.0/x"}, 1, `version "1.0/x": must be letters, digits`},
		{"argument", "1700000000", []string{"extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", c.epoch)
			var stdout, stderr bytes.Buffer
			args := append([]string{"-module", "../..", "-out", out, "-version", "v1", "-commit", "abc"}, c.args...)
			if code := run(args, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), c.code, c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s was made: %v", out, err)
			}
		})
	}
}
