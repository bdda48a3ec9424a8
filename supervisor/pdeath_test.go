package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a gatewayd stand-in ("host"): run with hostEnv
// set to a folder, it supervises one app there, prints the app's pid and
// waits to be killed.
const (
	hostEnv  = "SUPERVISOR_TEST_HOST"
	childEnv = "SUPERVISOR_TEST_CHILD"
)

func runHost() int {
	// Keep the main thread to this goroutine: the runtime never ends the main
	// thread, so a fork from it would hide the thread-death problem.
	runtime.LockOSThread()
	dir := os.Getenv(hostEnv)
	s, err := New(Options{LogDir: filepath.Join(dir, "log"), StateDir: filepath.Join(dir, "run"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := Spec{Name: "app", Command: os.Getenv(childEnv),
		Args: []string{"-grandchildren", "2", "-pidfile", filepath.Join(dir, "pids")}}
	if err := s.Start(ctx, []Spec{spec}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.WaitReady(ctx, "app"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// End many OS threads (a goroutine that exits locked takes its thread
	// along): had the app been forked from one of them, its parent-death
	// signal would fire now and kill it.
	for range 8 {
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				time.Sleep(time.Millisecond)
			}()
		}
		wg.Wait()
	}
	st, err := s.Get("app")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("app %d %d\n", st.PID, st.Restarts)
	for {
		time.Sleep(time.Hour)
	}
}

// TestKilledSupervisorLeavesNothing: kill -9 of the supervisor's process
// kills its app (parent-death signal, which survives the runtime ending
// threads), and the next supervisor ends the grandchildren left behind.
func TestKilledSupervisorLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	host := exec.Command(os.Args[0])
	host.Env = append(os.Environ(), hostEnv+"="+dir, childEnv+"="+childBin)
	host.Stderr = os.Stderr
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			host.Process.Kill()
			host.Wait()
		}
		// On failure, grandchildren may be left: end those that are still
		// the test child.
		for _, g := range readPids(t, filepath.Join(dir, "pids")) {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", g)); exe == childBin {
				syscall.Kill(g, syscall.SIGKILL)
			}
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	var pid, restarts int
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatal("host ended without reporting its app")
		}
		if _, err := fmt.Sscanf(l, "app %d %d", &pid, &restarts); err != nil {
			t.Fatalf("host said %q: %v", l, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("host did not report its app within 30s")
	}
	if !alive(pid) || restarts != 0 {
		t.Fatalf("app pid %d alive=%v restarts=%d after the host's threads churned; want alive, 0", pid, alive(pid), restarts)
	}
	grandchildren := waitPids(t, filepath.Join(dir, "pids"), 2)

	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	host.Wait()
	waited = true
	waitGone(t, 5*time.Second, pid)
	for _, g := range grandchildren {
		if !alive(g) {
			t.Fatalf("grandchild %d died with the app; the stray check below would prove nothing", g)
		}
	}

	s := newSup(t, func(o *Options) { o.StateDir = filepath.Join(dir, "run") })
	s.start(t)
	for _, g := range grandchildren {
		if alive(g) {
			t.Errorf("grandchild %d of the killed supervisor's app still runs after a new Start", g)
		}
	}
	if recs, _ := filepath.Glob(filepath.Join(dir, "run", "*"+recordSuffix)); len(recs) != 0 {
		t.Errorf("process records left: %v", recs)
	}
}
