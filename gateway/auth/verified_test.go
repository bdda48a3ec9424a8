package auth

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestVerifiedPasswordRemembered checks the cache of verified passwords for
// each hash kind: only a right password is remembered, a remembered one is
// recognised without the hash, and a wrong one is refused before and after.
func TestVerifiedPasswordRemembered(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	mosquittoPasswd(t, pw, [3]string{"pbkdf2", "right one", ""}, [3]string{"sha512", "right two", "sha512"})
	appendLine(t, pw, "argon:"+argon2idLine(t, "right three"))
	p, err := LoadPasswordFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	for user, right := range map[string]string{"pbkdf2": "right one", "sha512": "right two", "argon": "right three"} {
		c := p.users[user]
		if p.Verify(user, right+"x") || c.verified.Load() != nil {
			t.Fatalf("%s: a wrong password verified or was remembered", user)
		}
		if !p.Verify(user, right) || c.verified.Load() == nil {
			t.Fatalf("%s: the right password did not verify or was not remembered", user)
		}
		// With the hash spoiled, only the remembered MAC can say yes.
		c.sum = append([]byte(nil), c.sum...)
		c.sum[0] ^= 0xff
		if !p.Verify(user, right) {
			t.Fatalf("%s: the remembered password was not recognised", user)
		}
		for _, wrong := range []string{"", right[:len(right)-1], right + " ", "R" + right[1:]} {
			if p.Verify(user, wrong) {
				t.Fatalf("%s: wrong password %q verified after the right one was remembered", user, wrong)
			}
		}
	}
	if p.Verify("nobody", "right one") || dummy.verified.Load() != nil {
		t.Fatal("an unknown user verified, or the dummy hash remembered a password")
	}
}

// TestReloadForgetsVerifiedPasswords changes a user's password on a running
// broker: after the reload the old, remembered password is refused.
func TestReloadForgetsVerifiedPasswords(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	mosquittoPasswd(t, pw, [3]string{"alice", "old-pw", ""})
	h, err := NewHook(Security{PasswordFile: pw}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	_, addrs := startBroker(t, h, "tcp")
	for range 2 { // the second login is served from the cache
		if code := rawConnect(t, addrs["tcp"], "a1", "alice", "old-pw"); code != 0 {
			t.Fatalf("alice with old-pw: CONNACK code %d", code)
		}
	}
	mosquittoPasswd(t, pw, [3]string{"alice", "new-pw", ""})
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if code := rawConnect(t, addrs["tcp"], "a2", "alice", "old-pw"); code != 5 {
		t.Fatalf("alice with the old password after reload: CONNACK code %d, want 5 (not authorised)", code)
	}
	if code := rawConnect(t, addrs["tcp"], "a3", "alice", "new-pw"); code != 0 {
		t.Fatalf("alice with the new password: CONNACK code %d", code)
	}
}

// TestConcurrentLoginsRightAndWrong logs many clients in at once, right and
// wrong passwords mixed, so the first right logins race on the cache.
func TestConcurrentLoginsRightAndWrong(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	mosquittoPasswd(t, pw, [3]string{"alice", "alice-pw", ""}, [3]string{"bob", "bob-pw", "sha512"})
	h, err := NewHook(Security{PasswordFile: pw}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	_, addrs := startBroker(t, h, "tcp")
	type login struct {
		user, pass string
		want       byte
	}
	logins := []login{
		{"alice", "alice-pw", 0}, {"alice", "alice-px", 5}, {"alice", "bob-pw", 5},
		{"bob", "bob-pw", 0}, {"bob", "alice-pw", 5}, {"carol", "alice-pw", 5},
	}
	const rounds = 12
	var wg sync.WaitGroup
	errs := make(chan error, rounds*len(logins))
	for r := range rounds {
		for i, l := range logins {
			wg.Go(func() {
				id := fmt.Sprintf("c%d-%d", r, i)
				code, err := connectCode(addrs["tcp"], id, l.user, l.pass)
				if err == nil && code != l.want {
					err = fmt.Errorf("%s as %s/%s: CONNACK code %d, want %d", id, l.user, l.pass, code, l.want)
				}
				if err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// rawConnect sends an MQTT 3.1.1 CONNECT and returns the CONNACK's code.
func rawConnect(t *testing.T, addr, id, user, pass string) byte {
	t.Helper()
	code, err := connectCode(addr, id, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// connectCode connects, logs in with an MQTT 3.1.1 CONNECT, reads the
// CONNACK and hangs up; it reports the CONNACK's return code.
func connectCode(addr, id, user, pass string) (byte, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(connectPacket(id, user, pass)); err != nil {
		return 0, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return 0, fmt.Errorf("%s: reading CONNACK: %w", id, err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		return 0, fmt.Errorf("%s: not a CONNACK: % x", id, ack)
	}
	return ack[3], nil
}

// connectPacket encodes an MQTT 3.1.1 CONNECT with a clean session, user
// name and password.
func connectPacket(id, user, pass string) []byte {
	var body []byte
	str := func(s string) {
		body = append(body, byte(len(s)>>8), byte(len(s)))
		body = append(body, s...)
	}
	str("MQTT")
	body = append(body, 4, 0xC2, 0, 60) // level 4; user, password, clean; keepalive 60 s
	str(id)
	str(user)
	str(pass)
	return append([]byte{0x10, byte(len(body))}, body...) // bodies here are < 128 bytes
}

// BenchmarkVerify compares a first login (the file's hash) with a repeated
// one (the remembered MAC) for mosquitto_passwd 2.0's default $7$ hash.
func BenchmarkVerify(b *testing.B) {
	hash, err := HashPBKDF2("pw")
	if err != nil {
		b.Fatal(err)
	}
	p, err := parsePasswords("bench", []byte("u:"+hash+"\n"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hash", func(b *testing.B) {
		for b.Loop() {
			p.users["u"].verifySlow("pw")
		}
	})
	b.Run("remembered", func(b *testing.B) {
		p.Verify("u", "pw")
		for b.Loop() {
			p.Verify("u", "pw")
		}
	})
}
