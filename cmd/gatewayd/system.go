package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/homebox/gateway/rootfs/bundle"
	"github.com/homebox/gateway/rootfs/slots"
	"github.com/homebox/gateway/webui"
	"github.com/homebox/gateway/webui/api"
)

// defaultTrialTimeout is how long a newly installed slot gets, from
// gatewayd's start, for its broker to accept and its console to answer
// before the box falls back to the other slot.
const defaultTrialTimeout = 3 * time.Minute

// slotSystem is rootfs/slots as the API's System: updates, rollback and
// factory reset of a box started from the disk image.
type slotSystem struct {
	box     *slots.Box
	version string
	log     *slog.Logger
}

func newSlotSystem(root, version string, log *slog.Logger) *slotSystem {
	return &slotSystem{box: slots.OnBox(root, slots.HostArch(), reboot, log), version: version, log: log}
}

// onImage says whether the box started from the disk image (it has slots).
func (s *slotSystem) onImage() error {
	_, err := s.box.Booted()
	return err
}

// needImage refuses, as a conflict the owner can read, what only a box
// started from the disk image can do.
func (s *slotSystem) needImage(what string) error {
	if err := s.onImage(); err != nil {
		return &webui.SystemError{Status: http.StatusConflict, Msg: what + err.Error()}
	}
	return nil
}

func (s *slotSystem) Info() api.System {
	out := api.System{Version: s.version, Arch: slots.HostArch()}
	if err := s.onImage(); err != nil {
		out.Problem = err.Error()
		return out
	}
	st, err := s.box.Status()
	if err != nil {
		out.Problem = err.Error()
		return out
	}
	out.Slots = true
	booted, other := apiSlot(st.Booted), apiSlot(st.Other)
	out.Booted, out.Other = &booted, &other
	if r := st.LastUpdate; r != nil {
		out.LastUpdate = &api.UpdateResult{Version: r.Version, Serial: r.Serial, Slot: string(r.Slot), State: r.State, Message: r.Message, Time: r.Time}
	}
	return out
}

func apiSlot(i slots.SlotInfo) api.Slot {
	return api.Slot{Slot: string(i.Slot), Version: i.Version, Serial: i.Serial, State: i.State, TriesLeft: i.TriesLeft}
}

func (s *slotSystem) Install(ctx context.Context, r io.Reader, maxSize int64) (api.Updated, error) {
	if err := s.needImage(""); err != nil {
		return api.Updated{}, err
	}
	m, err := s.box.InstallReader(ctx, r, maxSize)
	return s.installed(m, err)
}

func (s *slotSystem) InstallFile(ctx context.Context, path string) (api.Updated, error) {
	if err := s.needImage(""); err != nil {
		return api.Updated{}, err
	}
	m, err := s.box.InstallFile(ctx, path)
	return s.installed(m, err)
}

// installed turns an install's outcome into the API's: a bundle refused
// for what it is (signature, architecture, damage) is the owner's to fix
// (422), an install the box refuses now (busy, not newer, on trial) is a
// conflict (409); anything else failed on the box (500).
func (s *slotSystem) installed(m bundle.Manifest, err error) (api.Updated, error) {
	var be *bundle.Error
	var ie *slots.InstallError
	switch {
	case err == nil:
		booted, _ := s.box.Booted()
		return api.Updated{Version: m.Version, Slot: string(booted.Other())}, nil
	case errors.As(err, &be):
		return api.Updated{}, &webui.SystemError{Status: http.StatusUnprocessableEntity, Msg: err.Error()}
	case errors.Is(err, slots.ErrBusy), errors.As(err, &ie) && ie.Refused:
		return api.Updated{}, &webui.SystemError{Status: http.StatusConflict, Msg: err.Error()}
	}
	return api.Updated{}, err
}

func (s *slotSystem) Rollback() error {
	if err := s.needImage(""); err != nil {
		return err
	}
	if err := s.box.Rollback(); err != nil {
		return &webui.SystemError{Status: http.StatusConflict, Msg: err.Error()}
	}
	return nil
}

// FactoryReset sets the flag the next boot wipes the data partition for;
// the API reboots after answering.
func (s *slotSystem) FactoryReset() error {
	if err := s.needImage("factory reset: "); err != nil {
		return err
	}
	// A Box without a reboot function only sets the flag: the API reboots
	// once its answer is out.
	flagOnly := slots.OnBox(s.box.Root, s.box.Arch, nil, s.log)
	if err := flagOnly.FactoryReset(); err != nil && !slots.ResetPending(s.box.Root) {
		return err
	}
	return nil
}

func (s *slotSystem) Reboot() error { return reboot() }

// guard proves a slot on trial: once the broker accepts and the console
// answers it is marked good; if not within trialTimeout, the box falls
// back to the other slot.
func (s *slotSystem) guard(ctx context.Context, timeout time.Duration, brokerAddr func() string, consoleAddr func() string) {
	if s.onImage() != nil {
		return
	}
	err := s.box.Guard(ctx, slots.GuardOptions{
		Timeout: timeout,
		Check: func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", brokerAddr())
			if err != nil {
				return fmt.Errorf("the broker does not accept: %w", err)
			}
			c.Close()
			return consoleAnswers(ctx, consoleAddr())
		},
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("update guard", "error", err)
	}
}

// consoleAnswers asks the console's health route over loopback.
func consoleAnswers(ctx context.Context, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("the console is not listening")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", port)+"/api/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the console does not answer: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the console answers %s", resp.Status)
	}
	return nil
}

// reboot restarts the box through its init, so every app stops as on a
// shutdown (the broker saves its store); if no init answers, the kernel
// restarts it after a sync.
func reboot() error {
	if err := exec.Command("reboot").Run(); err == nil {
		return nil
	}
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// factoryResetMain is `gatewayd factory-reset --apply`: the disk image's
// init runs it right after mounting the data partition, before anything
// opens a file there, so the wipe never races a running app.
func factoryResetMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd factory-reset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", defaultRoot(), "the box's root folder")
	apply := fs.Bool("apply", false, "wipe the data partition now if a factory reset is pending")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*apply || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "gatewayd factory-reset: only --apply, at boot; to ask for a reset use `gwctl factory-reset --yes`")
		return 2
	}
	wiped, err := slots.ApplyFactoryReset(*root)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd factory-reset: %v\n", err)
		return 1
	}
	if wiped {
		fmt.Fprintln(stdout, "factory reset: the data partition was wiped; the box starts as new")
	}
	return 0
}
