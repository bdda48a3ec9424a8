package mosquittoconf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse holds the properties the console relies on, for any bytes:
// the document gives its input back unchanged, Check never panics and
// returns a config exactly when there is no error, every message points
// at a line that exists, and a bridge written back unchanged keeps its
// meaning. The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listener 1883\nprotocol mqtt\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		d := ParseDocument("f.conf", data)
		if got := d.Bytes(); !bytes.Equal(got, data) {
			t.Fatalf("round trip: got %q, want %q", got, data)
		}
		cfg, ds := Check("f.conf", data, dir)
		if (cfg == nil) == ds.OK() {
			t.Fatalf("config %v with errors %v", cfg, ds.Errors)
		}
		for _, m := range append(append([]Diagnostic(nil), ds.Errors...), ds.Warnings...) {
			if m.Pos.File == "f.conf" && (m.Pos.Line < 1 || m.Pos.Line > len(d.Lines)) {
				t.Fatalf("%v: line outside the file (%d lines)", m, len(d.Lines))
			}
		}
		if cfg == nil || len(cfg.Bridges) == 0 || cfg.Bridges[0].Pos.File != "f.conf" {
			return
		}
		b := cfg.Bridges[0]
		if err := d.UpsertBridge(b); err != nil {
			return // values that cannot be written as conf words
		}
		cfg2, ds2 := Check("f.conf", d.Bytes(), dir)
		if !ds2.OK() {
			t.Fatalf("after writing back bridge %q: %v\n%q", b.Name, ds2.Err(), d.Bytes())
		}
		for _, b2 := range cfg2.Bridges {
			if b2.Name == b.Name {
				sameBridge(t, b2, b)
				return
			}
		}
		t.Fatalf("bridge %q lost", b.Name)
	})
}

// BenchmarkCheck measures checking the shipped conf file, as the console
// does on every Check press.
func BenchmarkCheck(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "rootfs", "etc", "mosquitto", "mosquitto.conf"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ds := Check("mosquitto.conf", data, ""); !ds.OK() {
			b.Fatal(ds.Err())
		}
	}
}
