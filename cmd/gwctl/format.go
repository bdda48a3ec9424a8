package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/homebox/gateway/webui/api"
)

func printTable(w io.Writer, apps []api.App, color bool) {
	if len(apps) == 0 {
		fmt.Fprintln(w, "no apps (gateway.yaml declares none)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tPID\tUPTIME\tRESTARTS\tCPU\tMEMORY")
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.Name, paint(string(a.Status), color),
			pid(a.PID), uptime(a), a.Restarts, fmt.Sprintf("%.1f%%", a.CPUPercent), bytesHuman(a.MemoryBytes))
	}
	tw.Flush()
}

// printShow prints every field `pm2 show` would, one per line.
func printShow(w io.Writer, a api.App, color bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("name", a.Name)
	row("status", paint(string(a.Status), color))
	row("pid", pid(a.PID))
	row("uptime", uptime(a))
	row("restarts", fmt.Sprint(a.Restarts))
	row("unstable restarts", fmt.Sprint(a.UnstableRestarts))
	row("last exit", lastExit(a))
	if a.LastError != "" {
		row("last error", a.LastError)
	}
	if a.RestartReason != "" {
		row("restart reason", a.RestartReason)
	}
	row("next restart", nextRestart(a))
	row("restart policy", restartPolicy(a.Restart))
	row("ready", yesNo(a.Ready))
	row("ready check", orDash(a.ReadyCheck))
	row("cpu", fmt.Sprintf("%.1f%%", a.CPUPercent))
	row("memory", bytesHuman(a.MemoryBytes))
	row("max memory", maxMemory(a.MaxMemoryBytes))
	row("stop", fmt.Sprintf("%s, SIGKILL after %s", orDash(a.StopSignal), seconds(a.KillTimeout)))
	row("env", orDash(strings.Join(a.EnvNames, ", ")))
	row("user", orDash(a.User))
	row("command", a.Command)
	row("args", shellJoin(a.Args))
	row("cwd", orDash(a.Cwd))
	row("log file", a.LogFile)
	row("created at", timeOrDash(a.CreatedAt))
	if len(a.After) > 0 {
		row("after", strings.Join(a.After, ", "))
	}
	tw.Flush()
}

// nextRestart is the pending retry, with the backoff delay it waits.
func nextRestart(a api.App) string {
	if a.NextRestartIn == nil {
		return "-"
	}
	return fmt.Sprintf("in %s (backoff delay %s)", seconds(*a.NextRestartIn), seconds(a.RestartDelay))
}

func restartPolicy(r api.RestartPolicy) string {
	return fmt.Sprintf("delay %s, backoff up to %s, stable after %s",
		seconds(r.DelaySeconds), seconds(r.BackoffMaxSeconds), seconds(r.MinUptimeSeconds))
}

func maxMemory(b uint64) string {
	if b == 0 {
		return "no limit"
	}
	return bytesHuman(b)
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

func pid(p int) string {
	if p <= 0 {
		return "-"
	}
	return fmt.Sprint(p)
}

func uptime(a api.App) string {
	if a.PID <= 0 {
		return "-"
	}
	return durationHuman(time.Duration(a.UptimeSeconds * float64(time.Second)))
}

// durationHuman is pm2's short form: 45s, 12m, 3h, 2D.
func durationHuman(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func bytesHuman(b uint64) string {
	switch {
	case b == 0:
		return "-"
	case b < 1<<10:
		return fmt.Sprintf("%d B", b)
	case b < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	case b < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}

func lastExit(a api.App) string {
	var what string
	switch {
	case a.LastSignal != "":
		what = "signal " + a.LastSignal
	case a.LastExitCode != nil:
		what = fmt.Sprintf("code %d", *a.LastExitCode)
	default:
		return "-"
	}
	if !a.LastExitAt.IsZero() {
		what += " at " + a.LastExitAt.Local().Format(time.DateTime)
	}
	return what
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// shellJoin shows args so that a person can copy them into a shell.
func shellJoin(args []string) string {
	if len(args) == 0 {
		return "-"
	}
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}

var statusColors = map[string]string{
	"online": "32", "launching": "36", "waiting": "36", "stopping": "33", "stopped": "90", "errored": "31",
}

func paint(status string, color bool) string {
	if c, ok := statusColors[status]; ok && color {
		return "\x1b[" + c + "m" + status + "\x1b[0m"
	}
	return status
}
