package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testParts(sizes ...int) []Part {
	if len(sizes) == 0 {
		sizes = []int{5000, 700, 300}
	}
	var parts []Part
	for i, n := range sizes {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(i*31 + j*7)
		}
		parts = append(parts, Part{Name: PartNames[i], Size: int64(n), R: bytes.NewReader(data)})
	}
	return parts
}

func build(t testing.TB, m Manifest, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, m, testParts(), key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var m1 = Manifest{Version: "1.4.0", Serial: 1764860000, Arch: "arm64"}

func open(b []byte, trusted ...ed25519.PublicKey) (*Bundle, error) {
	return Open(bytes.NewReader(b), int64(len(b)), trusted, "arm64")
}

func TestRoundTrip(t *testing.T) {
	key := testKey(t, 1)
	other := testKey(t, 2)
	data := build(t, m1, key)
	b, err := open(data, other.Public().(ed25519.PublicKey), key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if b.KeyIndex != 1 || b.Manifest.Version != "1.4.0" || b.Manifest.Serial != m1.Serial || b.Manifest.Arch != "arm64" {
		t.Fatalf("manifest %+v, key %d", b.Manifest, b.KeyIndex)
	}
	for i, p := range testParts() {
		got, err := io.ReadAll(b.Part(p.Name))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(io.NewSectionReader(p.R, 0, p.Size))
		if !bytes.Equal(got, want) {
			t.Fatalf("part %d %s: bytes differ", i, p.Name)
		}
		if sum := sha256.Sum256(want); b.Info(p.Name).SHA256 != hexs(sum[:]) {
			t.Fatalf("part %s: hash %s", p.Name, b.Info(p.Name).SHA256)
		}
	}
	// Deterministic: same inputs, same bytes.
	if again := build(t, m1, key); !bytes.Equal(again, data) {
		t.Fatal("two writes of the same inputs differ")
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func reason(t *testing.T, err error) string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *bundle.Error", err, err)
	}
	return e.Reason
}

func TestRefused(t *testing.T) {
	key := testKey(t, 1)
	pub := key.Public().(ed25519.PublicKey)
	good := build(t, m1, key)
	manifestEnd := headerSize + int(be32(good[12:]))

	tests := []struct {
		name   string
		data   func() []byte
		arch   string
		trust  []ed25519.PublicKey
		reason string
		msg    string
	}{
		{"other key", func() []byte { return good }, "arm64", []ed25519.PublicKey{testKey(t, 2).Public().(ed25519.PublicKey)}, ReasonSignature, "bad signature: not signed by any of the 1 update key(s)"},
		{"no keys", func() []byte { return good }, "arm64", nil, ReasonSignature, "any of the 0 update key(s)"},
		{"other arch", func() []byte { return build(t, Manifest{Version: "1.4.0", Serial: 5, Arch: "amd64"}, key) }, "arm64", nil, ReasonArch, "bundle 1.4.0 is for amd64, this gateway is arm64"},
		{"empty", func() []byte { return nil }, "arm64", nil, ReasonFormat, "not a gateway update bundle (0 bytes"},
		{"not a bundle", func() []byte {
			return []byte("<html>404 not found</html>... long enough to pass the header size check, surely, yes indeed it is now")
		}, "arm64", nil, ReasonFormat, `no "GWUPDATE" header`},
		{"header cut", func() []byte { return good[:40] }, "arm64", nil, ReasonTruncated, "truncated: 40 bytes, shorter than the 80-byte header"},
		{"manifest cut", func() []byte { return good[:manifestEnd-1] }, "arm64", nil, ReasonTruncated, "the manifest alone ends at byte"},
		{"one byte short", func() []byte { return good[:len(good)-1] }, "arm64", nil, ReasonTruncated, "(1 missing)"},
		{"half", func() []byte { return good[:len(good)/2] }, "arm64", nil, ReasonTruncated, "truncated:"},
		{"trailing", func() []byte { return append(append([]byte{}, good...), 0) }, "arm64", nil, ReasonTruncated, "1 bytes after the end of bundle 1.4.0"},
		{"format 2", func() []byte { d := append([]byte{}, good...); d[11] = 2; return d }, "arm64", nil, ReasonFormat, "bundle format 2: this gateway reads format 1"},
		{"huge manifest", func() []byte { d := append([]byte{}, good...); d[12] = 0x7f; return d }, "arm64", nil, ReasonFormat, "manifest length"},
		{"rootfs flipped", func() []byte { d := append([]byte{}, good...); d[manifestEnd+10] ^= 1; return d }, "arm64", nil, ReasonHash, "part rootfs.squashfs (bytes"},
		{"initrd flipped", func() []byte { d := append([]byte{}, good...); d[len(d)-1] ^= 0x80; return d }, "arm64", nil, ReasonHash, "part initrd.img"},
		{"signature flipped", func() []byte { d := append([]byte{}, good...); d[20] ^= 1; return d }, "arm64", nil, ReasonSignature, "bad signature"},
		{"manifest flipped", func() []byte { d := append([]byte{}, good...); d[headerSize+5] ^= 1; return d }, "arm64", nil, ReasonSignature, "bad signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trust := tc.trust
			if trust == nil && tc.reason != ReasonSignature {
				trust = []ed25519.PublicKey{pub}
			}
			d := tc.data()
			_, err := Open(bytes.NewReader(d), int64(len(d)), trust, tc.arch)
			if err == nil {
				t.Fatal("opened")
			}
			if r := reason(t, err); r != tc.reason {
				t.Errorf("reason %s, want %s (%v)", r, tc.reason, err)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "update bundle refused: ") {
				t.Errorf("error %q, want it to say %q", err, tc.msg)
			}
		})
	}
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Every truncation and every single flipped bit is refused: the signature
// covers the manifest, the manifest covers every part's bytes.
func TestEveryDamageRefused(t *testing.T) {
	key := testKey(t, 1)
	pub := key.Public().(ed25519.PublicKey)
	var buf bytes.Buffer
	if err := Write(&buf, m1, testParts(300, 40, 20), key); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for n := range len(good) {
		if _, err := open(good[:n], pub); err == nil {
			t.Fatalf("truncated to %d of %d bytes: opened", n, len(good))
		} else {
			reason(t, err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range len(good) {
		d := append([]byte{}, good...)
		d[i] ^= 1 << r.IntN(8)
		if _, err := open(d, pub); err == nil {
			t.Fatalf("byte %d flipped: opened", i)
		} else {
			reason(t, err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	key := testKey(f, 1)
	pub := key.Public().(ed25519.PublicKey)
	var buf bytes.Buffer
	if err := Write(&buf, m1, testParts(100, 10, 10), key); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("GWUPDATE"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Open(bytes.NewReader(data), int64(len(data)), []ed25519.PublicKey{pub}, "arm64")
		if err != nil {
			reason(t, err)
			return
		}
		// Only the one signed bundle opens.
		if !bytes.Equal(data, buf.Bytes()) || b.Manifest.Version != "1.4.0" {
			t.Fatalf("opened %d bytes that are not the signed bundle", len(data))
		}
	})
}

func TestWriteChecks(t *testing.T) {
	key := testKey(t, 1)
	tests := []struct {
		name  string
		m     Manifest
		parts []Part
		key   ed25519.PrivateKey
		msg   string
	}{
		{"no key", m1, testParts(), nil, "signing key is 0 bytes"},
		{"bad version", Manifest{Version: "1.4 beta", Serial: 1, Arch: "arm64"}, testParts(), key, `version "1.4 beta"`},
		{"no serial", Manifest{Version: "1", Arch: "arm64"}, testParts(), key, "serial 0"},
		{"bad arch", Manifest{Version: "1", Serial: 1, Arch: "ARM/64"}, testParts(), key, `arch "ARM/64"`},
		{"two parts", m1, testParts()[:2], key, "2 parts: want 3"},
		{"order", m1, []Part{testParts()[1], testParts()[0], testParts()[2]}, key, `part 1 is "vmlinuz": want "rootfs.squashfs"`},
		{"short part", m1, []Part{{Name: RootFS, Size: 10, R: bytes.NewReader([]byte("abc"))}, testParts()[1], testParts()[2]}, key, "part rootfs.squashfs: read 3 bytes, want 10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tc.m, tc.parts, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %q", err, tc.msg)
			}
			if buf.Len() != 0 {
				t.Fatalf("wrote %d bytes before refusing", buf.Len())
			}
		})
	}
}

// Keys made with openssl, as a release signer would, sign bundles this
// package opens; and the development key pair is made once, then reused.
func TestKeys(t *testing.T) {
	dir := t.TempDir()
	priv, made, err := EnsureDevKey(dir, nil)
	if err != nil || !made {
		t.Fatalf("made %v, %v", made, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "dev.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("dev.key: %v %v", st.Mode(), err)
	}
	again, made, err := EnsureDevKey(dir, nil)
	if err != nil || made || !again.Equal(priv) {
		t.Fatalf("second call made %v, same %v, %v", made, again.Equal(priv), err)
	}
	keys, names, err := LoadTrustedKeys(dir)
	if err != nil || len(keys) != 1 || !keys[0].Equal(priv.Public()) || filepath.Base(names[0]) != "dev.pub" {
		t.Fatalf("trusted %v %v %v", keys, names, err)
	}
	if _, _, err := LoadTrustedKeys(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no update keys (*.pub) in") {
		t.Fatalf("empty key folder: %v", err)
	}
	// A .pub that does not match dev.key is refused, not silently used.
	other, _ := MarshalPublicKey(testKey(t, 9).Public().(ed25519.PublicKey))
	os.WriteFile(filepath.Join(dir, "dev.pub"), other, 0o644)
	if _, _, err := EnsureDevKey(dir, nil); err == nil || !strings.Contains(err.Error(), "is not the public key of") {
		t.Fatalf("mismatched pair: %v", err)
	}

	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	rel := t.TempDir()
	for _, args := range [][]string{
		{"genpkey", "-algorithm", "ed25519", "-out", filepath.Join(rel, "release.key")},
		{"pkey", "-in", filepath.Join(rel, "release.key"), "-pubout", "-out", filepath.Join(rel, "release.pub")},
	} {
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	rk, err := LoadPrivateKey(filepath.Join(rel, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	rp, err := LoadPublicKey(filepath.Join(rel, "release.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(build(t, m1, rk), rp); err != nil {
		t.Fatal(err)
	}
	// Wrong kinds of file say what they are.
	if _, err := LoadPrivateKey(filepath.Join(rel, "release.pub")); err == nil || !strings.Contains(err.Error(), `a "PUBLIC KEY" PEM block, want "PRIVATE KEY"`) {
		t.Fatalf("public as private: %v", err)
	}
	os.WriteFile(filepath.Join(rel, "raw.pub"), []byte(priv.Public().(ed25519.PublicKey)), 0o644)
	if _, err := LoadPublicKey(filepath.Join(rel, "raw.pub")); err == nil || !strings.Contains(err.Error(), "not PEM") {
		t.Fatalf("raw key: %v", err)
	}
	if out, err := exec.Command(openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", filepath.Join(rel, "ec.key")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if _, err := LoadPrivateKey(filepath.Join(rel, "ec.key")); err == nil || !strings.Contains(err.Error(), "want ed25519") {
		t.Fatalf("EC key: %v", err)
	}
}

func TestOpenFile(t *testing.T) {
	key := testKey(t, 1)
	p := filepath.Join(t.TempDir(), "gateway-1.4.0-arm64.update")
	os.WriteFile(p, build(t, m1, key), 0o644)
	b, f, err := OpenFile(p, []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b.Manifest.Version != "1.4.0" {
		t.Fatal(b.Manifest)
	}
	if _, _, err := OpenFile(p+".missing", nil, "arm64"); err == nil || reason(t, err) != ReasonIO {
		t.Fatalf("missing file: %v", err)
	}
}
