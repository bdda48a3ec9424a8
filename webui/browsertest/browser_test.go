package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/homebox/gateway/internal/testkit"
)

// Widths the pages are checked and photographed at: a small phone and a
// laptop.
const (
	phoneWidth   = 375
	desktopWidth = 1280
)

// browser is one headless Chromium tab.
type browser struct {
	t    testing.TB
	ctx  context.Context
	base string // http://127.0.0.1:port
	// shots is where screenshots are kept besides the test's own folder;
	// "" keeps them in the test's folder only.
	shots string
}

// newBrowser starts Chromium (Debian's, or CHROMIUM) with a fresh profile.
// A missing Chromium fails the test, naming it.
func newBrowser(t testing.TB, base string) *browser {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = testkit.RequireTool(t, "chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(desktopWidth, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() {
		cancelC()
		cancelA()
	})
	b := &browser{t: t, ctx: ctx, base: base}
	// The first run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	b.size(desktopWidth, 900)
	return b
}

// do runs actions, failing the test with what it was doing.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page status: %q)", what, err, b.statusText())
	}
}

// size sets the viewport; mobile widths get a phone's touch viewport.
func (b *browser) size(w, h int) {
	b.t.Helper()
	if w < 700 {
		b.do(fmt.Sprintf("viewport %dx%d", w, h), chromedp.EmulateViewport(int64(w), int64(h), chromedp.EmulateMobile, chromedp.EmulatePortrait))
	} else {
		b.do(fmt.Sprintf("viewport %dx%d", w, h), chromedp.EmulateViewport(int64(w), int64(h)))
	}
}

// open loads a page of the console and waits until its script has run.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
	b.waitJS("the page's script to run for "+path, `document.body && document.body.dataset.ready === "true"`)
}

// eval runs an expression and decodes its value into out.
func eval[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// waitJS polls a JavaScript condition until it is true or 20 s pass.
func (b *browser) waitJS(what, cond string) {
	b.t.Helper()
	b.waitJSFor(20*time.Second, what, cond)
}

func (b *browser) waitJSFor(timeout time.Duration, what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		var ok bool
		ok, lastErr = eval[bool](b, "!!("+cond+")")
		if lastErr == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %s waiting for %s (%s; last error %v; page %s, status %q)", timeout, what, cond, lastErr, b.location(), b.statusText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitText waits until an element matching sel holds text.
func (b *browser) waitText(sel, text string) {
	b.t.Helper()
	b.waitTextFor(20*time.Second, sel, text)
}

func (b *browser) waitTextFor(timeout time.Duration, sel, text string) {
	b.t.Helper()
	b.waitJSFor(timeout, fmt.Sprintf("%q to show %q", sel, text),
		fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).some(n => n.textContent.includes(%s))`, js(sel), js(text)))
}

// text is an element's text, "" when there is none.
func (b *browser) text(sel string) string {
	s, _ := eval[string](b, fmt.Sprintf(`(() => { const n = document.querySelector(%s); return n ? n.textContent : ""; })()`, js(sel)))
	return s
}

func (b *browser) statusText() string {
	s, _ := eval[string](b, `(() => { const n = document.querySelector("#status"); return n ? n.textContent : ""; })()`)
	return s
}

func (b *browser) location() string {
	s, _ := eval[string](b, `location.href`)
	return s
}

// fill types into a field after clearing it, like a person would.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.do("fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { document.querySelector(%s).value = ""; return {}; })()`, js(sel))),
		chromedp.SendKeys(chromedp.CSS(sel), value))
}

// setValue sets a field's value at once (long texts) and fires input.
func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	b.do("set "+sel, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const n = document.querySelector(%s); n.value = %s; n.dispatchEvent(new Event("input", {bubbles: true})); n.dispatchEvent(new Event("change", {bubbles: true})); return {}; })()`, js(sel), js(value))))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// confirm waits for the confirmation dialog to ask about want, then presses
// its confirm button.
func (b *browser) confirm(want string) {
	b.t.Helper()
	b.waitJS("the confirmation dialog to ask "+want, fmt.Sprintf(`document.querySelector("#confirm").open && document.querySelector("#confirm").textContent.includes(%s)`, js(want)))
	b.click("#confirm-ok")
	b.waitJS("the dialog closed", `!document.querySelector("#confirm").open`)
}

// noSidewaysScroll fails when the page is wider than the viewport.
func (b *browser) noSidewaysScroll(page string) {
	b.t.Helper()
	type width struct {
		Scroll int    `json:"scroll"`
		Inner  int    `json:"inner"`
		Wide   string `json:"wide"`
	}
	expr := `(() => {
	  const inner = window.innerWidth;
	  let wide = "";
	  for (const n of document.querySelectorAll("body *")) {
	    const r = n.getBoundingClientRect();
	    if (r.width && r.right > inner + 1 && !n.closest(".editor, .log, .diff")) { wide = n.tagName + (n.id ? "#" + n.id : "") + "." + n.className + " right=" + r.right; break; }
	  }
	  return {scroll: document.documentElement.scrollWidth, inner, wide};
	})()`
	r, err := eval[width](b, expr)
	if err != nil {
		b.t.Fatalf("%s: measure width: %v", page, err)
	}
	if r.Scroll > r.Inner || r.Wide != "" {
		b.t.Errorf("%s at %d px scrolls sideways: scrollWidth %d, first wide element %s", page, r.Inner, r.Scroll, r.Wide)
	}
}

// shot saves a full-page screenshot as name.png in the test's folder and
// in b.shots when set.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{b.t.TempDir()}
	if b.shots != "" {
		dirs = append(dirs, b.shots)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// pageBoth photographs the current page at phone and desktop width and
// checks the phone view does not scroll sideways.
func (b *browser) pageBoth(name, path, readyCond string) {
	b.t.Helper()
	for _, w := range []int{phoneWidth, desktopWidth} {
		b.size(w, 800)
		b.open(path)
		if readyCond != "" {
			b.waitJS(name+" filled", readyCond)
		}
		if w == phoneWidth {
			b.noSidewaysScroll(name)
			b.shot(name + "-phone")
		} else {
			b.shot(name + "-desktop")
		}
	}
}

// js quotes s as a JavaScript string.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

func chromedpNavigate(url string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(url) }

// chromedpSubmit presses Enter in a form's first field, as a keyboard
// user would.
func chromedpSubmit(form string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(chromedp.CSS(form+" input"), "\r")
}

// chromedpSetSelect chooses an option and fires change, as a person's
// choice would.
func chromedpSetSelect(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const n = document.querySelector(%s); n.value = %s; n.dispatchEvent(new Event("change", {bubbles: true})); return {}; })()`, js(sel), js(value)))
}
