package browsertest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/homebox/gateway/webui"
	"github.com/homebox/gateway/webui/api"
	"github.com/homebox/gateway/webui/auth"
	"github.com/homebox/gateway/webui/pages"
)

// fakeSlots is the box's A/B slots as the System page sees them.
type fakeSlots struct {
	mu       sync.Mutex
	got      []byte
	resets   int
	reboots  int
	refusing string
}

var _ webui.System = (*fakeSlots)(nil)

func (f *fakeSlots) Info() api.System {
	return api.System{Version: "v2.0.0", Arch: "arm64", Slots: true,
		Booted:     &api.Slot{Slot: "a", Version: "v2.0.0", State: "good"},
		Other:      &api.Slot{Slot: "b", Version: "v1.9.0", State: "good"},
		LastUpdate: &api.UpdateResult{Version: "v2.0.0", Slot: "a", State: "good", Time: time.Now()}}
}
func (f *fakeSlots) Install(_ context.Context, r io.Reader, max int64) (api.Updated, error) {
	b, err := io.ReadAll(io.LimitReader(r, max))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = b
	if err != nil {
		return api.Updated{}, err
	}
	if f.refusing != "" {
		return api.Updated{}, &webui.SystemError{Status: 422, Msg: f.refusing}
	}
	return api.Updated{Version: "v2.1.0", Slot: "b"}, nil
}
func (f *fakeSlots) InstallFile(context.Context, string) (api.Updated, error) {
	return api.Updated{}, &webui.SystemError{Status: 403, Msg: "not here"}
}
func (f *fakeSlots) Rollback() error { return nil }
func (f *fakeSlots) FactoryReset() error {
	f.mu.Lock()
	f.resets++
	f.mu.Unlock()
	return nil
}
func (f *fakeSlots) Reboot() error {
	f.mu.Lock()
	f.reboots++
	f.mu.Unlock()
	return nil
}

// The System page: what runs in which slot, an update uploaded from the
// browser (a refused one says why), and a factory reset that needs a
// second press.
func TestSystemPage(t *testing.T) {
	root := t.TempDir()
	login, err := auth.New(auth.Options{Path: filepath.Join(root, "console.json"), BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login.Setup(adminPassword); err != nil {
		t.Fatal(err)
	}
	slots := &fakeSlots{}
	url := serveLAN(t, webui.New(webui.Deps{Version: "test", System: slots,
		Pages: pages.Handler(pages.Options{Version: "test"}), Console: &webui.Console{Auth: login}}))
	b := newBrowser(t, url)
	if d := os.Getenv("GATEWAY_SCREENSHOTS"); d != "" {
		b.shots = d
	}
	b.open("/login?next=/system")
	b.waitJS("the login page", `document.body.dataset.ready === "true"`)
	b.fill("#login-password", adminPassword)
	b.click("#login-form button[type=submit]")
	b.waitJS("the system page", `location.pathname === "/system" && document.body.dataset.ready === "true"`)
	b.waitText("#system", "A: v2.0.0 (good)")
	b.waitText("#system", "B: v1.9.0 (good)")
	b.pageBoth("system", "/system", `document.body.dataset.ready === "true"`)

	bundle := filepath.Join(t.TempDir(), "gateway-v2.1.0-arm64.update")
	if err := os.WriteFile(bundle, []byte("GWUPDATE-test-bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	slots.refusing = "update bundle refused: bundle v2.1.0 is for amd64, this gateway is arm64"
	b.do("choose the bundle", chromedp.SetUploadFiles(chromedp.CSS("#update-file"), []string{bundle}))
	b.click("#update-form button[type=submit]")
	b.waitText("#update-error", "is for amd64")

	slots.mu.Lock()
	slots.refusing = ""
	slots.mu.Unlock()
	b.click("#update-form button[type=submit]")
	b.waitText("#status", "Installed v2.1.0 into slot B")
	slots.mu.Lock()
	got := string(slots.got)
	slots.mu.Unlock()
	if got != "GWUPDATE-test-bytes" {
		t.Errorf("the box received %q", got)
	}

	b.click("#factory-reset")
	b.waitJS("the dialog asks", `document.querySelector("#confirm").open && document.querySelector("#confirm-title").textContent === "Wipe everything?"`)
	b.click("#confirm-cancel")
	b.waitText("#status", "Cancelled.")
	slots.mu.Lock()
	early := slots.resets
	slots.mu.Unlock()
	if early != 0 {
		t.Fatal("a cancelled factory reset reset the box")
	}
	b.click("#factory-reset")
	b.confirm("Wipe everything?")
	b.waitText("#status", "Factory reset")
}
