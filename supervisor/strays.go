package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/homebox/gateway/internal/atomicfile"
)

// procRecord is written to StateDir for every running app, so that a
// gatewayd started after this one died (kill -9, power cut with a
// persistent run folder) can end what is left of its apps. The pid alone
// could name an unrelated process by now; with its start time it cannot.
type procRecord struct {
	App        string `json:"app"`
	PID        int    `json:"pid"`
	PGID       int    `json:"pgid"`
	StartTicks uint64 `json:"start_ticks"` // field 22 of /proc/PID/stat
	BootID     string `json:"boot_id"`
	Supervisor int    `json:"supervisor_pid"`
}

// recordSuffix names the record files in StateDir, which other parts of
// gatewayd share (its socket lives there).
const recordSuffix = ".proc.json"

func recordPath(dir, app string) string { return filepath.Join(dir, app+recordSuffix) }

func writeRecord(dir string, rec procRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state folder: %w", err)
	}
	if err := atomicfile.Write(recordPath(dir, rec.App), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("recording pid of %s: %w", rec.App, err)
	}
	return nil
}

// endStrays kills the process groups recorded in dir by an earlier
// supervisor that are still running, waits until they are gone (or ctx
// ends) and removes the records.
func endStrays(ctx context.Context, dir, boot string, logger *slog.Logger) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+recordSuffix))
	if err != nil {
		return err
	}
	var killed []int
	for _, path := range paths {
		var rec procRecord
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		switch {
		case err != nil:
			logger.Warn("ignoring unreadable process record", "file", path, "err", err)
		case rec.BootID != boot:
			// From before a reboot: nothing of it runs.
		case killStray(rec):
			logger.Warn("ended a stray app from an earlier run", "app", rec.App, "pid", rec.PID, "pgid", rec.PGID)
			killed = append(killed, rec.PGID)
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing process record: %w", err)
		}
	}
	// SIGKILL cannot be refused, but the exit takes a moment: wait, so that
	// the ports and files of the strays are free when the apps start.
	for _, pgid := range killed {
		for len(groupMembers(pgid)) > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("strays of process group %d still running: %w", pgid, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}

// killStray SIGKILLs the group of rec if it is still the group rec names.
func killStray(rec procRecord) bool {
	if rec.PGID <= 1 || rec.PGID == syscall.Getpgrp() || rec.PID <= 1 {
		return false
	}
	// A live (or unreaped) leader must be the recorded process, else its pid
	// was reused and the group now belongs to someone else. A gone leader is
	// fine: Linux does not reuse a pid while a group of that id exists, so any
	// member of the group is one of ours.
	if st, err := readProcStat(rec.PID); err == nil && st.StartTicks != rec.StartTicks {
		return false
	}
	if len(groupMembers(rec.PGID)) == 0 {
		return false
	}
	err := syscall.Kill(-rec.PGID, syscall.SIGKILL)
	return err == nil
}
