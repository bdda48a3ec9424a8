package auth

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

func TestPasswordFileFromMosquittoPasswd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	mosquittoPasswd(t, path,
		[3]string{"alice", "s3cret", ""},      // $7$, mosquitto_passwd 2.0's default
		[3]string{"bob", "hunter2", "sha512"}, // $6$
		[3]string{"dave", "pässwörd ü", ""},   // non-ASCII password
		[3]string{"eve", "", "sha512-pbkdf2"}, // empty password
	)
	appendLine(t, path, "# a comment, then a blank line")
	appendLine(t, path, "")
	appendLine(t, path, "carol:"+argon2idLine(t, "correct horse"))

	data, _ := os.ReadFile(path)
	for _, want := range []string{"alice:$7$", "bob:$6$", "carol:$argon2id$v=19$"} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("password file lacks %q; mosquitto_passwd wrote:\n%s", want, data)
		}
	}

	p, err := LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Users(), ","); got != "alice,bob,carol,dave,eve" {
		t.Fatalf("users = %s", got)
	}
	cases := []struct {
		user, pass string
		ok         bool
	}{
		{"alice", "s3cret", true},
		{"alice", "s3cret ", false},
		{"alice", "S3cret", false},
		{"alice", "", false},
		{"bob", "hunter2", true},
		{"bob", "hunter", false},
		{"carol", "correct horse", true},
		{"carol", "correct hors", false},
		{"dave", "pässwörd ü", true},
		{"dave", "passwort u", false},
		{"eve", "", true},
		{"eve", "x", false},
		{"mallory", "s3cret", false},
		{"", "", false},
		{"Alice", "s3cret", false},
	}
	for _, c := range cases {
		if got := p.Verify(c.user, c.pass); got != c.ok {
			t.Errorf("Verify(%q, %q) = %v, want %v", c.user, c.pass, got, c.ok)
		}
	}
	var nilP *Passwords
	if nilP.Verify("alice", "s3cret") {
		t.Error("nil Passwords verified a user")
	}
}

func TestPasswordFileMalformedLines(t *testing.T) {
	good := "$7$101$u7IGqCF20PjEwMCV$zucbGam0rvxtVOjsjSlqshfG6W+xX8tIvFojIUh4TYxsmrnjSp9asxxQBM0UiuUNb3qcK74UO74W5HHus31T4Q=="
	goodSalt, goodSum := "u7IGqCF20PjEwMCV", "zucbGam0rvxtVOjsjSlqshfG6W+xX8tIvFojIUh4TYxsmrnjSp9asxxQBM0UiuUNb3qcK74UO74W5HHus31T4Q=="
	a2 := "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
	cases := []struct {
		name, line, want string
	}{
		{"no colon", "alice", "no ':' between user name and password hash"},
		{"empty user", ":" + good, "empty user name"},
		{"empty hash", "alice:", "no password hash"},
		{"plaintext", "alice:hunter2", "password is not hashed"},
		{"unknown type", "alice:$5$abc$def", "unknown hash type"},
		{"6 missing part", "alice:$6$" + goodSalt, "want $6$SALT$HASH"},
		{"6 bad salt", "alice:$6$!!!!$" + goodSum, "salt is not base64"},
		{"6 short salt", "alice:$6$YWJj$" + goodSum, "salt is 3 bytes"},
		{"6 short hash", "alice:$6$" + goodSalt + "$YWJj", "hash is 3 bytes, want 64"},
		{"7 bad iterations", "alice:$7$x$" + goodSalt + "$" + goodSum, "iterations is not a positive number"},
		{"7 zero iterations", "alice:$7$0$" + goodSalt + "$" + goodSum, "iterations is not a positive number"},
		{"7 huge iterations", "alice:$7$999999999$" + goodSalt + "$" + goodSum, "more than the"},
		{"7 extra part", "alice:" + good + "$x", "want $7$ITERATIONS$SALT$HASH"},
		{"7 extra colon", "alice:" + good + ":x", "unexpected ':' after the password hash"},
		{"argon2 version", "alice:" + strings.Replace(a2, "v=19", "v=16", 1), "only version v=19"},
		{"argon2 no version", "alice:$argon2id$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "want $argon2id$v=19"},
		{"argon2 param order", "alice:" + strings.Replace(a2, "m=64,t=1", "t=1,m=64", 1), "parameters must be m=M,t=T,p=P"},
		{"argon2 huge memory", "alice:" + strings.Replace(a2, "m=64", "m=4000000000", 1), "m must be"},
		{"argon2 zero time", "alice:" + strings.Replace(a2, "t=1", "t=0", 1), "t must be"},
		{"argon2 p", "alice:" + strings.Replace(a2, "p=1", "p=0", 1), "p must be"},
		{"argon2 padded salt", "alice:" + strings.Replace(a2, "c2FsdHNhbHQ", "c2FsdHNhbHQ=", 1), "salt is not base64"},
		{"argon2 short hash", "alice:" + strings.Replace(a2, "aGFzaGhhc2hoYXNo", "YWI", 1), "hash is not base64"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, dir, "pw", "# users\nzed:"+good+"\n\n"+c.line+"\n")
			_, err := LoadPasswordFile(path)
			if err == nil {
				t.Fatalf("line %q loaded without error", c.line)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+":4: ") || !strings.Contains(msg, c.want) {
				t.Fatalf("error %q, want prefix %q and %q", msg, path+":4: ", c.want)
			}
			_, hash, _ := strings.Cut(c.line, ":")
			for _, secret := range []string{goodSum, goodSalt, "aGFzaGhhc2hoYXNo", "c2FsdHNhbHQ"} {
				if strings.Contains(hash, secret) && strings.Contains(msg, secret) {
					t.Fatalf("error %q repeats part of the hash", msg)
				}
			}
		})
	}

	t.Run("duplicate user", func(t *testing.T) {
		path := writeFile(t, dir, "pw", "zed:"+good+"\nzed:"+good+"\n")
		_, err := LoadPasswordFile(path)
		if err == nil || !strings.Contains(err.Error(), path+":2: user \"zed\" already has a password at line 1") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := LoadPasswordFile(filepath.Join(dir, "nope"))
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("CRLF and blanks", func(t *testing.T) {
		path := writeFile(t, dir, "pw", "  zed : "+good+" \r\n\r\n")
		p, err := LoadPasswordFile(path)
		if err != nil || !p.Has("zed") {
			t.Fatalf("err = %v", err)
		}
	})
}

// writePasswords writes users as a password file, as the console does
// (PasswordFileText, then the file through the config flow).
func writePasswords(t *testing.T, path string, users map[string]string) {
	t.Helper()
	text, err := PasswordFileText(users)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHashPBKDF2AndPasswordFileText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	h1, err := HashPBKDF2("first pass")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPBKDF2("first pass")
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	if !strings.HasPrefix(h1, "$7$"+strconv.Itoa(PBKDF2Iterations)+"$") {
		t.Fatalf("hash %q is not $7$", h1)
	}
	writePasswords(t, path, map[string]string{"zoe": h1, "adam": argon2idLine(t, "argon pass")})
	p, err := LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verify("zoe", "first pass") || p.Verify("zoe", "first") || !p.Verify("adam", "argon pass") {
		t.Fatal("written file does not verify")
	}
	before, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(before), "adam:$argon2id$") {
		t.Fatalf("file not sorted by user:\n%s", before)
	}

	// Bad input gives no text.
	for _, bad := range []map[string]string{
		{"zoe": "plaintext"},
		{"a:b": h1},
		{"": h1},
		{" zoe": h1},
		{"zoe": h1 + "\nmallory:" + h1},
		{"#zoe": h1},
	} {
		if text, err := PasswordFileText(bad); err == nil || text != nil {
			t.Fatalf("PasswordFileText(%q) = %q, %v; want an error", bad, text, err)
		}
	}

	// Hashes round-trips through the file.
	p.Hashes()["zoe"] = "changed" // a copy: must not change p
	if !p.Verify("zoe", "first pass") {
		t.Fatal("Hashes exposed internal state")
	}
	after, err := PasswordFileText(p.Hashes())
	if err != nil || string(before) != string(after) {
		t.Fatalf("rewriting from Hashes changed the file (%v):\n%s\n%s", err, before, after)
	}
}

// TestHashPBKDF2AcceptedByMosquitto starts the real mosquitto broker with a
// password file written from PasswordFileText and logs in with mosquitto_pub.
func TestHashPBKDF2AcceptedByMosquitto(t *testing.T) {
	needTool(t, "mosquitto")
	dir := t.TempDir()
	h, err := HashPBKDF2("from the console")
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "passwd")
	writePasswords(t, pw, map[string]string{"owner": h})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	conf := writeFile(t, dir, "mosquitto.conf", "user root\nlistener "+port+" 127.0.0.1\nallow_anonymous false\npassword_file "+pw+"\n")
	cmd := execCommand(t, nil, "mosquitto", "-c", conf)
	testkit.WaitFor(t, 10*time.Second, "mosquitto to listen on "+port, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	_ = cmd

	out, err := run(t, 10*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-u", "owner", "-P", "from the console", "-t", "t", "-m", "x")
	if err != nil {
		t.Fatalf("mosquitto refused the HashPBKDF2 password: %v\n%s", err, out)
	}
	out, err = run(t, 10*time.Second, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-u", "owner", "-P", "wrong", "-t", "t", "-m", "x")
	if err == nil {
		t.Fatalf("mosquitto accepted a wrong password:\n%s", out)
	}
}
