package supervisor

import (
	"fmt"
	"os"
	"syscall"

	"github.com/homebox/gateway/internal/account"
)

// credential is the account an app runs as, looked up at each start so a
// user added later (or a changed group list) counts without a restart of
// gatewayd. It is nil when the app runs as gatewayd itself does: no user
// asked, or gatewayd is not root and so cannot switch (notTaken then names
// the account that could not be taken, for the log).
func credential(sp Spec) (cred *syscall.Credential, home string, notTaken string, err error) {
	if sp.User == "" {
		return nil, "", "", nil
	}
	a, err := account.Lookup(sp.User, sp.Group)
	if err != nil {
		return nil, "", "", err
	}
	if os.Geteuid() != 0 {
		if os.Geteuid() == a.UID {
			return nil, "", "", nil
		}
		return nil, "", fmt.Sprintf("%s (uid %d)", a.Name, a.UID), nil
	}
	groups := make([]uint32, len(a.Groups))
	for i, g := range a.Groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID), Groups: groups}, a.Home, "", nil
}
