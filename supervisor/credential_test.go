package supervisor

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
)

// sharedChild copies the test child where every account may run it (the
// build folder is root's own).
func sharedChild(t *testing.T) string {
	t.Helper()
	path := filepath.Join(testkit.SharedDir(t), "child")
	testkit.CopyFile(t, childBin, path, 0o755)
	return path
}

// procIDs reads the real uid and gid of pid from /proc.
func procIDs(t *testing.T, pid int) (uid, gid string) {
	t.Helper()
	return testkit.ProcStatus(t, pid, "Uid:"), testkit.ProcStatus(t, pid, "Gid:")
}

// PM2's uid/gid: the app runs as the account gateway.yaml names, with its
// HOME, and the state says so.
func TestAppRunsAsItsUser(t *testing.T) {
	testkit.RequireRoot(t, "running an app as another user")
	s := newSup(t, nil)
	sp := child("unprivileged", "-print-env", "HOME")
	sp.Command = sharedChild(t)
	sp.Cwd = "/"
	sp.User = "nobody"
	s.start(t, sp)
	st := s.waitReady(t, "unprivileged")
	if uid, gid := procIDs(t, st.PID); uid != "65534" || gid != "65534" {
		t.Errorf("the app runs as uid %s gid %s, want nobody's 65534/65534", uid, gid)
	}
	if st.User != "nobody" {
		t.Errorf("state user %q, want nobody", st.User)
	}
	waitFor(t, 5*time.Second, "the app's HOME in its log", func() bool {
		return strings.Contains(readFile(t, s.logPath("unprivileged")), "HOME=/nonexistent")
	})

	// A group by number, and an account that does not exist: the app is
	// errored with the way out, the supervisor carries on.
	sp2 := sp
	sp2.Name, sp2.Group = "grouped", "100"
	sp3 := sp
	sp3.Name, sp3.User = "ghost-user", "no-such-account"
	if err := s.Apply([]Spec{sp, sp2, sp3}); err != nil {
		t.Fatal(err)
	}
	st2 := s.waitReady(t, "grouped")
	if _, gid := procIDs(t, st2.PID); gid != "100" || st2.User != "nobody:100" {
		t.Errorf("grouped: gid %s, user %q", gid, st2.User)
	}
	st3 := s.waitState(t, "ghost-user", "errored", 5*time.Second, func(st AppState) bool { return st.Status == StatusErrored })
	if !strings.Contains(st3.LastError, `no user "no-such-account"`) || !strings.Contains(st3.LastError, "adduser") {
		t.Errorf("last_error %q, want the missing user and the way out", st3.LastError)
	}
}

func TestUserAndGroupAreChecked(t *testing.T) {
	sp := child("a")
	sp.User, sp.Group = "Bad Name", "x y"
	sp2 := child("b")
	sp2.Group = "staff"
	err := Validate([]Spec{sp, sp2})
	for _, want := range []string{`user: "Bad Name" is not a user name or number`, `group: "x y" is not a group name or number`, `"b" (apps[1]): group: needs a user too`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nwant %q", err, want)
		}
	}
}
