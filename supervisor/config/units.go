package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var sizeUnits = map[string]uint64{
	"": 1, "B": 1,
	"K": 1 << 10, "KIB": 1 << 10, "KB": 1000,
	"M": 1 << 20, "MIB": 1 << 20, "MB": 1000 * 1000,
	"G": 1 << 30, "GIB": 1 << 30, "GB": 1000 * 1000 * 1000,
}

// ParseSize reads a byte size such as 256MiB, 1.5GiB, 500MB, 200M or 4096.
// K, M and G alone are binary units, as PM2's max_memory_restart reads them.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || !ok {
		return 0, fmt.Errorf("%q is not a size: write it like 256MiB, 1GiB, 500MB or 200M", s)
	}
	b := v * float64(mult)
	if b < 1 || b > math.MaxInt64 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return uint64(b), nil
}
