// Package brokers starts the brokers the benchmark compares, as child
// processes on free loopback ports, each from a mosquitto.conf written for
// the run, and reads their memory and CPU from /proc.
//
// Every broker gets the same conf text, so the comparison is between
// brokers, not settings: authentication on (a password file made by the
// real mosquitto_passwd, every load client logs in), persistence on, a
// loopback listener, no per-connection log lines.
package brokers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/homebox/gateway/bench/tail"
	"github.com/homebox/gateway/internal/mqttwire"
)

// Kind is a broker implementation.
type Kind string

const (
	Mosquitto Kind = "mosquitto" // Debian's mosquitto, `mosquitto -c FILE`
	Gatewayd  Kind = "gatewayd"  // `gatewayd broker --config FILE --allow-networks lan`
)

// Spec says which broker to start.
type Spec struct {
	Name string // column heading, unique in a run
	Kind Kind
	Bin  string // the executable
}

// Credentials are the one login every load client uses.
type Credentials struct {
	Username, Password string
}

// Broker is a running broker process.
type Broker struct {
	Spec Spec
	Addr string // 127.0.0.1:PORT
	Dir  string // its conf, password file and store

	cmd    *exec.Cmd
	out    *tail.Buffer
	exited chan struct{}
}

// PasswordFile writes a password file for cred with the real
// mosquitto_passwd, so both brokers read the hash format Mosquitto writes.
func PasswordFile(path string, cred Credentials) error {
	tool, err := lookTool("mosquitto_passwd")
	if err != nil {
		return err
	}
	out, err := exec.Command(tool, "-b", "-c", path, cred.Username, cred.Password).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_passwd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lookTool finds a Debian tool, which may sit in /usr/sbin outside PATH.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed: run `make test-deps` (Debian package mosquitto)", name)
}

// MosquittoBin finds Debian's mosquitto.
func MosquittoBin() (string, error) { return lookTool("mosquitto") }

// Conf is the conf text every broker under test gets. extra lines come
// last (a figure may add a bridge's connection block there).
func Conf(port int, dir string, extra []string) string {
	lines := []string{
		"# written by gwbench: the same settings for every broker under test",
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous false",
		"password_file " + filepath.Join(dir, "passwd"),
		"persistence true",
		"persistence_location " + filepath.Join(dir, "store") + "/",
		// A queue deep enough that neither broker drops by configuration
		// under our bursts, and no inflight window: the QoS 1 figure then
		// measures each broker's cost per message, not a window size.
		"max_queued_messages 100000",
		"max_inflight_messages 0",
		"connection_messages false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
	}
	if os.Geteuid() == 0 {
		// Mosquitto started as root switches to the user "mosquitto",
		// which cannot read a private temp folder; stay who we are.
		lines = append(lines, "user root")
	}
	lines = append(lines, extra...)
	return strings.Join(lines, "\n") + "\n"
}

// Start writes dir/mosquitto.conf and dir/passwd, starts the broker and
// returns once it accepts a logged-in MQTT client.
func Start(ctx context.Context, spec Spec, dir string, cred Credentials, extra []string) (*Broker, error) {
	if err := os.MkdirAll(filepath.Join(dir, "store"), 0o750); err != nil {
		return nil, err
	}
	if err := PasswordFile(filepath.Join(dir, "passwd"), cred); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // a free port can be taken between picking and binding
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		b, err := start(ctx, spec, dir, port, cred, extra)
		if err == nil {
			return b, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, spec Spec, dir string, port int, cred Credentials, extra []string) (*Broker, error) {
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(Conf(port, dir, extra)), 0o640); err != nil {
		return nil, err
	}
	var args []string
	switch spec.Kind {
	case Mosquitto:
		args = []string{"-c", conf}
	case Gatewayd:
		args = []string{"broker", "--config", conf, "--allow-networks", "lan"}
	default:
		return nil, fmt.Errorf("broker %s: unknown kind %q (want mosquitto or gatewayd)", spec.Name, spec.Kind)
	}
	b := &Broker{Spec: spec, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, out: &tail.Buffer{Max: 16 << 10}, exited: make(chan struct{})}
	b.cmd = exec.Command(spec.Bin, args...)
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Bin, err)
	}
	go func() { _ = b.cmd.Wait(); close(b.exited) }()

	deadline := time.Now().Add(15 * time.Second)
	for {
		err := b.probe(cred)
		if err == nil {
			return b, nil
		}
		select {
		case <-b.exited:
			return nil, fmt.Errorf("%s exited during start (%v): %s", spec.Name, b.cmd.ProcessState, b.out)
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, fmt.Errorf("%s not accepting MQTT logins on %s after 15 s: %v; output: %s", spec.Name, b.Addr, err, b.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe logs in once and disconnects.
func (b *Broker) probe(cred Credentials) error {
	c, err := net.DialTimeout("tcp", b.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	pkt := mqttwire.AppendConnect(nil, mqttwire.Connect{ClientID: "gwbench-probe", Username: cred.Username, Password: cred.Password, KeepAlive: 10, CleanSession: true})
	if _, err := c.Write(pkt); err != nil {
		return err
	}
	pk, err := mqttwire.NewReader(c, 64, 1024).Next()
	if err != nil {
		return err
	}
	code, err := mqttwire.ConnackCode(pk)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("probe login refused with CONNACK code %d", code)
	}
	_, _ = c.Write(mqttwire.AppendDisconnect(nil))
	return nil
}

// PID is the broker's process id.
func (b *Broker) PID() int { return b.cmd.Process.Pid }

// Output is the broker's last log lines.
func (b *Broker) Output() string { return b.out.String() }

// Alive reports whether the process is still running.
func (b *Broker) Alive() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM, waits up to 5 s, then kills.
func (b *Broker) Stop() error {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
		return fmt.Errorf("%s did not stop within 5 s of SIGTERM; killed", b.Spec.Name)
	}
	return nil
}

// RSSKB is the broker's resident memory (VmRSS) in KiB.
func (b *Broker) RSSKB() (int64, error) { return RSSKB(b.PID()) }

// CPUSeconds is the broker's user+system CPU time so far.
func (b *Broker) CPUSeconds() (float64, error) { return CPUSeconds(b.PID()) }

// RSSKB reads VmRSS of a process from /proc/PID/status.
func RSSKB(pid int) (int64, error) {
	f, err := kbFields(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
	if err != nil {
		return 0, err
	}
	return f["VmRSS"], nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// CPUSeconds reads utime+stime of a process from /proc/PID/stat.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields are counted after its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unreadable", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(ut+st) / clockTicks, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
