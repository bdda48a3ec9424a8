package supervisor

import "time"

// This file is the contract between the supervisor and its users (the
// control API, gwctl, the console). The JSON names are a contract too.

// Status is an app's state as PM2 would name it.
type Status string

const (
	StatusOnline    Status = "online"    // running and ready
	StatusLaunching Status = "launching" // started, not ready yet
	StatusWaiting   Status = "waiting"   // waits for an app it comes after
	StatusStopping  Status = "stopping"
	StatusStopped   Status = "stopped"
	StatusErrored   Status = "errored" // crash loop or cannot start; still retried
)

// AppState is what `gwctl status NAME` prints and /api/apps returns.
type AppState struct {
	Name             string    `json:"name"`
	Status           Status    `json:"status"`
	PID              int       `json:"pid"`
	UptimeSeconds    float64   `json:"uptime_s"`
	Restarts         int       `json:"restarts"`
	UnstableRestarts int       `json:"unstable_restarts"`
	LastExitCode     *int      `json:"last_exit_code"`
	LastSignal       string    `json:"last_signal"`
	LastExitAt       time.Time `json:"last_exit_at,omitzero"`
	LastError        string    `json:"last_error,omitempty"`     // why errored, or why last restarted (e.g. max_memory)
	RestartReason    string    `json:"restart_reason,omitempty"` // what caused the last automatic restart: exited, max_memory
	Ready            bool      `json:"ready"`
	CPUPercent       float64   `json:"cpu_percent"`
	MemoryBytes      uint64    `json:"memory_bytes"`
	Command          string    `json:"command"`
	Args             []string  `json:"args"`
	Cwd              string    `json:"cwd"`
	LogFile          string    `json:"log_file"`
	CreatedAt        time.Time `json:"created_at"`
	After            []string  `json:"after,omitempty"`
}
