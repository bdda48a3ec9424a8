package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// Limits that keep a hostile or mistyped password file from stalling every
// CONNECT or exhausting memory: Mosquitto has none, but no real file comes
// near them (mosquitto_passwd writes 101 or 1000 iterations, argon2id with
// m=47104 KiB, t=1, p=1).
const (
	maxPBKDF2Iterations = 10_000_000
	maxArgon2MemoryKiB  = 1 << 20 // 1 GiB
	maxArgon2Time       = 100
	maxLineBytes        = 1 << 20

	// PBKDF2Iterations is what HashPBKDF2 uses: Mosquitto 2.1's default,
	// ten times 2.0's, and still a few milliseconds on an ARMv7 board.
	PBKDF2Iterations = 1000
)

type hashKind uint8

const (
	kindSHA512 hashKind = iota + 1
	kindPBKDF2
	kindArgon2id
)

// credential is one decoded password hash.
type credential struct {
	kind    hashKind
	salt    []byte
	sum     []byte
	iter    int    // PBKDF2 iterations, argon2 time cost
	memory  uint32 // argon2 KiB
	threads uint8  // argon2 parallelism
	encoded string // the text after "user:", kept to rewrite the file

	// verified is the keyed MAC (see passwordMAC) of the last password that
	// matched this hash, nil until one has. A credential is never changed
	// after loading, and a reload makes new ones, so a changed or removed
	// hash forgets it.
	verified atomic.Pointer[[sha256.Size]byte]
}

// argon2Slots bounds how many argon2id verifications run at once: each one
// holds m KiB (46 MiB as Mosquitto 2.1 writes it), and a burst of CONNECTs
// must not run a small board out of memory.
var argon2Slots = make(chan struct{}, 2)

// macKey keys passwordMAC. It is random for each process and never leaves
// it, so the remembered MACs are of no use anywhere else.
var macKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("auth: no randomness for the password cache key: " + err.Error())
	}
	return k
}()

// passwordMAC is what a credential remembers of a password that verified:
// HMAC-SHA256 under macKey, not the password itself.
func passwordMAC(password string) *[sha256.Size]byte {
	m := hmac.New(sha256.New, macKey)
	m.Write([]byte(password))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return &out
}

// verify reports whether password matches. A password that matched once is
// recognised by its MAC for one HMAC instead of the file's hash (PBKDF2
// rounds, argon2's 46 MiB): a connect storm of devices sharing a login, or a
// device reconnecting, costs microseconds. Only successes are remembered,
// so every wrong guess still pays the full hash.
func (c *credential) verify(password string) bool {
	mac := passwordMAC(password)
	if known := c.verified.Load(); known != nil && subtle.ConstantTimeCompare(known[:], mac[:]) == 1 {
		return true
	}
	if !c.verifySlow(password) {
		return false
	}
	c.verified.Store(mac)
	return true
}

// verifySlow checks password against the hash the way Mosquitto does.
func (c *credential) verifySlow(password string) bool {
	var got []byte
	switch c.kind {
	case kindSHA512:
		h := sha512.New()
		h.Write([]byte(password))
		h.Write(c.salt)
		got = h.Sum(nil)
	case kindPBKDF2:
		var err error
		got, err = pbkdf2.Key(sha512.New, password, c.salt, c.iter, len(c.sum))
		if err != nil {
			return false
		}
	case kindArgon2id:
		argon2Slots <- struct{}{}
		got = argon2.IDKey([]byte(password), c.salt, uint32(c.iter), c.memory, c.threads, uint32(len(c.sum)))
		<-argon2Slots
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, c.sum) == 1
}

// Passwords is a loaded password_file: user names and their hashes.
type Passwords struct {
	path  string
	users map[string]*credential
}

// dummy is verified against when the user is unknown, so that a wrong user
// name costs about as long as a wrong password and names cannot be probed by
// timing.
var dummy = &credential{kind: kindPBKDF2, salt: make([]byte, 12), sum: make([]byte, 64), iter: PBKDF2Iterations}

// Verify reports whether password is user's password. Unknown users and any
// error are false. The hash comparison is constant-time.
func (p *Passwords) Verify(user, password string) bool {
	if p == nil {
		return false
	}
	c, ok := p.users[user]
	if !ok {
		dummy.verifySlow(password) // never verify: it would remember
		return false
	}
	return c.verify(password)
}

// Has reports whether the file names user.
func (p *Passwords) Has(user string) bool {
	if p == nil {
		return false
	}
	_, ok := p.users[user]
	return ok
}

// Users returns the user names, sorted.
func (p *Passwords) Users() []string {
	if p == nil {
		return nil
	}
	out := make([]string, 0, len(p.users))
	for u := range p.users {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// Hashes returns a copy of user name -> encoded hash, as the file holds them,
// so a caller can add or remove a user and write the file back from
// PasswordFileText.
func (p *Passwords) Hashes() map[string]string {
	out := make(map[string]string)
	if p == nil {
		return out
	}
	for u, c := range p.users {
		out[u] = c.encoded
	}
	return out
}

// hashOf returns the encoded hash of user, for noticing on reload which
// users' credentials changed.
func (p *Passwords) hashOf(user string) (string, bool) {
	if p == nil {
		return "", false
	}
	c, ok := p.users[user]
	if !ok {
		return "", false
	}
	return c.encoded, true
}

// LoadPasswordFile reads a Mosquitto password file: one "user:hash" a line,
// blank lines and lines starting with '#' ignored. A malformed line is an
// error "FILE:LINE: reason"; the error never contains a hash.
func LoadPasswordFile(path string) (*Passwords, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("password_file: %w", err)
	}
	return parsePasswords(path, data)
}

func parsePasswords(path string, data []byte) (*Passwords, error) {
	p := &Passwords{path: path, users: make(map[string]*credential)}
	firstLine := make(map[string]int)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: no ':' between user name and password hash", path, n)
		}
		user = strings.TrimSpace(user)
		hash = strings.TrimSpace(hash)
		if user == "" {
			return nil, fmt.Errorf("%s:%d: empty user name", path, n)
		}
		if at, dup := firstLine[user]; dup {
			return nil, fmt.Errorf("%s:%d: user %q already has a password at line %d", path, n, user, at)
		}
		if strings.Contains(hash, ":") {
			return nil, fmt.Errorf("%s:%d: user %q: unexpected ':' after the password hash", path, n, user)
		}
		c, err := parseHash(hash)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: %w", path, n, user, err)
		}
		firstLine[user] = n
		p.users[user] = c
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, n+1, err)
	}
	return p, nil
}

// b64 decodes Mosquitto's base64 (standard alphabet, padded), also taking
// the unpadded form.
func b64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64")
	}
	return b, nil
}

// parseHash decodes one hash. Its errors name the field that is wrong and
// never repeat the hash.
func parseHash(s string) (*credential, error) {
	switch {
	case s == "":
		return nil, errors.New("no password hash")
	case strings.HasPrefix(s, "$6$"):
		parts := strings.Split(s[3:], "$")
		if len(parts) != 2 {
			return nil, errors.New("$6$ hash: want $6$SALT$HASH")
		}
		c, err := saltAndSum("$6$", parts[0], parts[1])
		if err != nil {
			return nil, err
		}
		c.kind = kindSHA512
		c.encoded = s
		return c, nil
	case strings.HasPrefix(s, "$7$"):
		parts := strings.Split(s[3:], "$")
		if len(parts) != 3 {
			return nil, errors.New("$7$ hash: want $7$ITERATIONS$SALT$HASH")
		}
		iter, err := strconv.Atoi(parts[0])
		if err != nil || iter < 1 {
			return nil, errors.New("$7$ hash: iterations is not a positive number")
		}
		if iter > maxPBKDF2Iterations {
			return nil, fmt.Errorf("$7$ hash: %d iterations is more than the %d allowed", iter, maxPBKDF2Iterations)
		}
		c, err := saltAndSum("$7$", parts[1], parts[2])
		if err != nil {
			return nil, err
		}
		c.kind = kindPBKDF2
		c.iter = iter
		c.encoded = s
		return c, nil
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$"):
		return nil, errors.New("unknown hash type (want $6$, $7$ or $argon2id$)")
	default:
		return nil, errors.New("password is not hashed (run mosquitto_passwd -U on the file)")
	}
}

// saltAndSum decodes the salt and the SHA-512 sized hash of a $6$ or $7$
// line; Mosquitto takes 12-byte salts (2.0) and 64-byte ones (2.1).
func saltAndSum(kind, salt, sum string) (*credential, error) {
	sb, err := b64(salt)
	if err != nil {
		return nil, fmt.Errorf("%s hash: salt is %w", kind, err)
	}
	if len(sb) != 12 && len(sb) != 64 {
		return nil, fmt.Errorf("%s hash: salt is %d bytes, want 12 or 64", kind, len(sb))
	}
	hb, err := b64(sum)
	if err != nil {
		return nil, fmt.Errorf("%s hash: hash is %w", kind, err)
	}
	if len(hb) != sha512.Size {
		return nil, fmt.Errorf("%s hash: hash is %d bytes, want %d", kind, len(hb), sha512.Size)
	}
	return &credential{salt: sb, sum: hb}, nil
}

// parseArgon2id decodes the PHC string libargon2 writes for Mosquitto 2.1:
// $argon2id$v=19$m=KIB,t=TIME,p=THREADS$SALT$HASH, base64 without padding.
func parseArgon2id(s string) (*credential, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return nil, errors.New("$argon2id$ hash: want $argon2id$v=19$m=M,t=T,p=P$SALT$HASH")
	}
	if parts[2] != "v=19" {
		return nil, errors.New("$argon2id$ hash: only version v=19 is supported")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return nil, errors.New("$argon2id$ hash: parameters must be m=M,t=T,p=P")
	}
	var vals [3]uint64
	for i, key := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], key)
		if !ok {
			return nil, errors.New("$argon2id$ hash: parameters must be m=M,t=T,p=P")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("$argon2id$ hash: %s is not a number", strings.TrimSuffix(key, "="))
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case p < 1 || p > 255:
		return nil, errors.New("$argon2id$ hash: p must be 1 to 255")
	case t < 1 || t > maxArgon2Time:
		return nil, fmt.Errorf("$argon2id$ hash: t must be 1 to %d", maxArgon2Time)
	case m < 8*p || m > maxArgon2MemoryKiB:
		return nil, fmt.Errorf("$argon2id$ hash: m must be 8*p to %d KiB", maxArgon2MemoryKiB)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return nil, errors.New("$argon2id$ hash: salt is not base64 of at least 8 bytes")
	}
	sum, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(sum) < 4 {
		return nil, errors.New("$argon2id$ hash: hash is not base64 of at least 4 bytes")
	}
	return &credential{
		kind: kindArgon2id, salt: salt, sum: sum,
		iter: int(t), memory: uint32(m), threads: uint8(p), encoded: s,
	}, nil
}

// HashPBKDF2 hashes password the way mosquitto_passwd 2.0 does by default
// ($7$: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash), with
// PBKDF2Iterations rounds; Mosquitto 2.0 and 2.1 both accept the result.
func HashPBKDF2(password string) (string, error) {
	salt := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: salt: %w", err)
	}
	sum, err := pbkdf2.Key(sha512.New, password, salt, PBKDF2Iterations, sha512.Size)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return fmt.Sprintf("$7$%d$%s$%s", PBKDF2Iterations,
		base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(sum)), nil
}

// PasswordFileText is users (name -> encoded hash) as the text of a
// Mosquitto password file, sorted by name, once every name and hash is
// checked.
func PasswordFileText(users map[string]string) ([]byte, error) {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, u := range names {
		switch {
		case strings.TrimSpace(u) != u || u == "":
			return nil, fmt.Errorf("user %q: name empty or with surrounding blanks", u)
		case strings.ContainsAny(u, ":\r\n"):
			return nil, fmt.Errorf("user %q: name contains ':' or a line break", u)
		case strings.HasPrefix(u, "#"):
			return nil, fmt.Errorf("user %q: name starts with '#'", u)
		}
		h := users[u]
		if strings.ContainsAny(h, ":\r\n") {
			return nil, fmt.Errorf("user %q: hash contains ':' or a line break", u)
		}
		if _, err := parseHash(h); err != nil {
			return nil, fmt.Errorf("user %q: %w", u, err)
		}
		fmt.Fprintf(&buf, "%s:%s\n", u, h)
	}
	return buf.Bytes(), nil
}
