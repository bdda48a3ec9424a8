package image

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// modName is a module's name as the kernel spells it: "-" and "_" are the same.
func modName(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(s), ".ko"), "-", "_")
}

// moduleOrder lists the modules to insmod, dependencies first, for the
// wanted ones: each as a path relative to modDir (lib/modules/<version>).
// Debian's package holds no modules.dep (depmod runs at install), so the
// dependencies are read from each module's own .modinfo. A wanted module
// that is built into the kernel (modules.builtin) is left out.
func moduleOrder(modDir string, want []string) ([]string, error) {
	byName := map[string]string{}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".ko") {
			rel, err := filepath.Rel(modDir, p)
			if err != nil {
				return err
			}
			byName[modName(p)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("modules: dependency loop at %s", name)
		case 2:
			return nil
		}
		rel, ok := byName[name]
		if !ok {
			if builtin[name] {
				state[name] = 2
				return nil
			}
			return fmt.Errorf("modules: no module %s (wanted by %s) in %s", name, from, modDir)
		}
		state[name] = 1
		deps, err := modDepends(filepath.Join(modDir, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, rel)
		return nil
	}
	for _, w := range want {
		if err := visit(modName(w), "the image"); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modDepends is the depends= of a module's .modinfo section.
func modDepends(ko string) ([]string, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("modules: %s has no .modinfo", ko)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("modules: %s: %w", ko, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			var deps []string
			for _, d := range strings.Split(string(v), ",") {
				deps = append(deps, modName(d))
			}
			return deps, nil
		}
	}
	return nil, nil
}
