package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// needTool fails the test, naming the tool and its Debian package, when a
// real peer program is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("this test needs %s (Debian package mosquitto / mosquitto-clients): %v", name, err)
	}
	return p
}

// run runs a program with a deadline and returns its combined output and
// exit error.
func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, needTool(t, name), args...).CombinedOutput()
	return string(out), err
}

// argon2idLine hashes password as Mosquitto 2.1 writes it: libargon2's
// encoded form with t=1, m=47104 KiB, p=1, a 64-byte salt and a 64-byte hash.
func argon2idLine(t *testing.T, password string) string {
	t.Helper()
	salt := make([]byte, 64)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	sum := argon2.IDKey([]byte(password), salt, 1, 47104, 1, 64)
	return fmt.Sprintf("$argon2id$v=19$m=47104,t=1,p=1$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}

// mosquittoPasswd makes a password file with the real mosquitto_passwd:
// users[i] = {name, password, "" or "sha512"}.
func mosquittoPasswd(t *testing.T, path string, users ...[3]string) {
	t.Helper()
	for i, u := range users {
		args := []string{"-b"}
		if u[2] != "" {
			args = append(args, "-H", u[2])
		}
		if i == 0 {
			args = append(args, "-c")
		}
		args = append(args, path, u[0], u[1])
		if out, err := run(t, 20*time.Second, "mosquitto_passwd", args...); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
		}
	}
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// execCommand starts a long-running program, stopped and reaped at cleanup;
// its standard output also goes to stdout when that is not nil.
func execCommand(t *testing.T, stdout io.Writer, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(needTool(t, name), args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(stdout, &out)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return cmd
}
