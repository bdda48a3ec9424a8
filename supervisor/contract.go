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

	// What `pm2 show` prints beside the figures: the policy, the backoff
	// state and the limits the app runs under.
	Restart        RestartInfo `json:"restart"`
	RestartDelay   float64     `json:"restart_delay_s"`   // the delay chosen for the pending or last restart
	NextRestartIn  *float64    `json:"next_restart_in_s"` // null when no restart is pending
	MaxMemoryBytes uint64      `json:"max_memory_bytes"`  // 0: no limit
	ReadyCheck     string      `json:"ready_check"`       // "tcp HOST:PORT", "log REGEXP" or "process running"
	StopSignal     string      `json:"stop_signal"`
	KillTimeout    float64     `json:"kill_timeout_s"`
	EnvNames       []string    `json:"env,omitempty"`  // names only: values may be secrets
	User           string      `json:"user,omitempty"` // user[:group] the running app was started as; empty: gatewayd's own
}

// RestartInfo is an app's restart policy in seconds, defaults applied.
type RestartInfo struct {
	DelaySeconds      float64 `json:"delay_s"`
	BackoffMaxSeconds float64 `json:"backoff_max_s"`
	MinUptimeSeconds  float64 `json:"min_uptime_s"`
}
