// Package slots is the box's A/B update logic on top of systemd-boot's boot
// counting: which root slot is booted, installing a checked update bundle
// into the other one, marking a slot good once the box answers, falling
// back when it does not, and the factory reset.
//
// A slot is a squashfs partition (GPT label rootA or rootB) plus its kernel
// and initrd on the ESP (/a/..., /b/...) and one boot loader entry
// (loader/entries/gateway-<slot>[+L-D].conf, see Entry). Install writes a
// new slot's entry last, with a counter of Tries boots: until then nothing
// points at the half-written slot, so a power cut at any point leaves the
// old slot booting. systemd-boot counts the tries down before each boot;
// MarkGood drops the counter once the box works; if it never does, the
// entry runs out of tries, sorts last, and the old slot boots by itself.
//
// Every path is a field of Box, so tests run on real files in a folder: a
// regular file stands in for a partition, a plain folder for the ESP.
package slots

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/homebox/gateway/internal/atomicfile"
	"github.com/homebox/gateway/internal/paths"
	"github.com/homebox/gateway/rootfs/bundle"
)

// Relative to the box's root (Box.Root).
const (
	// ResultFile keeps the last update's result on the data partition.
	ResultFile = paths.UpdateResult
	// ESPMount is where OnBox mounts the ESP when it needs it.
	ESPMount = paths.ESPMount
	// DataDir is the data partition's mount point.
	DataDir = paths.Data
	// FactoryResetFlag asks ApplyFactoryReset, at the next boot, to wipe
	// the data partition.
	FactoryResetFlag = paths.FactoryResetFlag
)

// Box is one box's slots. Each field has a default from OnBox; tests point
// them into a temporary folder.
type Box struct {
	Root     string // the box's root: ResultFile, DataDir and the flag live under it
	ESP      string // the ESP's mount point
	Cmdline  string // the kernel command line: /proc/cmdline
	SysBlock string // partitions found by label here: /sys/class/block/*/uevent PARTNAME=
	DevDir   string // their device nodes: /dev
	Arch     string // this box's architecture, as bundles name it: arm64, amd64
	// MountESP mounts the ESP at dir unless it is mounted already; nil
	// when ESP is a plain folder (tests).
	MountESP func(b *Box) error
	// Reboot restarts the box; Guard and FactoryReset call it.
	Reboot func() error
	Now    func() time.Time
	Log    *slog.Logger

	espMu      sync.Mutex  // one mount of the ESP
	mu         sync.Mutex  // one install or entry change at a time
	installing atomic.Bool // an Install runs in this process
}

// OnBox is the real box under root (normally "/"): the ESP is mounted at
// <root>/run/gateway/esp when first needed and stays mounted.
func OnBox(root, arch string, reboot func() error, log *slog.Logger) *Box {
	return &Box{
		Root:     root,
		ESP:      filepath.Join(root, ESPMount),
		Cmdline:  "/proc/cmdline",
		SysBlock: "/sys/class/block",
		DevDir:   "/dev",
		Arch:     arch,
		MountESP: mountESP,
		Reboot:   reboot,
		Log:      log,
	}
}

func (b *Box) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Box) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (b *Box) esp() error {
	if b.MountESP == nil {
		return nil
	}
	b.espMu.Lock()
	defer b.espMu.Unlock()
	return b.MountESP(b)
}

// HostArch is the architecture this binary runs on, as bundles and images
// name it (arm64, armv7, amd64): the Arch of OnBox.
func HostArch() string {
	if runtime.GOARCH == "arm" {
		return "armv7"
	}
	return runtime.GOARCH
}

// Booted is the slot the kernel command line names (gateway.slot=).
func (b *Box) Booted() (Slot, error) {
	data, err := os.ReadFile(b.Cmdline)
	if err != nil {
		return "", fmt.Errorf("booted slot: %w", err)
	}
	for _, f := range strings.Fields(string(data)) {
		if v, ok := strings.CutPrefix(f, "gateway.slot="); ok {
			s, err := ParseSlot(v)
			if err != nil {
				return "", fmt.Errorf("booted slot: %s: %w", b.Cmdline, err)
			}
			return s, nil
		}
	}
	return "", fmt.Errorf("booted slot: no gateway.slot= in %s: this system was not started from the gateway's disk image, so it has no slots to update", b.Cmdline)
}

// entries reads the gateway entries on the ESP, by slot. Two entries for
// one slot is an error (nothing here makes two).
func (b *Box) entries() (map[Slot]Entry, error) {
	dir := filepath.Join(b.ESP, EntriesDir)
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("boot entries: %w", err)
	}
	out := map[Slot]Entry{}
	for _, de := range des {
		if _, ok := ParseEntryName(de.Name()); !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			return nil, fmt.Errorf("boot entries: %w", err)
		}
		e, err := ParseEntry(de.Name(), data)
		if err != nil {
			return nil, fmt.Errorf("boot entries: %s: %w", dir, err)
		}
		if prev, ok := out[e.Slot]; ok {
			return nil, fmt.Errorf("boot entries: %s has two entries for slot %s, %s and %s: remove the wrong one by hand", dir, strings.ToUpper(string(e.Slot)), prev.Name(), e.Name())
		}
		out[e.Slot] = e
	}
	return out, nil
}

// SlotInfo is one slot as Status reports it.
type SlotInfo struct {
	Slot    Slot   `json:"slot"`
	Version string `json:"version"`
	Serial  int64  `json:"serial"`
	// State is "good", "trial" (a new slot with boots left to come up),
	// "bad" (it used its tries up, or failed its check) or "empty".
	State     string `json:"state"`
	TriesLeft int    `json:"tries_left,omitempty"`
}

// Status is what GET /api/system and gwctl system report about slots.
type Status struct {
	Booted SlotInfo `json:"booted"`
	Other  SlotInfo `json:"other"`
	// LastUpdate is the last install's result; nil before the first.
	LastUpdate *Result `json:"last_update,omitempty"`
}

// Result is an install's outcome, kept in ResultFile.
type Result struct {
	Version string `json:"version"`
	Serial  int64  `json:"serial"`
	Slot    Slot   `json:"slot"`
	// State: "installing"; "installed" (reboot to try it); "trial" (it
	// booted and has not been marked good yet); "good" (it
	// came up and was marked good); "failed" (not installed: Message says
	// why); "rolled-back" (installed, but it did not come up: the old slot
	// runs again).
	State   string    `json:"state"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
}

// Result states.
const (
	StateInstalling = "installing"
	StateInstalled  = "installed"
	StateTrial      = "trial"
	StateGood       = "good"
	StateFailed     = "failed"
	StateRolledBack = "rolled-back"
)

func (b *Box) readResult() (*Result, error) {
	data, err := os.ReadFile(filepath.Join(b.Root, ResultFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last update: %w", err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("last update: %s: %w", filepath.Join(b.Root, ResultFile), err)
	}
	return &r, nil
}

func (b *Box) writeResult(r Result) error {
	r.Time = b.now().UTC()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(b.Root, ResultFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("last update: %w", err)
	}
	return atomicfile.Write(p, append(data, '\n'), 0o644)
}

// settle turns an "installed" result into what came of it, now that the
// box booted again: a slot marked good, still on trial, or one the boot
// loader (or Guard) gave up on.
func settle(r *Result, booted Slot, entries map[Slot]Entry, installing bool) *Result {
	if r == nil {
		return nil
	}
	out := *r
	if r.State == StateInstalling && !installing {
		// Nothing runs it: a power cut or a restart stopped it.
		out.State = StateFailed
		out.Message = fmt.Sprintf("interrupted (power cut or restart) while installing %s into slot %s; slot %s runs on: install it again", r.Version, strings.ToUpper(string(r.Slot)), strings.ToUpper(string(booted)))
		return &out
	}
	if r.State != StateInstalled {
		return r
	}
	e, ok := entries[r.Slot]
	switch {
	case booted == r.Slot && ok && !e.Counting:
		out.State, out.Message = StateGood, ""
	case booted == r.Slot && ok:
		out.State, out.Message = StateTrial, "waiting for the broker and the console to answer"
	case booted != r.Slot && (!ok || e.State() == "bad"):
		out.State = StateRolledBack
		out.Message = fmt.Sprintf("%s did not come up in slot %s: slot %s runs again", r.Version, strings.ToUpper(string(r.Slot)), strings.ToUpper(string(booted)))
	}
	return &out
}

func info(s Slot, e Entry, ok, booted bool) SlotInfo {
	if !ok {
		return SlotInfo{Slot: s, State: "empty"}
	}
	i := SlotInfo{Slot: s, Version: e.Version, Serial: e.Serial, State: e.State()}
	if booted && e.Counting {
		// Running on its last try (+0-3) is still a trial.
		i.State = "trial"
	}
	if e.Counting {
		i.TriesLeft = e.Left
	}
	return i
}

// Status reports the booted slot, the other one and the last update.
func (b *Box) Status() (Status, error) {
	booted, err := b.Booted()
	if err != nil {
		return Status{}, err
	}
	if err := b.esp(); err != nil {
		return Status{}, err
	}
	entries, err := b.entries()
	if err != nil {
		return Status{}, err
	}
	last, err := b.readResult()
	if err != nil {
		return Status{}, err
	}
	e, ok := entries[booted]
	if !ok {
		return Status{}, fmt.Errorf("status: no boot entry for the booted slot %s in %s", strings.ToUpper(string(booted)), filepath.Join(b.ESP, EntriesDir))
	}
	o, ook := entries[booted.Other()]
	return Status{Booted: info(booted, e, true, true), Other: info(booted.Other(), o, ook, false), LastUpdate: settle(last, booted, entries, b.installing.Load())}, nil
}

// LastUpdate is the last install's result as it stands now (nil before
// the first).
func (b *Box) LastUpdate() (*Result, error) {
	st, err := b.Status()
	if err != nil {
		return nil, err
	}
	return st.LastUpdate, nil
}

// Device is the device node of the partition labelled label, found in
// SysBlock's uevent files (no udev on the box).
func (b *Box) Device(label string) (string, error) {
	ues, err := filepath.Glob(filepath.Join(b.SysBlock, "*", "uevent"))
	if err != nil {
		return "", err
	}
	var found []string
	for _, ue := range ues {
		data, err := os.ReadFile(ue)
		if err != nil {
			continue // a device that went away
		}
		var name, dev string
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "PARTNAME="); ok {
				name = v
			} else if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				dev = v
			}
		}
		if name == label && dev != "" {
			found = append(found, filepath.Join(b.DevDir, dev))
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no partition labelled %s (PARTNAME=%s in %s/*/uevent)", label, label, b.SysBlock)
	case 1:
		return found[0], nil
	}
	sort.Strings(found)
	return "", fmt.Errorf("%d partitions labelled %s (%s): unplug the other gateway disk", len(found), label, strings.Join(found, ", "))
}

// An InstallError is an install that was refused or failed; nothing points
// at the slot it was writing, so the booted slot stays the default.
type InstallError struct {
	Refused bool // true: refused before a byte was written (a person can fix it)
	Msg     string
	Err     error
}

func (e *InstallError) Error() string {
	if e.Err != nil {
		return "install: " + e.Msg + ": " + e.Err.Error()
	}
	return "install: " + e.Msg
}

func (e *InstallError) Unwrap() error { return e.Err }

// ErrBusy is Install's answer while another install runs.
var ErrBusy = errors.New("install: another update is being installed")

// Install writes the checked bundle bd into the slot that is not booted:
// the squashfs to its partition, kernel and initrd to /<slot>/ on the ESP,
// and last the entry gateway-<slot>+3.conf, so the next boot tries it. It
// refuses, before writing anything, a bundle for another architecture,
// one that is not newer than the booted slot, an install while the booted
// slot is still on trial (the other slot is its way back), a partition or
// ESP too small.
// Every part is hashed again as it is written; a mismatch (the file
// changed since bundle.Open) stops before the entry is written. The
// caller reboots (Reboot) to start the new slot.
func (b *Box) Install(ctx context.Context, bd *bundle.Bundle) (err error) {
	if !b.mu.TryLock() {
		return ErrBusy
	}
	defer b.mu.Unlock()
	m := bd.Manifest
	refuse := func(format string, args ...any) error {
		return &InstallError{Refused: true, Msg: fmt.Sprintf(format, args...)}
	}
	if m.Arch != b.Arch {
		return refuse("bundle %s is for %s, this gateway is %s", m.Version, m.Arch, b.Arch)
	}
	booted, err := b.Booted()
	if err != nil {
		return &InstallError{Refused: true, Msg: "cannot tell which slot is booted", Err: err}
	}
	target := booted.Other()
	if err := b.esp(); err != nil {
		return &InstallError{Refused: true, Msg: "the ESP", Err: err}
	}
	entries, err := b.entries()
	if err != nil {
		return &InstallError{Refused: true, Msg: "reading the boot entries", Err: err}
	}
	cur, ok := entries[booted]
	if !ok {
		return refuse("no boot entry for the booted slot %s in %s", strings.ToUpper(string(booted)), filepath.Join(b.ESP, EntriesDir))
	}
	if cur.Counting {
		// Its fallback is the other slot: overwriting that would leave a
		// slot that may not work with nothing to fall back to.
		return refuse("the running slot %s (%s) is still on trial: it is marked good once the broker and the console answer; install after that", strings.ToUpper(string(booted)), cur.Version)
	}
	if m.Serial <= cur.Serial {
		return refuse("bundle %s (serial %d) is not newer than the running %s (serial %d): the boot loader boots the newest slot, so an older one would never start; to go back to the other slot, roll back", m.Version, m.Serial, cur.Version, cur.Serial)
	}
	magic := make([]byte, 4)
	if _, err := bd.Part(bundle.RootFS).ReadAt(magic, 0); err != nil || string(magic) != "hsqs" {
		// Signed, but not what a slot can boot: a build's mistake.
		return refuse("%s in bundle %s is not a squashfs (no \"hsqs\" at its start)", bundle.RootFS, m.Version)
	}
	dev, err := b.Device(target.PartLabel())
	if err != nil {
		return &InstallError{Refused: true, Msg: "slot " + strings.ToUpper(string(target)), Err: err}
	}
	rootfs := bd.Info(bundle.RootFS)
	part, err := os.OpenFile(dev, os.O_WRONLY|syscall.O_EXCL, 0)
	if err != nil {
		// O_EXCL: a block device in use (mounted) refuses to open.
		return &InstallError{Refused: true, Msg: "opening slot " + strings.ToUpper(string(target)) + "'s partition", Err: err}
	}
	defer part.Close()
	psize, err := part.Seek(0, io.SeekEnd)
	if err != nil {
		return &InstallError{Refused: true, Msg: "size of " + dev, Err: err}
	}
	if rootfs.Size > psize {
		return refuse("the root filesystem is %d bytes, slot %s's partition %s holds %d", rootfs.Size, strings.ToUpper(string(target)), dev, psize)
	}
	slotDir := filepath.Join(b.ESP, string(target))
	if err := b.espRoom(slotDir, bd.Info(bundle.Kernel).Size+bd.Info(bundle.Initrd).Size); err != nil {
		return &InstallError{Refused: true, Msg: "room on the ESP", Err: err}
	}

	// Checked: from here on bytes are written.
	b.installing.Store(true)
	defer b.installing.Store(false)
	res := Result{Version: m.Version, Serial: m.Serial, Slot: target, State: StateInstalling}
	if err := b.writeResult(res); err != nil {
		return &InstallError{Refused: true, Msg: "recording the update", Err: err}
	}
	log := b.log().With("version", m.Version, "slot", string(target))
	log.Info("installing update", "partition", dev)
	defer func() {
		if err != nil {
			res.State, res.Message = StateFailed, err.Error()
			if werr := b.writeResult(res); werr != nil {
				log.Error("recording the failed update", "err", werr)
			}
			log.Error("update failed", "err", err)
		}
	}()
	fail := func(msg string, err error) error { return &InstallError{Msg: msg, Err: err} }

	// 1. Nothing may boot the target while it is rewritten.
	if old, ok := entries[target]; ok {
		if err := atomicfile.Remove(filepath.Join(b.ESP, EntriesDir, old.Name())); err != nil {
			return fail("removing slot "+strings.ToUpper(string(target))+"'s old boot entry", err)
		}
	}
	// 2. The root filesystem, hashed again on the way.
	if _, err := part.Seek(0, io.SeekStart); err != nil {
		return fail("writing "+dev, err)
	}
	if err := copyChecked(ctx, part, bd.Part(bundle.RootFS), rootfs); err != nil {
		return fail("writing "+dev, err)
	}
	if err := part.Sync(); err != nil {
		return fail("flushing "+dev, err)
	}
	// 3. Kernel and initrd.
	if err := os.MkdirAll(slotDir, 0o755); err != nil {
		return fail("the ESP", err)
	}
	for _, name := range []string{bundle.Kernel, bundle.Initrd} {
		if err := writeESPFile(ctx, filepath.Join(slotDir, name), bd.Part(name), bd.Info(name)); err != nil {
			return fail("writing "+name+" to the ESP", err)
		}
	}
	// 4. Last, the entry: the slot exists for the boot loader only now.
	e := Entry{Slot: target, Version: m.Version, Serial: m.Serial, Options: cur.Options, Counting: true, Left: Tries}
	if err := writeEntry(filepath.Join(b.ESP, EntriesDir), e); err != nil {
		return fail("writing the boot entry", err)
	}
	res.State, res.Message = StateInstalled, "reboot to start it"
	if err := b.writeResult(res); err != nil {
		log.Error("recording the installed update", "err", err)
	}
	log.Info("update installed: it starts at the next boot", "entry", e.Name())
	return nil
}

// espRoom says whether the ESP has room for n bytes in slotDir, counting
// the files there that Install replaces.
func (b *Box) espRoom(slotDir string, n int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.ESP, &st); err != nil {
		return err
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	for _, name := range []string{bundle.Kernel, bundle.Initrd} {
		if fi, err := os.Stat(filepath.Join(slotDir, name)); err == nil {
			free += fi.Size()
		}
	}
	if n > free {
		return fmt.Errorf("kernel and initrd need %d bytes, %s has %d free", n, b.ESP, free)
	}
	return nil
}

// copyChecked copies a part to w in chunks, stopping when ctx ends, and
// fails unless its bytes hash to the signed SHA-256.
func copyChecked(ctx context.Context, w io.Writer, r io.Reader, p bundle.PartInfo) error {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, rerr := r.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != p.Size || got != p.SHA256 {
		return fmt.Errorf("%s changed since it was checked (%d bytes, SHA-256 %s; signed: %d, %s): not switching to it", p.Name, n, got, p.Size, p.SHA256)
	}
	return nil
}

// writeESPFile replaces path with a part: a temporary file, fsync, rename.
// No chmod: vfat has no modes to set.
func writeESPFile(ctx context.Context, path string, r io.Reader, p bundle.PartInfo) error {
	dir := filepath.Dir(path)
	// The old file goes first: the ESP may not hold three kernels, and
	// no entry points at this slot now.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.CreateTemp(dir, ".new-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := copyChecked(ctx, f, r, p); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(dir)
}

// writeEntry writes e into dir atomically. The temporary name does not end
// in .conf, so the boot loader never reads a half-written entry.
func writeEntry(dir string, e Entry) error {
	f, err := os.CreateTemp(dir, ".entry-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(e.Marshal())
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, e.Name())); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(dir)
}

// rename moves a slot's entry to the name of to (a counter change).
func (b *Box) rename(from, to Entry) error {
	dir := filepath.Join(b.ESP, EntriesDir)
	if err := os.Rename(filepath.Join(dir, from.Name()), filepath.Join(dir, to.Name())); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// MarkGood keeps the booted slot: its entry loses the boot counter
// (gateway-b+2-1.conf becomes gateway-b.conf), so it stays the default.
// Call it once the box works (the broker accepts, the console answers).
// A slot that is good already is left as it is; changed says whether the
// entry was renamed.
func (b *Box) MarkGood() (changed bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	booted, err := b.Booted()
	if err != nil {
		return false, err
	}
	if err := b.esp(); err != nil {
		return false, err
	}
	entries, err := b.entries()
	if err != nil {
		return false, err
	}
	e, ok := entries[booted]
	if !ok {
		return false, fmt.Errorf("mark good: no boot entry for the booted slot %s", strings.ToUpper(string(booted)))
	}
	if last, err := b.readResult(); err == nil && last != nil && last.Slot == booted && last.State == StateInstalled {
		last.State, last.Message = StateGood, ""
		defer func() {
			if err == nil {
				err = b.writeResult(*last)
			}
		}()
	}
	if !e.Counting {
		return false, nil
	}
	good := e
	good.Counting, good.Left, good.Done = false, 0, 0
	if err := b.rename(e, good); err != nil {
		return false, fmt.Errorf("mark good: %w", err)
	}
	b.log().Info("slot marked good", "slot", string(booted), "version", e.Version, "entry", good.Name())
	return true, nil
}

// markBad takes the booted slot's last tries away, so the other slot
// boots next. msg goes into the last update's result.
func (b *Box) markBad(msg string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	booted, err := b.Booted()
	if err != nil {
		return err
	}
	if err := b.esp(); err != nil {
		return err
	}
	entries, err := b.entries()
	if err != nil {
		return err
	}
	e, ok := entries[booted]
	if !ok {
		return fmt.Errorf("no boot entry for the booted slot %s", strings.ToUpper(string(booted)))
	}
	o, ok := entries[booted.Other()]
	if !ok || o.State() == "bad" {
		return fmt.Errorf("slot %s has no bootable entry to fall back to", strings.ToUpper(string(booted.Other())))
	}
	bad := e
	bad.Counting, bad.Left = true, 0
	if e.Counting {
		bad.Done = e.Done
	}
	if err := b.rename(e, bad); err != nil {
		return err
	}
	if last, err := b.readResult(); err == nil && last != nil && last.Slot == booted {
		last.State, last.Message = StateRolledBack, msg
		if err := b.writeResult(*last); err != nil {
			return err
		}
	}
	b.log().Warn("slot marked bad: the other slot boots next", "slot", string(booted), "entry", bad.Name(), "why", msg)
	return nil
}

// Rollback makes the other slot boot next, by hand: the booted slot's
// entry gets no tries left (gateway-b+0.conf), which sorts it last. It
// refuses when the other slot has nothing bootable. The caller reboots.
func (b *Box) Rollback() error {
	if err := b.markBad("rolled back by hand"); err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	return nil
}

// GuardOptions say how long a slot on trial gets to prove itself.
type GuardOptions struct {
	// Check says whether the box works (the broker accepts, the console
	// answers); nil error means yes.
	Check func(ctx context.Context) error
	// Timeout bounds the wait for a passing Check, from the Guard's start.
	Timeout time.Duration
	// Interval between checks (default 1 s).
	Interval time.Duration
}

// Guard watches a booted slot that is on trial: once Check passes it marks
// the slot good; if Check has not passed within Timeout, it takes the
// slot's remaining tries away and reboots, so the old slot boots. It does
// not let the boot loader retry: the kernel came up, so a slot that fails
// its check fails it again, and each retry would cost a boot and a
// Timeout. (A slot that never gets this far, a kernel panic or a hang, is
// left to the boot counter; a hang needs the board's watchdog.) A slot not
// on trial returns at once. When ctx ends first, nothing changes.
func (b *Box) Guard(ctx context.Context, o GuardOptions) error {
	if o.Check == nil || o.Timeout <= 0 {
		return errors.New("guard: needs a Check and a Timeout")
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	st, err := b.Status()
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	if last := st.LastUpdate; last != nil && (last.State == StateRolledBack || last.State == StateFailed) {
		// The boot loader gave up on it, or a power cut stopped it: keep
		// that in the record.
		if err := b.writeResult(*last); err != nil {
			return fmt.Errorf("guard: %w", err)
		}
	}
	if st.Booted.State == "good" {
		return nil
	}
	log := b.log().With("slot", string(st.Booted.Slot), "version", st.Booted.Version)
	log.Info("slot on trial: waiting for the box to work", "timeout", o.Timeout, "tries_left", st.Booted.TriesLeft)
	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	var lastErr error
	for {
		cctx, cancel := context.WithTimeout(ctx, o.Interval)
		lastErr = o.Check(cctx)
		cancel()
		if lastErr == nil {
			if _, err := b.MarkGood(); err != nil {
				return fmt.Errorf("guard: %w", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			msg := fmt.Sprintf("%s did not work within %s after boot: %v", st.Booted.Version, o.Timeout, lastErr)
			if err := b.markBad(msg); err != nil {
				return fmt.Errorf("guard: %s, and falling back failed: %w", msg, err)
			}
			log.Error("falling back to the other slot", "why", msg)
			if b.Reboot == nil {
				return fmt.Errorf("guard: %s: no reboot function", msg)
			}
			return b.Reboot()
		case <-tick.C:
		}
	}
}
