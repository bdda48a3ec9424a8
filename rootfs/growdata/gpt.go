// Package growdata makes the disk image's data partition take the rest of
// the disk on first boot: the image is small so that it downloads and
// flashes fast, the card or disk it is written to is not. The data
// partition is the GPT's last partition; GrowGPT moves its end (and the
// backup GPT) to the end of the disk, Grow then has the kernel take the
// new partition size and grows the mounted ext4 online.
//
// It is done in Go rather than with growpart/sfdisk and resize2fs because
// the image carries no e2fsprogs or util-linux (and their libraries): the
// GPT is two CRC'd headers and a table, and both kernel calls are one
// ioctl each.
package growdata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Align is where the grown partition ends: on a MiB, as the image's
// partitions do, so flash erase blocks are not straddled.
const Align = 1 << 20

// gptHeader is the fields of a GPT header that growing touches.
type gptHeader struct {
	raw         []byte // the whole sector
	size        uint32 // header size
	myLBA       uint64
	altLBA      uint64
	firstUsable uint64
	lastUsable  uint64
	entriesLBA  uint64
	numEntries  uint32
	entrySize   uint32
}

var gptSig = []byte("EFI PART")

func readHeader(sector []byte) (*gptHeader, error) {
	if !bytes.Equal(sector[:8], gptSig) {
		return nil, errors.New("no GPT header (signature)")
	}
	le := binary.LittleEndian
	h := &gptHeader{
		raw: sector, size: le.Uint32(sector[12:]), myLBA: le.Uint64(sector[24:]), altLBA: le.Uint64(sector[32:]),
		firstUsable: le.Uint64(sector[40:]), lastUsable: le.Uint64(sector[48:]), entriesLBA: le.Uint64(sector[72:]),
		numEntries: le.Uint32(sector[80:]), entrySize: le.Uint32(sector[84:]),
	}
	if h.size < 92 || int(h.size) > len(sector) || h.entrySize < 128 || h.numEntries == 0 || h.numEntries > 4096 {
		return nil, fmt.Errorf("GPT header with odd sizes (header %d, %d entries of %d bytes)", h.size, h.numEntries, h.entrySize)
	}
	if headerCRC(sector[:h.size]) != le.Uint32(sector[16:]) {
		return nil, errors.New("GPT header CRC mismatch")
	}
	return h, nil
}

// headerCRC is the CRC32 of a header with its own CRC field zeroed.
func headerCRC(hdr []byte) uint32 {
	c := bytes.Clone(hdr)
	binary.LittleEndian.PutUint32(c[16:], 0)
	return crc32.ChecksumIEEE(c)
}

// encode writes the header's fields and both CRCs into a copy of its sector.
func (h *gptHeader) encode(entriesCRC uint32) []byte {
	s := bytes.Clone(h.raw)
	le := binary.LittleEndian
	le.PutUint64(s[24:], h.myLBA)
	le.PutUint64(s[32:], h.altLBA)
	le.PutUint64(s[48:], h.lastUsable)
	le.PutUint64(s[72:], h.entriesLBA)
	le.PutUint32(s[88:], entriesCRC)
	le.PutUint32(s[16:], headerCRC(s[:h.size]))
	return s
}

// Result says what GrowGPT did.
type Result struct {
	Partition int    // 1-based number of the grown partition
	Start     uint64 // its first sector
	OldEnd    uint64 // last sector before
	NewEnd    uint64 // last sector now (== OldEnd when nothing was done)
	Sector    int    // sector size in bytes
}

// Grown says whether the partition got bigger.
func (r Result) Grown() bool { return r.NewEnd > r.OldEnd }

// Bytes is the partition's size now.
func (r Result) Bytes() int64 { return int64(r.NewEnd-r.Start+1) * int64(r.Sector) }

// GrowGPT moves the end of the GPT's last partition, which must be named
// name, to the last MiB boundary before the disk's end, and rewrites both
// GPTs for a disk of diskSize bytes with sector-byte sectors: the primary
// at the start, the backup at the new end. On a disk where the partition
// already ends there, it changes nothing. The backup is written first, so
// that a power cut in between leaves a disk whose primary GPT is still the
// old, valid one.
func GrowGPT(disk io.ReaderAt, w io.WriterAt, diskSize int64, sector int, name string) (Result, error) {
	res := Result{Sector: sector}
	if sector < 512 || sector&(sector-1) != 0 {
		return res, fmt.Errorf("sector size %d", sector)
	}
	lbas := uint64(diskSize / int64(sector))
	hdrSector := make([]byte, sector)
	if _, err := disk.ReadAt(hdrSector, int64(sector)); err != nil {
		return res, fmt.Errorf("read the GPT header: %w", err)
	}
	h, err := readHeader(hdrSector)
	if err != nil {
		return res, err
	}
	if h.myLBA != 1 {
		return res, fmt.Errorf("primary GPT header says it is at LBA %d", h.myLBA)
	}
	tableBytes := int(h.numEntries) * int(h.entrySize)
	table := make([]byte, tableBytes)
	if _, err := disk.ReadAt(table, int64(h.entriesLBA)*int64(sector)); err != nil {
		return res, fmt.Errorf("read the GPT entries: %w", err)
	}
	if crc32.ChecksumIEEE(table) != binary.LittleEndian.Uint32(h.raw[88:]) {
		return res, errors.New("GPT entries CRC mismatch")
	}

	// The partition that ends last must be the named one.
	last, lastEnd := -1, uint64(0)
	for i := 0; i < int(h.numEntries); i++ {
		e := table[i*int(h.entrySize):]
		if isZero(e[:16]) { // unused entry: no type GUID
			continue
		}
		if end := binary.LittleEndian.Uint64(e[40:]); end >= lastEnd {
			last, lastEnd = i, end
		}
	}
	if last < 0 {
		return res, errors.New("GPT has no partitions")
	}
	e := table[last*int(h.entrySize):]
	if got := partName(e[56:128]); got != name {
		return res, fmt.Errorf("the last partition is %q, not %q: not growing anything", got, name)
	}
	res.Partition = last + 1
	res.Start = binary.LittleEndian.Uint64(e[32:])
	res.OldEnd, res.NewEnd = lastEnd, lastEnd

	entrySectors := uint64((tableBytes + sector - 1) / sector)
	if lbas < 1+1+entrySectors+entrySectors+1 {
		return res, fmt.Errorf("disk of %d bytes is too small", diskSize)
	}
	lastUsable := lbas - 1 - entrySectors - 1
	per := uint64(Align / sector)
	newEnd := (lastUsable+1)/per*per - 1
	if newEnd <= lastEnd {
		return res, nil // already fills the disk (or the disk is smaller than the image)
	}
	binary.LittleEndian.PutUint64(e[40:], newEnd)
	res.NewEnd = newEnd
	entriesCRC := crc32.ChecksumIEEE(table)

	oldAlt := h.altLBA
	backup := *h
	backup.myLBA, backup.altLBA, backup.lastUsable, backup.entriesLBA = lbas-1, 1, lastUsable, lbas-1-entrySectors
	primary := *h
	primary.altLBA, primary.lastUsable = lbas-1, lastUsable

	if _, err := w.WriteAt(table, int64(backup.entriesLBA)*int64(sector)); err != nil {
		return res, fmt.Errorf("write the backup GPT entries: %w", err)
	}
	if _, err := w.WriteAt(backup.encode(entriesCRC), int64(backup.myLBA)*int64(sector)); err != nil {
		return res, fmt.Errorf("write the backup GPT header: %w", err)
	}
	if _, err := w.WriteAt(table, int64(primary.entriesLBA)*int64(sector)); err != nil {
		return res, fmt.Errorf("write the GPT entries: %w", err)
	}
	if _, err := w.WriteAt(primary.encode(entriesCRC), int64(sector)); err != nil {
		return res, fmt.Errorf("write the GPT header: %w", err)
	}
	// The image's old backup header now lies inside the data partition,
	// past its file system: wipe it so that no tool finds a stale GPT there.
	if oldAlt > lastEnd && oldAlt < backup.entriesLBA {
		if _, err := w.WriteAt(make([]byte, sector), int64(oldAlt)*int64(sector)); err != nil {
			return res, fmt.Errorf("wipe the old backup GPT header: %w", err)
		}
	}
	return res, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// partName decodes a GPT partition name (UTF-16LE, NUL-padded); the
// image's names are ASCII.
func partName(b []byte) string {
	var s []rune
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		s = append(s, rune(c))
	}
	return string(s)
}
