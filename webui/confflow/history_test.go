package confflow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHistoryKeepsBoundedNewestFirst(t *testing.T) {
	h := NewHistory(t.TempDir(), 3)
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	n := 0
	h.now = func() time.Time { n++; return base.Add(time.Duration(n/2) * time.Second) } // pairs share a time
	for i := range 5 {
		if _, err := h.Save("mosquitto.conf", []byte(fmt.Sprintf("v%d", i)), "edit"); err != nil {
			t.Fatal(err)
		}
	}
	list, err := h.List("mosquitto.conf")
	if err != nil || len(list) != 3 {
		t.Fatalf("list %v %v", list, err)
	}
	for i, want := range []string{"v4", "v3", "v2"} {
		e, data, err := h.Read("mosquitto.conf", list[i].ID)
		if err != nil || string(data) != want || e.Size != 2 || e.Reason != "edit" {
			t.Errorf("entry %d: %+v %q %v, want %s", i, e, data, err, want)
		}
	}
	if other, _ := h.List("password_file"); len(other) != 0 {
		t.Errorf("kinds mixed: %v", other)
	}
}

func TestHistoryRefusesIDsItDidNotMake(t *testing.T) {
	dir := t.TempDir()
	h := NewHistory(dir, 0)
	secret := filepath.Join(dir, "secret.data")
	os.WriteFile(secret, []byte("x"), 0o600)
	for _, id := range []string{"", "../secret", "../../etc/passwd", "20261123T090000.000000000Z/../../secret", "20261123T090000.000000000Z"} {
		if _, _, err := h.Read("mosquitto.conf", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("id %q: %v", id, err)
		}
	}
	if _, err := h.Save("../x", []byte("x"), ""); err == nil {
		t.Error("kind with a path accepted")
	}
}
