package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/homebox/gateway/internal/atomicfile"
)

// The box's own broker accounts: gatewayd's MQTT clients (the console's
// statistics, discovery, the topic explorer) log in as ServiceUser, and the
// Home Assistant the box runs as HomeAssistantUser. The broker accepts them
// with their secret whatever allow_anonymous and password_file say, so that
// turning logins on never locks the box out of itself, and judges them by a
// built-in ACL rather than acl_file: everything but writing `$` topics (the
// explorer reads and clears any topic; discovery writes announces).
const (
	ServiceUser       = "gateway-box"
	HomeAssistantUser = "homeassistant"
)

// BoxAccountsEnv carries the accounts' digests from gatewayd to the broker
// process it starts (`gatewayd broker` reads it).
const BoxAccountsEnv = "GATEWAY_BOX_ACCOUNTS"

// IsServiceUser tells the box's own clients apart (the traffic split).
func IsServiceUser(name string) bool { return name == ServiceUser }

// ReservedUser reports whether name belongs to the box, so an owner's user
// may not take it: the console refuses it with the reason.
func ReservedUser(name string) bool {
	return name == ServiceUser || name == HomeAssistantUser || strings.HasPrefix(name, "gateway-")
}

// BoxSecrets are the accounts' secrets, kept by gatewayd (mode 0600, on the
// data partition) and made at first start.
type BoxSecrets map[string]string

// LoadOrCreateBoxSecrets reads the secrets at path, making any that are
// missing (a fresh box, or an account added by a newer firmware).
func LoadOrCreateBoxSecrets(path string) (BoxSecrets, error) {
	s := BoxSecrets{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	changed := false
	for _, name := range []string{ServiceUser, HomeAssistantUser} {
		if len(s[name]) < 32 {
			b := make([]byte, 24)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			s[name], changed = hex.EncodeToString(b), true
		}
	}
	if changed {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		out, _ := json.MarshalIndent(s, "", "  ")
		if err := atomicfile.Write(path, append(out, '\n'), 0o600); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Env is the value of BoxAccountsEnv: each account's name and the SHA-256
// of its secret (a secret of 192 random bits needs no slow hash), so the
// secrets themselves never leave gatewayd.
func (s BoxSecrets) Env() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(s)) {
		sum := sha256.Sum256([]byte(s[name]))
		parts = append(parts, name+":"+hex.EncodeToString(sum[:]))
	}
	return strings.Join(parts, ",")
}

// BoxAccounts are the digests the broker checks box logins against.
type BoxAccounts map[string][sha256.Size]byte

// ParseBoxAccounts reads BoxAccountsEnv's value; empty means none.
func ParseBoxAccounts(env string) (BoxAccounts, error) {
	out := BoxAccounts{}
	if env == "" {
		return out, nil
	}
	for _, part := range strings.Split(env, ",") {
		name, digest, ok := strings.Cut(part, ":")
		b, err := hex.DecodeString(digest)
		if !ok || name == "" || err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%s: %q is not NAME:SHA256", BoxAccountsEnv, part)
		}
		out[name] = [sha256.Size]byte(b)
	}
	return out, nil
}

// verify reports whether name is a box account and password its secret.
func (b BoxAccounts) verify(name, password string) (isBox, ok bool) {
	want, isBox := b[name]
	if !isBox {
		return false, false
	}
	got := sha256.Sum256([]byte(password))
	return true, subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// boxAllowed is the box accounts' ACL: anything but writing a `$` topic.
func boxAllowed(topic string, access Access) bool {
	return access != Write || !strings.HasPrefix(topic, "$")
}
