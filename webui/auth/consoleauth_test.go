package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newAuth(t *testing.T, path string, c *clock) *Auth {
	t.Helper()
	a, err := New(Options{Path: path, BcryptCost: bcrypt.MinCost, Now: c.now, SlowBase: time.Second, SlowMax: 8 * time.Second,
		SessionIdle: time.Hour, SessionMax: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSetupLoginAndPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data/gateway/console.json")
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	a := newAuth(t, path, c)
	if !a.SetupNeeded() {
		t.Fatal("fresh box needs no setup?")
	}
	if _, err := a.Login("10.0.0.2", "whatever1", false); !errors.Is(err, ErrNotSet) {
		t.Errorf("login before setup: %v", err)
	}
	if _, err := a.Setup("short"); err == nil || !strings.Contains(err.Error(), "at least 8") {
		t.Errorf("short password: %v", err)
	}
	s, err := a.Setup("correct horse")
	if err != nil || s.Token == "" || s.CSRF == "" || s.Token == s.CSRF {
		t.Fatalf("setup: %+v %v", s, err)
	}
	if _, err := a.Setup("another one"); !errors.Is(err, ErrAlreadySet) {
		t.Errorf("second setup: %v", err)
	}
	raw, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if strings.Contains(string(raw), "correct horse") || !strings.Contains(string(raw), `"bcrypt":"$2`) || st.Mode().Perm() != 0o600 {
		t.Errorf("stored %s mode %v", raw, st.Mode())
	}
	// A restarted gatewayd knows the password.
	b := newAuth(t, path, c)
	if b.SetupNeeded() || !b.Verify("correct horse") || b.Verify("correct horsE") {
		t.Error("password not kept across restarts")
	}
	if _, err := b.Login("10.0.0.2", "correct horse", false); err != nil {
		t.Errorf("login: %v", err)
	}
	// A damaged file is an error, not an open door.
	os.WriteFile(path, []byte("{nope"), 0o600)
	if _, err := New(Options{Path: path}); err == nil {
		t.Error("damaged file accepted")
	}
}

func TestFailedLoginsAreSlowedPerAddressAndBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	a := newAuth(t, filepath.Join(t.TempDir(), "c.json"), c)
	if _, err := a.Setup("correct horse"); err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	for range 6 {
		if _, err := a.Login("10.0.0.9", "guess", false); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("wrong password: %v", err)
		}
		_, err := a.Login("10.0.0.9", "correct horse", false)
		var se *SlowedError
		if !errors.As(err, &se) {
			t.Fatalf("attempt right after a failure: %v", err)
		}
		waits = append(waits, se.RetryAfter)
		c.add(se.RetryAfter)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Errorf("waits %v, want %v seconds", waits, want)
			break
		}
	}
	// Another address is not slowed by this one's failures.
	if _, err := a.Login("10.0.0.10", "correct horse", false); err != nil {
		t.Errorf("other address: %v", err)
	}
	// The good password after the wait clears the count.
	if _, err := a.Login("10.0.0.9", "correct horse", false); err != nil {
		t.Fatalf("after waiting: %v", err)
	}
	a.Login("10.0.0.9", "guess", false)
	_, err := a.Login("10.0.0.9", "x", false)
	var se *SlowedError
	if !errors.As(err, &se) || se.RetryAfter != time.Second {
		t.Errorf("count not cleared by a good login: %v", err)
	}
}

func TestSessionsExpireAndEndOnPasswordChange(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	a := newAuth(t, filepath.Join(t.TempDir(), "c.json"), c)
	s, err := a.Setup("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := a.Session(s.Token)
	if !ok || !got.CheckCSRF(s.CSRF) || got.CheckCSRF("") || got.CheckCSRF(s.Token) {
		t.Fatalf("session %+v %v", got, ok)
	}
	if _, ok := a.Session("forged"); ok {
		t.Error("forged token accepted")
	}
	// Used every 50 minutes, it lives until the 3-hour cap.
	for range 3 {
		c.add(50 * time.Minute)
		if _, ok := a.Session(s.Token); !ok {
			t.Fatal("active session ended early")
		}
	}
	c.add(31 * time.Minute)
	if _, ok := a.Session(s.Token); ok {
		t.Error("session outlived SessionMax")
	}
	s2, _ := a.Login("10.0.0.1", "correct horse", false)
	c.add(61 * time.Minute)
	if _, ok := a.Session(s2.Token); ok {
		t.Error("idle session kept")
	}
	s3, _ := a.Login("10.0.0.1", "correct horse", false)
	if err := a.SetPassword("battery staple"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Session(s3.Token); ok {
		t.Error("session survived a password change")
	}
	if !a.Verify("battery staple") || a.Verify("correct horse") {
		t.Error("password not changed")
	}
	a.Logout("nothing") // harmless
}

// Forty wrong passwords sent side by side from one address: one is
// evaluated, the others are refused as slowed. Rotating IPv6 addresses in
// one /64 counts as one client; another /64 is not held up.
func TestLoginLimiterHoldsUnderConcurrencyAndIPv6Rotation(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	a := newAuth(t, filepath.Join(t.TempDir(), "console.json"), c)
	if _, err := a.Setup("correct horse"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wrong, slowed := 0, 0
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Login("192.0.2.7", "guess-guess", false)
			var s *SlowedError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrWrongPassword):
				wrong++
			case errors.As(err, &s):
				slowed++
			default:
				t.Errorf("unexpected answer: %v", err)
			}
		}()
	}
	wg.Wait()
	if wrong != 1 || slowed != 39 {
		t.Errorf("40 concurrent wrong passwords: %d evaluated, %d slowed; want 1 and 39", wrong, slowed)
	}

	if _, err := a.Login("2001:db8:1:2::1", "guess-guess", false); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("first IPv6 attempt: %v", err)
	}
	var s *SlowedError
	for i := 2; i < 20; i++ {
		addr := fmt.Sprintf("2001:db8:1:2:%x::%x", i, i)
		if _, err := a.Login(addr, "guess-guess", false); !errors.As(err, &s) {
			t.Fatalf("rotated address %s in the same /64: %v", addr, err)
		}
	}
	if _, err := a.Login("2001:db8:1:3::1", "correct horse", false); err != nil {
		t.Errorf("another /64 is held up: %v", err)
	}
	if _, err := a.Login("::ffff:192.0.2.7", "correct horse", false); !errors.As(err, &s) {
		t.Errorf("a v4-mapped spelling of a slowed address: %v", err)
	}
}

// The hashing itself is bounded box-wide: with every turn taken, a check
// waits HashWait and is refused as slowed.
func TestHashingIsBoundedBoxWide(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	a, err := New(Options{Path: filepath.Join(t.TempDir(), "console.json"), BcryptCost: bcrypt.MinCost, Now: c.now, HashWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Setup("correct horse"); err != nil {
		t.Fatal(err)
	}
	for range cap(a.hashing) {
		a.hashing <- struct{}{}
	}
	var s *SlowedError
	if _, err := a.Login("192.0.2.8", "correct horse", false); !errors.As(err, &s) {
		t.Errorf("login with every hashing turn taken: %v", err)
	}
	for range cap(a.hashing) {
		<-a.hashing
	}
	if _, err := a.Login("192.0.2.8", "correct horse", false); err != nil {
		t.Errorf("login once turns are free: %v", err)
	}
}

// A kept session outlives the idle limit, up to SessionMax.
func TestKeptSessionOutlivesIdleLimit(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	a := newAuth(t, filepath.Join(t.TempDir(), "console.json"), c)
	if _, err := a.Setup("correct horse"); err != nil {
		t.Fatal(err)
	}
	short, err := a.Login("192.0.2.9", "correct horse", false)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := a.Login("192.0.2.9", "correct horse", true)
	if err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Hour) // past the idle hour of newAuth
	if _, ok := a.Session(short.Token); ok {
		t.Error("an unkept session outlived the idle limit")
	}
	if _, ok := a.Session(kept.Token); !ok {
		t.Error("a kept session ended at the idle limit")
	}
	c.add(2 * time.Hour) // past SessionMax (3 hours)
	if _, ok := a.Session(kept.Token); ok {
		t.Error("a kept session outlived SessionMax")
	}
}
