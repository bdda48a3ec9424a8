package sidebyside

import (
	"path/filepath"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/homebox/gateway/internal/testkit"
)

// passwdConf lets in only alice (password "secret"), made by
// mosquitto_passwd in setupPasswd.
const passwdConf = "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {dir}/passwd\n"

func setupPasswd(t *testing.T, dir string) {
	t.Helper()
	testkit.RequireTool(t, "mosquitto_passwd")
	out, code := testkit.Run(t, 10*time.Second, "mosquitto_passwd", "-b", "-c", filepath.Join(dir, "passwd"), "alice", "secret")
	if code != 0 {
		t.Fatalf("mosquitto_passwd: exit %d: %s", code, out)
	}
}

func TestAuth(t *testing.T) {
	logins := []struct{ name, user, pass string }{
		{"right", "alice", "secret"}, {"wrong password", "alice", "nope"}, {"unknown user", "mallory", "secret"}, {"anonymous", "", ""},
	}
	for _, sc := range []scenario{
		{name: "auth/v311", conf: passwdConf, setup: setupPasswd, script: func(t *testing.T, e *env) {
			for _, l := range logins {
				o := opts3(e, 4, "auth3", true)
				if l.user != "" {
					o.SetUsername(l.user).SetPassword(l.pass)
				}
				connect3(t, e, "v311 "+l.name, o).disconnect()
			}
		}},
		{name: "auth/v31", conf: passwdConf, setup: setupPasswd, script: func(t *testing.T, e *env) {
			for _, l := range logins {
				o := opts3(e, 3, "auth31", true)
				if l.user != "" {
					o.SetUsername(l.user).SetPassword(l.pass)
				}
				connect3(t, e, "v31 "+l.name, o).disconnect()
			}
		}},
		{name: "auth/v5", conf: passwdConf, setup: setupPasswd, script: func(t *testing.T, e *env) {
			for _, l := range logins {
				cp := &paho5.Connect{ClientID: "auth5", CleanStart: true}
				if l.user != "" {
					cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = l.user, true, []byte(l.pass), true
				}
				connect5(t, e, "v5 "+l.name, cp).disconnect(0)
			}
		}},
		{name: "auth/mosquitto_pub", conf: passwdConf, setup: setupPasswd, script: func(t *testing.T, e *env) {
			for _, l := range logins {
				for _, v := range []string{"mqttv311", "mqttv5"} {
					args := []string{"-V", v, "-t", "a/b", "-m", "x", "-q", "1"}
					if l.user != "" {
						args = append(args, "-u", l.user, "-P", l.pass)
					}
					mosqPub(t, e, "mosquitto_pub "+v+" "+l.name, args...)
				}
			}
		}},
	} {
		t.Run(sc.name, func(t *testing.T) { runBoth(t, sc) })
	}
}
