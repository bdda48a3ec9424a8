// Package bundle reads and writes the gateway's signed update bundle,
// gateway-<version>-<arch>.update: one file holding a root slot
// (rootfs.squashfs) and the kernel and initrd that boot it, with a manifest
// signed by an ed25519 release key. A bundle is checked whole (signature,
// architecture, length, every part's SHA-256) before an installer writes
// anything, so a bad one changes nothing on the box.
//
// The format, all integers big-endian:
//
//	offset 0   8 bytes   magic "GWUPDATE"
//	offset 8   uint32    format version (1)
//	offset 12  uint32    manifest length N (at most 64 KiB)
//	offset 16  64 bytes  ed25519 signature of SignedPrefix + manifest
//	offset 80  N bytes   manifest, JSON: {format, name, version, serial, arch, parts: [{name, size, sha256}]}
//	offset 80+N          the parts' bytes, back to back, in the manifest's order
//
// The file ends exactly after the last part: a shorter one is truncated, a
// longer one is refused too. The signature covers the manifest, which holds
// each part's size and hash, so it covers every byte of the file.
package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// The three parts every bundle holds, in this order.
const (
	RootFS = "rootfs.squashfs" // written to the inactive root slot's partition
	Kernel = "vmlinuz"         // written to the ESP as /<slot>/vmlinuz
	Initrd = "initrd.img"      // written to the ESP as /<slot>/initrd.img
)

// PartNames are the parts a bundle holds, in the order they are stored.
var PartNames = []string{RootFS, Kernel, Initrd}

const (
	magic = "GWUPDATE"
	// Format is the bundle format this package writes and reads.
	Format     = 1
	headerSize = 8 + 4 + 4 + ed25519.SignatureSize
	// MaxManifest bounds what a reader allocates for a manifest before
	// the signature is checked.
	MaxManifest = 64 << 10
	// SignedPrefix goes before the manifest in the signed message, so a
	// signature made with the same key for something else never passes
	// for a bundle's.
	SignedPrefix = "homebox gateway update bundle v1\n"
)

// Manifest says what a bundle is and holds. It is the signed part.
type Manifest struct {
	Format  int    `json:"format"`
	Name    string `json:"name"`    // always "gateway"
	Version string `json:"version"` // shown to people, e.g. "1.4.0"
	// Serial orders versions: the build's SOURCE_DATE_EPOCH. Higher is
	// newer; the boot loader boots the highest of the good slots.
	Serial int64      `json:"serial"`
	Arch   string     `json:"arch"` // arm64, armv7, amd64
	Parts  []PartInfo `json:"parts"`
}

// PartInfo is one part as the manifest lists it.
type PartInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex
}

// Part is one part handed to Write: its bytes are read twice (hash, then
// copy), hence a ReaderAt (an *os.File is one).
type Part struct {
	Name string
	Size int64
	R    io.ReaderAt
}

// FilePart opens path as a part; the caller closes the file.
func FilePart(name, path string) (Part, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return Part{}, nil, fmt.Errorf("part %s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return Part{}, nil, fmt.Errorf("part %s: %w", name, err)
	}
	return Part{Name: name, Size: st.Size(), R: f}, f, nil
}

var (
	versionRE = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`)
	archRE    = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	hexRE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// check says what is wrong with a manifest's fields, all at once.
func (m *Manifest) check() error {
	var errs []error
	if m.Format != Format {
		errs = append(errs, fmt.Errorf("format %d: this gateway reads format %d", m.Format, Format))
	}
	if m.Name != "gateway" {
		errs = append(errs, fmt.Errorf("name %q: want \"gateway\"", m.Name))
	}
	if !versionRE.MatchString(m.Version) {
		errs = append(errs, fmt.Errorf("version %q: want 1 to 64 letters, digits and . _ + -", m.Version))
	}
	if m.Serial <= 0 {
		errs = append(errs, fmt.Errorf("serial %d: want the build's SOURCE_DATE_EPOCH (> 0)", m.Serial))
	}
	if !archRE.MatchString(m.Arch) {
		errs = append(errs, fmt.Errorf("arch %q: want lowercase letters and digits, e.g. arm64", m.Arch))
	}
	if len(m.Parts) != len(PartNames) {
		errs = append(errs, fmt.Errorf("%d parts: want %d (%s)", len(m.Parts), len(PartNames), strings.Join(PartNames, ", ")))
	} else {
		for i, p := range m.Parts {
			if p.Name != PartNames[i] {
				errs = append(errs, fmt.Errorf("part %d is %q: want %q", i+1, p.Name, PartNames[i]))
			}
			if p.Size < 0 {
				errs = append(errs, fmt.Errorf("part %s: size %d", p.Name, p.Size))
			}
			if !hexRE.MatchString(p.SHA256) {
				errs = append(errs, fmt.Errorf("part %s: sha256 %q is not 64 lowercase hex digits", p.Name, p.SHA256))
			}
		}
	}
	return errors.Join(errs...)
}

// Write writes a bundle of parts to w, signed with key. m gives Version,
// Serial and Arch; Write fills in Format, Name and Parts. The same inputs
// give the same bytes (ed25519 signatures are deterministic).
func Write(w io.Writer, m Manifest, parts []Part, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("write bundle: signing key is %d bytes, want an ed25519 private key (%d)", len(key), ed25519.PrivateKeySize)
	}
	m.Format, m.Name, m.Parts = Format, "gateway", nil
	for _, p := range parts {
		if p.R == nil {
			return fmt.Errorf("write bundle: part %s: no reader", p.Name)
		}
		h := sha256.New()
		n, err := io.Copy(h, io.NewSectionReader(p.R, 0, p.Size))
		if err != nil {
			return fmt.Errorf("write bundle: part %s: %w", p.Name, err)
		}
		if n != p.Size {
			return fmt.Errorf("write bundle: part %s: read %d bytes, want %d", p.Name, n, p.Size)
		}
		m.Parts = append(m.Parts, PartInfo{Name: p.Name, Size: p.Size, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	if err := m.check(); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	mj, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if len(mj) > MaxManifest {
		return fmt.Errorf("write bundle: manifest is %d bytes, at most %d", len(mj), MaxManifest)
	}
	hdr := make([]byte, 0, headerSize+len(mj))
	hdr = append(hdr, magic...)
	hdr = binary.BigEndian.AppendUint32(hdr, Format)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(mj)))
	hdr = append(hdr, ed25519.Sign(key, signed(mj))...)
	hdr = append(hdr, mj...)
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	for _, p := range parts {
		// Hash again while copying: a part that changed since the first
		// pass would make a bundle its own signature refuses.
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), io.NewSectionReader(p.R, 0, p.Size))
		if err != nil {
			return fmt.Errorf("write bundle: part %s: %w", p.Name, err)
		}
		if n != p.Size || !bytes.Equal(h.Sum(nil), mustHex(m.part(p.Name).SHA256)) {
			return fmt.Errorf("write bundle: part %s changed while it was being written", p.Name)
		}
	}
	return nil
}

func signed(manifest []byte) []byte {
	return append([]byte(SignedPrefix), manifest...)
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

func (m *Manifest) part(name string) PartInfo {
	for _, p := range m.Parts {
		if p.Name == name {
			return p
		}
	}
	return PartInfo{}
}

// Bundle is an opened bundle whose signature, architecture, length and
// part hashes have all been checked.
type Bundle struct {
	Manifest Manifest
	// KeyIndex is the index, in the trusted keys given to Open, of the
	// key that signed it.
	KeyIndex int
	r        io.ReaderAt
	offsets  map[string]int64
}

// Error is why a bundle was refused. Every error Open returns is one.
type Error struct {
	Reason string // one of the Reason* constants
	Msg    string
}

// Why a bundle is refused, for callers that map them to HTTP statuses or
// exit codes.
const (
	ReasonFormat    = "format"    // not a bundle, or a format this gateway does not read
	ReasonTruncated = "truncated" // shorter (or longer) than its manifest says
	ReasonSignature = "signature" // not signed by a trusted key
	ReasonArch      = "arch"      // for another architecture
	ReasonHash      = "hash"      // a part's bytes do not match the signed hash
	ReasonIO        = "io"        // reading it failed
)

func (e *Error) Error() string { return "update bundle refused: " + e.Msg }

func refuse(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Open checks the bundle of size bytes in r and returns it, or an *Error
// saying why it is refused: not a bundle, truncated, not signed by one of
// trusted, for another architecture than wantArch, or a part whose bytes
// do not match its signed SHA-256. It reads every byte once (the hashes
// are checked here, before anyone writes a slot) and writes nothing.
func Open(r io.ReaderAt, size int64, trusted []ed25519.PublicKey, wantArch string) (*Bundle, error) {
	if size < headerSize {
		if size < int64(len(magic)) || !hasMagic(r) {
			return nil, refuse(ReasonFormat, "not a gateway update bundle (%d bytes, no %q header)", size, magic)
		}
		return nil, refuse(ReasonTruncated, "truncated: %d bytes, shorter than the %d-byte header", size, headerSize)
	}
	hdr := make([]byte, headerSize)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, refuse(ReasonIO, "reading the header: %v", err)
	}
	if string(hdr[:8]) != magic {
		return nil, refuse(ReasonFormat, "not a gateway update bundle (no %q header)", magic)
	}
	if v := binary.BigEndian.Uint32(hdr[8:]); v != Format {
		return nil, refuse(ReasonFormat, "bundle format %d: this gateway reads format %d (update in steps, or use a newer bundle tool)", v, Format)
	}
	mlen := int64(binary.BigEndian.Uint32(hdr[12:]))
	if mlen == 0 || mlen > MaxManifest {
		return nil, refuse(ReasonFormat, "manifest length %d at offset 12: want 1 to %d", mlen, MaxManifest)
	}
	if size < headerSize+mlen {
		return nil, refuse(ReasonTruncated, "truncated: %d bytes, the manifest alone ends at byte %d", size, headerSize+mlen)
	}
	mj := make([]byte, mlen)
	if _, err := r.ReadAt(mj, headerSize); err != nil {
		return nil, refuse(ReasonIO, "reading the manifest: %v", err)
	}
	sig := hdr[16:headerSize]
	keyIndex := -1
	for i, k := range trusted {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, signed(mj), sig) {
			keyIndex = i
			break
		}
	}
	if keyIndex < 0 {
		return nil, refuse(ReasonSignature, "bad signature: not signed by any of the %d update key(s) this gateway trusts", len(trusted))
	}
	// Signed from here on: the manifest is what its signer wrote, so any
	// mismatch below is damage (or a signer's bug), never an attack.
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(mj))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, refuse(ReasonFormat, "manifest: %v", err)
	}
	if err := m.check(); err != nil {
		return nil, refuse(ReasonFormat, "manifest: %v", err)
	}
	if m.Arch != wantArch {
		return nil, refuse(ReasonArch, "bundle %s is for %s, this gateway is %s", m.Version, m.Arch, wantArch)
	}
	want := headerSize + mlen
	offsets := make(map[string]int64, len(m.Parts))
	for _, p := range m.Parts {
		offsets[p.Name] = want
		want += p.Size
	}
	if size < want {
		return nil, refuse(ReasonTruncated, "truncated: %d bytes, bundle %s is %d (%d missing)", size, m.Version, want, want-size)
	}
	if size > want {
		return nil, refuse(ReasonTruncated, "%d bytes after the end of bundle %s (%d bytes): not a whole bundle", size-want, m.Version, want)
	}
	b := &Bundle{Manifest: m, KeyIndex: keyIndex, r: r, offsets: offsets}
	for _, p := range m.Parts {
		h := sha256.New()
		if _, err := io.Copy(h, b.Part(p.Name)); err != nil {
			return nil, refuse(ReasonIO, "reading part %s: %v", p.Name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
			return nil, refuse(ReasonHash, "part %s (bytes %d to %d) has SHA-256 %s, the signed manifest says %s: the file is damaged",
				p.Name, offsets[p.Name], offsets[p.Name]+p.Size, got, p.SHA256)
		}
	}
	return b, nil
}

func hasMagic(r io.ReaderAt) bool {
	b := make([]byte, len(magic))
	_, err := r.ReadAt(b, 0)
	return err == nil && string(b) == magic
}

// Info is the manifest's entry for a part; Open has made sure all of
// PartNames are there.
func (b *Bundle) Info(name string) PartInfo { return b.Manifest.part(name) }

// Part reads one part's bytes. Open checked them; a reader that copies
// them somewhere should hash them again (Info gives the hash) in case the
// file changed since.
func (b *Bundle) Part(name string) *io.SectionReader {
	return io.NewSectionReader(b.r, b.offsets[name], b.Manifest.part(name).Size)
}

// OpenFile opens and checks the bundle at path (see Open). The caller
// closes the file once done with the Bundle.
func OpenFile(path string, trusted []ed25519.PublicKey, wantArch string) (*Bundle, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, refuse(ReasonIO, "%v", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, refuse(ReasonIO, "%v", err)
	}
	b, err := Open(f, st.Size(), trusted, wantArch)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return b, f, nil
}
