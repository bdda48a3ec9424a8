package slots

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/homebox/gateway/internal/atomicfile"
)

// FactoryReset asks for the data partition to be wiped and reboots. The
// wipe itself happens at the next boot (ApplyFactoryReset, before anything
// opens a file there): wiping under the running broker and registry would
// let them write their state back on the way down.
func (b *Box) FactoryReset() error {
	p := filepath.Join(b.Root, FactoryResetFlag)
	if err := atomicfile.Write(p, []byte("wipe the data partition at the next boot\n"), 0o600); err != nil {
		return fmt.Errorf("factory reset: %w", err)
	}
	b.log().Warn("factory reset: the data partition is wiped at the next boot")
	if b.Reboot == nil {
		return errors.New("factory reset: requested, but no reboot function: reboot the box to finish it")
	}
	return b.Reboot()
}

// ResetPending says whether a factory reset waits for the next boot.
func ResetPending(root string) bool {
	_, err := os.Lstat(filepath.Join(root, FactoryResetFlag))
	return err == nil
}

// ApplyFactoryReset wipes the data partition (<root>/data) if a factory
// reset was asked for, and says whether it did: everything but lost+found
// goes, then the flag, last, so a power cut in the middle wipes again at
// the next boot. The box then starts as on its first boot. Call it early
// at boot, before anything uses the data partition.
func ApplyFactoryReset(root string) (bool, error) {
	if !ResetPending(root) {
		return false, nil
	}
	data := filepath.Join(root, DataDir)
	flag := filepath.Base(FactoryResetFlag)
	des, err := os.ReadDir(data)
	if err != nil {
		return false, fmt.Errorf("factory reset: %w", err)
	}
	for _, de := range des {
		if de.Name() == "lost+found" || de.Name() == flag {
			continue
		}
		if err := os.RemoveAll(filepath.Join(data, de.Name())); err != nil {
			return false, fmt.Errorf("factory reset: %w", err)
		}
	}
	if err := atomicfile.SyncDir(data); err != nil {
		return false, fmt.Errorf("factory reset: %w", err)
	}
	if err := os.Remove(filepath.Join(data, flag)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("factory reset: %w", err)
	}
	return true, atomicfile.SyncDir(data)
}
