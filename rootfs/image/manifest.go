package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"
)

// Manifest says what an image is and holds: written next to it as
// gateway-<version>-<arch>.manifest.json.
type Manifest struct {
	Name            string   `json:"name"`
	Version         string   `json:"version"`
	Commit          string   `json:"commit"`
	Arch            string   `json:"arch"`
	Target          string   `json:"target"`     // Go platform, e.g. linux/arm/v7
	BuildTime       string   `json:"build_time"` // SOURCE_DATE_EPOCH, RFC 3339 UTC
	SourceDateEpoch int64    `json:"source_date_epoch"`
	Go              string   `json:"go"` // toolchain: the same one gives the same bytes
	Tarball         Artifact `json:"tarball"`
	Squashfs        Artifact `json:"squashfs"`
	// The bootable disk image, when built, and the Debian packages it was
	// made of (file names: name, version, arch): a rebuild of the same
	// bytes needs the same ones.
	Disk           *Artifact  `json:"disk,omitempty"`
	DebianPackages []string   `json:"debian_packages,omitempty"`
	Files          []FileInfo `json:"files"`
}

// Artifact is one output file.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// FileInfo is one entry of the image. Owner is always root:root.
type FileInfo struct {
	Path   string `json:"path"` // absolute on the box, e.g. /usr/bin/gatewayd
	Type   string `json:"type"` // dir, file, symlink
	Mode   string `json:"mode"` // octal, e.g. "0755"
	Size   int64  `json:"size"` // files only
	SHA256 string `json:"sha256,omitempty"`
	Target string `json:"target,omitempty"`
}

// NewManifest describes entries; Tarball and Squashfs are filled by the caller.
func NewManifest(version, commit string, epoch time.Time, arch Arch, goVersion string, entries []Entry) Manifest {
	m := Manifest{
		Name: "gateway", Version: version, Commit: commit,
		Arch: arch.Name, Target: arch.Target(),
		BuildTime:       epoch.UTC().Format(time.RFC3339),
		SourceDateEpoch: epoch.Unix(),
		Go:              goVersion,
		Files:           make([]FileInfo, 0, len(entries)),
	}
	for _, e := range entries {
		fi := FileInfo{Path: "/" + e.Path, Type: e.Kind.String(), Mode: fmt.Sprintf("%04o", uint32(e.Mode.Perm())), Target: e.Target}
		if e.Kind == File {
			sum := sha256.Sum256(e.Data)
			fi.Size = int64(len(e.Data))
			fi.SHA256 = hex.EncodeToString(sum[:])
		}
		m.Files = append(m.Files, fi)
	}
	return m
}

// Marshal is the manifest's file content: indented JSON and a newline.
func (m Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func artifactOf(dir, name string) (Artifact, error) {
	sum, n, err := fileSHA256(filepath.Join(dir, name))
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Name: name, Size: n, SHA256: sum}, nil
}
