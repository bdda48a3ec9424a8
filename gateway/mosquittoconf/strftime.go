package mosquittoconf

import (
	"fmt"
	"strings"
)

// strftimeToGo turns a log_timestamp_format (strftime's language, which
// Mosquitto hands to the C library) into a Go time layout. Only the
// conversions with a Go equivalent are taken; any other is an error, so
// a log never shows a format the owner did not ask for.
func strftimeToGo(f string) (string, error) {
	conv := map[byte]string{
		'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'H': "15", 'I': "03", 'M': "04", 'S': "05",
		'p': "PM", 'b': "Jan", 'h': "Jan", 'B': "January", 'a': "Mon", 'A': "Monday", 'j': "002",
		'z': "-0700", 'Z': "MST", 'F': "2006-01-02", 'T': "15:04:05", 'R': "15:04", 'D': "01/02/06", '%': "%",
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			b.WriteByte(f[i])
			continue
		}
		if i+1 == len(f) {
			return "", fmt.Errorf("ends with a lone %%")
		}
		i++
		g, ok := conv[f[i]]
		if !ok {
			return "", fmt.Errorf("%%%c has no equivalent here (use %%Y %%m %%d %%H %%M %%S %%z and the like)", f[i])
		}
		b.WriteString(g)
	}
	return b.String(), nil
}
