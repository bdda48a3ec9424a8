package confflow

import (
	"fmt"
	"strings"
)

// describeChange says in a line what a change did to a file, for the
// history: the option lines added and removed, or for a password file the
// users added, removed or given a new password (never a hash).
func describeChange(kind string, before, after []byte) string {
	if kind == KindPasswords {
		return describeUsers(before, after)
	}
	removed, added := lineChanges(before, after)
	var parts []string
	for _, l := range added {
		parts = append(parts, "+ "+l)
	}
	for _, l := range removed {
		parts = append(parts, "− "+l)
	}
	return summary(parts, "comments or blank lines only")
}

// lineChanges are the meaningful lines (no comments or blanks) only in
// before and only in after, each in its file's order; a line moved or
// repeated the same number of times is no change.
func lineChanges(before, after []byte) (removed, added []string) {
	count := map[string]int{}
	for _, l := range meaningful(before) {
		count[l]++
	}
	for _, l := range meaningful(after) {
		count[l]--
	}
	for _, l := range meaningful(before) {
		if count[l] > 0 {
			removed = append(removed, l)
			count[l]--
		}
	}
	for _, l := range meaningful(after) {
		if count[l] < 0 {
			added = append(added, l)
			count[l]++
		}
	}
	return removed, added
}

func meaningful(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.Join(strings.Fields(l), " ")
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func describeUsers(before, after []byte) string {
	users := func(data []byte) map[string]string {
		m := map[string]string{}
		for _, l := range meaningful(data) {
			if name, hash, ok := strings.Cut(l, ":"); ok {
				m[name] = hash
			}
		}
		return m
	}
	old, cur := users(before), users(after)
	var parts []string
	for _, l := range meaningful(after) {
		name, _, _ := strings.Cut(l, ":")
		switch h, ok := old[name]; {
		case !ok:
			parts = append(parts, "user "+name+" added")
		case h != cur[name]:
			parts = append(parts, "new password for "+name)
		}
	}
	for _, l := range meaningful(before) {
		if name, _, _ := strings.Cut(l, ":"); cur[name] == "" {
			if _, ok := cur[name]; !ok {
				parts = append(parts, "user "+name+" removed")
			}
		}
	}
	return summary(parts, "no user changed")
}

// summary joins the first few parts, each cut to a readable length, and
// counts the rest.
func summary(parts []string, none string) string {
	const shown, width = 4, 80
	for i, p := range parts {
		if r := []rune(p); len(r) > width {
			parts[i] = string(r[:width-1]) + "…"
		}
	}
	switch {
	case len(parts) == 0:
		return none
	case len(parts) > shown:
		return strings.Join(parts[:shown], "; ") + fmt.Sprintf("; and %d more", len(parts)-shown)
	}
	return strings.Join(parts, "; ")
}
