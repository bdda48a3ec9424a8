// Package auth guards the LAN console: one admin password, stored
// only as a bcrypt hash; sessions held in memory and named by random
// tokens; a CSRF token per session; and failed logins slowed per client
// address, so guessing the password from the home network takes forever.
// It knows nothing of HTTP: the web layer maps its answers to cookies and
// statuses.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/homebox/gateway/internal/atomicfile"
)

// MinPasswordLen is the shortest admin password accepted.
const MinPasswordLen = 8

// maxPasswordLen is bcrypt's own limit: it reads only 72 bytes.
const maxPasswordLen = 72

var (
	// ErrAlreadySet refuses a setup once a password exists.
	ErrAlreadySet = errors.New("an admin password is already set; log in instead")
	// ErrNotSet refuses a login before the setup.
	ErrNotSet = errors.New("no admin password is set yet")
	// ErrWrongPassword is a failed login.
	ErrWrongPassword = errors.New("wrong password")
)

// SlowedError refuses a login attempt that came too soon after failures
// from the same address.
type SlowedError struct {
	RetryAfter time.Duration
}

func (e *SlowedError) Error() string {
	return fmt.Sprintf("too many failed logins from this address: try again in %s", e.RetryAfter.Round(time.Second))
}

// Options tune an Auth; zero values take the defaults in brackets.
type Options struct {
	Path        string        // the password file (required)
	SessionIdle time.Duration // a session ends after this long unused [12h]
	SessionMax  time.Duration // and this long after login in any case [7 days]
	MaxSessions int           // the oldest are dropped beyond this [64]
	SlowBase    time.Duration // wait after the first failure, doubled after each next [1s]
	SlowMax     time.Duration // the longest wait [60s]
	BcryptCost  int           // [bcrypt.DefaultCost]
	HashWait    time.Duration // how long a check waits for a turn when maxHashing run [5s]
	Now         func() time.Time
}

// Session is one logged-in browser.
type Session struct {
	Token   string
	CSRF    string
	Created time.Time
	// Keep is "keep me logged in": the session is not ended for being
	// unused, only at SessionMax.
	Keep bool
	seen time.Time
}

// CheckCSRF reports whether token is the session's CSRF token.
func (s *Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

type failures struct {
	n    int
	next time.Time
}

// maxTracked bounds the per-address failure table.
const maxTracked = 4096

// Auth is the console's admin password and its sessions.
type Auth struct {
	o Options

	mu       sync.Mutex
	hash     []byte
	sessions map[string]*Session
	fails    map[string]*failures
	checking map[string]bool // clients with a password check under way

	// hashing bounds the bcrypt checks running at once, whoever asks: each
	// takes a core for tens of milliseconds.
	hashing chan struct{}
}

// maxHashing is how many password checks run at once; more wait up to
// Options.HashWait for a turn, then are refused as slowed.
const maxHashing = 2

// clientKey is what failures are counted by: an IPv4 address, or the /64
// of an IPv6 one, since one home's (or one attacker's) IPv6 host can take
// any address of its /64 at will.
func clientKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}

// compare runs one bcrypt check within the global bound.
func (a *Auth) compare(h []byte, pw string) (bool, error) {
	t := time.NewTimer(a.o.HashWait)
	defer t.Stop()
	select {
	case a.hashing <- struct{}{}:
	case <-t.C:
		return false, &SlowedError{RetryAfter: time.Second}
	}
	defer func() { <-a.hashing }()
	return bcrypt.CompareHashAndPassword(h, []byte(pw)) == nil, nil
}

type fileForm struct {
	Hash    string    `json:"bcrypt"`
	Changed time.Time `json:"changed"`
}

// New loads the password file if there is one. A file that cannot be read
// is an error (rather than a box that asks anyone on the LAN to set a new
// password).
func New(o Options) (*Auth, error) {
	if o.HashWait <= 0 {
		o.HashWait = 5 * time.Second
	}
	if o.Path == "" {
		return nil, errors.New("consoleauth: no password file path")
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = 12 * time.Hour
	}
	if o.SessionMax <= 0 {
		o.SessionMax = 7 * 24 * time.Hour
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 64
	}
	if o.SlowBase <= 0 {
		o.SlowBase = time.Second
	}
	if o.SlowMax <= 0 {
		o.SlowMax = 60 * time.Second
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.DefaultCost
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Auth{o: o, sessions: map[string]*Session{}, fails: map[string]*failures{},
		checking: map[string]bool{}, hashing: make(chan struct{}, maxHashing)}
	b, err := os.ReadFile(o.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return a, nil
	case err != nil:
		return nil, fmt.Errorf("console password: %w", err)
	}
	var f fileForm
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("console password %s: not the JSON this box writes: %w", o.Path, err)
	}
	if _, err := bcrypt.Cost([]byte(f.Hash)); err != nil {
		return nil, fmt.Errorf("console password %s: field bcrypt: %w", o.Path, err)
	}
	a.hash = []byte(f.Hash)
	return a, nil
}

// SetupNeeded reports whether no admin password is set yet.
func (a *Auth) SetupNeeded() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hash == nil
}

// CheckPassword says what is wrong with a new password, if anything.
func CheckPassword(pw string) error {
	switch {
	case len([]rune(pw)) < MinPasswordLen:
		return fmt.Errorf("password: at least %d characters, please", MinPasswordLen)
	case len(pw) > maxPasswordLen:
		return fmt.Errorf("password: at most %d bytes", maxPasswordLen)
	}
	return nil
}

// Setup sets the first password and opens a session.
func (a *Auth) Setup(pw string) (*Session, error) {
	if err := CheckPassword(pw); err != nil {
		return nil, err
	}
	// Hashing is slow: do it outside the lock, then check again.
	h, err := bcrypt.GenerateFromPassword([]byte(pw), a.o.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hash != nil {
		return nil, ErrAlreadySet
	}
	if err := a.store(h); err != nil {
		return nil, err
	}
	return a.newSessionLocked(false)
}

// SetPassword replaces the password (gwctl console-password, or the
// console's change form) and ends every session.
func (a *Auth) SetPassword(pw string) error {
	if err := CheckPassword(pw); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), a.o.BcryptCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.store(h); err != nil {
		return err
	}
	clear(a.sessions)
	return nil
}

func (a *Auth) store(h []byte) error {
	b, err := json.Marshal(fileForm{Hash: string(h), Changed: a.o.Now().UTC()})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.o.Path), 0o700); err != nil {
		return fmt.Errorf("console password: %w", err)
	}
	if err := atomicfile.Write(a.o.Path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("console password: %w", err)
	}
	a.hash = h
	return nil
}

// Verify reports whether pw is the admin password (false when none is
// set). It does not count failures; Login does.
func (a *Auth) Verify(pw string) bool {
	a.mu.Lock()
	h := a.hash
	a.mu.Unlock()
	if h == nil {
		return false
	}
	ok, err := a.compare(h, pw)
	return ok && err == nil
}

// Login checks pw for a client at addr (an IP address as text) and opens a
// session. After a failure from addr the next attempt is refused with a
// *SlowedError until a delay has passed, doubling with each failure up to
// SlowMax; a good login clears it. One client (an IPv4 address, an IPv6
// /64) has one check under way at a time: attempts sent side by side are
// refused as slowed, not all evaluated before the first failure counts.
func (a *Auth) Login(addr, pw string, keep bool) (*Session, error) {
	now := a.o.Now()
	key := clientKey(addr)
	a.mu.Lock()
	if a.hash == nil {
		a.mu.Unlock()
		return nil, ErrNotSet
	}
	if f := a.fails[key]; f != nil && now.Before(f.next) {
		a.mu.Unlock()
		return nil, &SlowedError{RetryAfter: f.next.Sub(now)}
	}
	if a.checking[key] {
		a.mu.Unlock()
		return nil, &SlowedError{RetryAfter: time.Second}
	}
	a.checking[key] = true
	h := a.hash
	a.mu.Unlock()

	ok, err := a.compare(h, pw)

	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.checking, key)
	if err != nil {
		return nil, err
	}
	if !ok {
		a.failedLocked(key, now)
		return nil, ErrWrongPassword
	}
	delete(a.fails, key)
	return a.newSessionLocked(keep)
}

func (a *Auth) failedLocked(addr string, now time.Time) {
	f := a.fails[addr]
	if f == nil {
		if len(a.fails) >= maxTracked {
			a.pruneFailsLocked(now)
		}
		f = &failures{}
		a.fails[addr] = f
	}
	f.n++
	d := a.o.SlowBase
	for i := 1; i < f.n && d < a.o.SlowMax; i++ {
		d *= 2
	}
	f.next = now.Add(min(d, a.o.SlowMax))
}

// pruneFailsLocked forgets addresses whose wait is long over, and if the
// table is still full, all of them: memory stays bounded whatever a
// scanner does, at the price of forgetting some counts.
func (a *Auth) pruneFailsLocked(now time.Time) {
	for k, f := range a.fails {
		if now.Sub(f.next) > a.o.SlowMax {
			delete(a.fails, k)
		}
	}
	if len(a.fails) >= maxTracked {
		clear(a.fails)
	}
}

func (a *Auth) newSessionLocked(keep bool) (*Session, error) {
	tok, err := randomToken()
	if err != nil {
		return nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return nil, err
	}
	now := a.o.Now()
	if len(a.sessions) >= a.o.MaxSessions {
		var oldest *Session
		for _, s := range a.sessions {
			if oldest == nil || s.seen.Before(oldest.seen) {
				oldest = s
			}
		}
		delete(a.sessions, oldest.Token)
	}
	s := &Session{Token: tok, CSRF: csrf, Created: now, Keep: keep, seen: now}
	a.sessions[tok] = s
	cp := *s
	return &cp, nil
}

// Session returns the live session named by token and marks it used.
func (a *Auth) Session(token string) (*Session, bool) {
	if token == "" {
		return nil, false
	}
	now := a.o.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[token]
	if !ok {
		return nil, false
	}
	if now.Sub(s.seen) > a.Lifetime(s.Keep) || now.Sub(s.Created) > a.o.SessionMax {
		delete(a.sessions, token)
		return nil, false
	}
	s.seen = now
	cp := *s
	return &cp, true
}

// Lifetime is how long a session lasts unused: SessionIdle, or SessionMax
// for one kept logged in. The console's cookie lasts as long.
func (a *Auth) Lifetime(keep bool) time.Duration {
	if keep {
		return a.o.SessionMax
	}
	return a.o.SessionIdle
}

// Logout ends the session named by token, if any.
func (a *Auth) Logout(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.sessions, token)
}

// NewSession opens a session without a password check, for a caller that
// has just proven itself (a password change).
func (a *Auth) NewSession() (*Session, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.newSessionLocked(false)
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
