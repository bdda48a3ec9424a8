package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/homebox/gateway/internal/testkit"
	"github.com/homebox/gateway/webui/api"
)

// fakeSystem records what the API asked of the slots.
type fakeSystem struct {
	mu       sync.Mutex
	got      []byte
	path     string
	reboots  int
	resets   int
	refuse   error
	rollback error
}

func (f *fakeSystem) Info() api.System {
	return api.System{Version: "v2", Arch: "arm64", Slots: true, Booted: &api.Slot{Slot: "a", Version: "v2", State: "good"}}
}
func (f *fakeSystem) Install(_ context.Context, r io.Reader, max int64) (api.Updated, error) {
	b, err := io.ReadAll(io.LimitReader(r, max))
	if err != nil {
		return api.Updated{}, err
	}
	f.mu.Lock()
	f.got = b
	f.mu.Unlock()
	if f.refuse != nil {
		return api.Updated{}, f.refuse
	}
	return api.Updated{Version: "v3", Slot: "b"}, nil
}
func (f *fakeSystem) InstallFile(_ context.Context, path string) (api.Updated, error) {
	f.mu.Lock()
	f.path = path
	f.mu.Unlock()
	return api.Updated{Version: "v3", Slot: "b"}, nil
}
func (f *fakeSystem) Rollback() error { return f.rollback }
func (f *fakeSystem) FactoryReset() error {
	f.mu.Lock()
	f.resets++
	f.mu.Unlock()
	return nil
}
func (f *fakeSystem) Reboot() error {
	f.mu.Lock()
	f.reboots++
	f.mu.Unlock()
	return nil
}
func (f *fakeSystem) rebooted() int { f.mu.Lock(); defer f.mu.Unlock(); return f.reboots }

func socketReq(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, "http://gatewayd"+target, body)
	return r.WithContext(ConnContext(OriginSocket)(r.Context(), nil))
}

func TestSystemUpdateRebootsAfterAnswering(t *testing.T) {
	sys := &fakeSystem{}
	h := New(Deps{System: sys})

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, socketReq("GET", "/api/system", nil))
	var info api.System
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &info) != nil || info.Booted == nil || info.Booted.Slot != "a" {
		t.Fatalf("GET /api/system: %d %s", rec.Code, rec.Body)
	}

	bundle := bytes.Repeat([]byte("x"), 3<<20) // over the 2 MiB bound of other routes
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, socketReq("POST", "/api/system/update", bytes.NewReader(bundle)))
	var up api.Updated
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &up) != nil || !up.Rebooting || up.Slot != "b" {
		t.Fatalf("update: %d %s", rec.Code, rec.Body)
	}
	if len(sys.got) != len(bundle) {
		t.Errorf("the bundle reached the install cut to %d bytes", len(sys.got))
	}
	testkit.WaitFor(t, 5*time.Second, "the reboot after the answer", func() bool { return sys.rebooted() == 1 })

	// A refusal says why and does not reboot.
	sys.refuse = &SystemError{Status: 422, Msg: "update bundle refused: bundle v3 is for amd64, this gateway is arm64"}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, socketReq("POST", "/api/system/update", bytes.NewReader([]byte("bad"))))
	if rec.Code != 422 || !bytes.Contains(rec.Body.Bytes(), []byte("for amd64")) {
		t.Errorf("refused bundle: %d %s", rec.Code, rec.Body)
	}
	if sys.rebooted() != 1 {
		t.Errorf("a refused bundle rebooted the box")
	}

	// path= is gwctl's, on the socket only.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, socketReq("POST", "/api/system/update?path=/tmp/b.update", nil))
	if rec.Code != 200 || sys.path != "/tmp/b.update" {
		t.Errorf("update by path on the socket: %d %s (%q)", rec.Code, rec.Body, sys.path)
	}
	testkit.WaitFor(t, 5*time.Second, "the reboot after an update by path", func() bool { return sys.rebooted() == 2 })
	lan := httptest.NewRequest("POST", "http://localhost/api/system/update?path=/etc/shadow", nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, lan)
	if rec.Code == 200 {
		t.Errorf("update by path from the LAN: %d %s", rec.Code, rec.Body)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, socketReq("POST", "/api/system/factory-reset", nil))
	if rec.Code != 200 {
		t.Errorf("factory reset: %d %s", rec.Code, rec.Body)
	}
	testkit.WaitForReport(t, 5*time.Second, "the reboot after the factory reset", func() bool { return sys.rebooted() == 3 }, func() string { return fmt.Sprint("reboots: ", sys.rebooted()) })

	sys.rollback = &SystemError{Status: 409, Msg: "roll back: the other slot is empty"}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, socketReq("POST", "/api/system/rollback", nil))
	if rec.Code != 409 {
		t.Errorf("rollback with nothing to go back to: %d %s", rec.Code, rec.Body)
	}
}
