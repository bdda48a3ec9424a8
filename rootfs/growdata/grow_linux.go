package growdata

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): grow a
// mounted ext4 to the given number of blocks.
const ext4IocResizeFS = 0x40086610

// Grow grows the partition mounted at dir (the data partition, named
// name in the GPT) to the end of its disk, then the ext4 on it to the end
// of the partition, online. Every boot may call it: on a disk already
// grown it changes nothing. Errors leave the partition and the file
// system as they were, usable.
func Grow(dir, name string, log *slog.Logger) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	sysPart := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	partDir, err := filepath.EvalSymlinks(sysPart)
	if err != nil {
		return fmt.Errorf("%s is not on a block device partition: %w", dir, err)
	}
	pno, err := readInt(filepath.Join(partDir, "partition"))
	if err != nil {
		return fmt.Errorf("%s is not on a partition: %w", dir, err)
	}
	diskName := filepath.Base(filepath.Dir(partDir))
	disk := "/dev/" + diskName
	f, err := os.OpenFile(disk, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	sector, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return fmt.Errorf("%s: sector size: %w", disk, err)
	}
	var size uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); errno != 0 {
		return fmt.Errorf("%s: size: %w", disk, errno)
	}

	res, err := GrowGPT(f, f, int64(size), sector, name)
	if err != nil {
		return fmt.Errorf("%s: %w", disk, err)
	}
	if res.Partition != int(pno) {
		return fmt.Errorf("%s: %s is partition %d, the last one is %d", disk, dir, pno, res.Partition)
	}
	if res.Grown() {
		if err := f.Sync(); err != nil {
			return err
		}
		log.Info("partition grown", "disk", disk, "partition", res.Partition, "bytes", res.Bytes())
	}
	// The kernel's idea of the partition: a partition in use cannot be
	// re-read, but it can be resized (BLKPG), which is what partx does.
	curSectors, err := readInt(filepath.Join(partDir, "size")) // always in 512-byte units
	if err != nil {
		return err
	}
	if curSectors*512 < res.Bytes() {
		p := unix.BlkpgPartition{Start: int64(res.Start) * int64(sector), Length: res.Bytes(), Pno: int32(res.Partition)}
		arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(p)), Data: (*byte)(unsafe.Pointer(&p))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 {
			return fmt.Errorf("%s: tell the kernel partition %d's new size: %w", disk, res.Partition, errno)
		}
	}

	// The file system, online.
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return err
	}
	if sfs.Type != unix.EXT4_SUPER_MAGIC {
		return fmt.Errorf("%s is not ext4", dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	blocks := uint64(res.Bytes()) / uint64(sfs.Bsize)
	// statfs's block count leaves out the file system's own overhead: the
	// superblock has the real one.
	have, err := ext4Blocks("/dev/" + filepath.Base(partDir))
	if err != nil {
		return err
	}
	if blocks <= have {
		return nil
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&blocks))); errno != 0 {
		return fmt.Errorf("grow the file system of %s to %d blocks: %w", dir, blocks, errno)
	}
	log.Info("file system grown", "dir", dir, "bytes", blocks*uint64(sfs.Bsize))
	return nil
}

func readInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// ext4Blocks is the block count in the ext4 superblock on dev (1024 bytes
// in; s_blocks_count_lo at 4, s_blocks_count_hi at 0x150).
func ext4Blocks(dev string) (uint64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sb := make([]byte, 0x154)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, fmt.Errorf("%s: read the ext4 superblock: %w", dev, err)
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xef53 {
		return 0, fmt.Errorf("%s: no ext4 superblock", dev)
	}
	return uint64(binary.LittleEndian.Uint32(sb[4:])) | uint64(binary.LittleEndian.Uint32(sb[0x150:]))<<32, nil
}
