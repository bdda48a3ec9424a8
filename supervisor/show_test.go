package supervisor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// What `gwctl status NAME` shows beside the figures (pm2 show): the policy
// with defaults applied, the pending retry, the limits, the env names.
func TestStateShowsPolicyAndPendingRetry(t *testing.T) {
	s := newSup(t, nil)
	sp := child("looper", "-crash-after", "0s")
	sp.Restart = RestartPolicy{Delay: 50 * time.Millisecond, BackoffMax: 2 * time.Second, MinUptime: time.Second}
	sp.MaxMemory = 64 << 20
	sp.Env = map[string]string{"TOKEN": "secret", "A_FIRST": "1"}
	sp.Ready = ReadyCheck{Log: "^up$"}
	s.start(t, sp)
	st := s.waitState(t, "looper", "a pending retry in backoff", 5*time.Second, func(st AppState) bool {
		return st.NextRestartIn != nil && st.RestartDelay >= 0.2 && st.Restarts >= 3
	})
	if *st.NextRestartIn > st.RestartDelay || *st.NextRestartIn < 0 {
		t.Errorf("next_restart_in_s %v outside [0, restart_delay_s %v]", *st.NextRestartIn, st.RestartDelay)
	}
	if st.Restart != (RestartInfo{DelaySeconds: 0.05, BackoffMaxSeconds: 2, MinUptimeSeconds: 1}) {
		t.Errorf("restart policy %+v", st.Restart)
	}
	if st.MaxMemoryBytes != 64<<20 || st.ReadyCheck != "log ^up$" || st.StopSignal != "SIGTERM" || st.KillTimeout != 2 {
		t.Errorf("limits: max_memory %d, ready %q, stop %q after %v", st.MaxMemoryBytes, st.ReadyCheck, st.StopSignal, st.KillTimeout)
	}
	if !slices.Equal(st.EnvNames, []string{"A_FIRST", "TOKEN"}) {
		t.Errorf("env names %q, want sorted names and no values", st.EnvNames)
	}
	if st.UnstableRestarts == 0 || st.RestartReason != "exited" {
		t.Errorf("unstable %d, reason %q", st.UnstableRestarts, st.RestartReason)
	}

	// A stop cancels the pending retry: nothing is shown as pending.
	if err := s.StopApp("looper"); err != nil {
		t.Fatal(err)
	}
	if st := s.get(t, "looper"); st.NextRestartIn != nil {
		t.Errorf("stopped app shows a retry in %v s", *st.NextRestartIn)
	}
}

// An app that cannot start is retried, and each retry counts as a restart
// (Home Assistant showed 0 restarts while it was being retried).
func TestRetriesOfAFailedStartAreCounted(t *testing.T) {
	s := newSup(t, nil)
	sp := child("ghost")
	sp.Command = filepath.Join(t.TempDir(), "missing")
	sp.Restart.BackoffMax = 50 * time.Millisecond
	s.start(t, sp)
	st := s.waitState(t, "ghost", "three counted retries", 5*time.Second, func(st AppState) bool { return st.Restarts >= 3 })
	if st.RestartReason != "cannot start" || st.Status != StatusErrored {
		t.Errorf("reason %q status %s", st.RestartReason, st.Status)
	}
}

// A newer exit never sits beside an older run's error.
func TestStopClearsAnEarlierError(t *testing.T) {
	s := newSup(t, nil)
	marker := filepath.Join(t.TempDir(), "crash")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sp := child("flaky", "-crash-if-exists", marker)
	s.start(t, sp)
	s.waitState(t, "flaky", "an error from the crash", 5*time.Second, func(st AppState) bool { return strings.Contains(st.LastError, "exit") })
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, "flaky")
	if err := s.StopApp("flaky"); err != nil {
		t.Fatal(err)
	}
	if st := s.get(t, "flaky"); st.LastError != "" {
		t.Errorf("after a requested stop (exit %v %s) last_error still %q", st.LastExitCode, st.LastSignal, st.LastError)
	}
}
