package testkit

import (
	"os"
	"strconv"
	"strings"
)

// Alive is true while pid exists and is not a zombie. pid 1 on the test
// machines does not reap orphans, so a process that is gone may linger as
// a zombie: it counts as gone.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
