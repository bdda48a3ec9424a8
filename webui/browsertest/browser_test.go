package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
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
	t    *testing.T
	ctx  context.Context
	base string // http://127.0.0.1:port
}

// newBrowser starts Chromium (Debian's, or CHROMIUM) with a fresh profile.
// A missing Chromium fails the test, naming it.
func newBrowser(t *testing.T, base string) *browser {
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
	b.do("start chromium", chromedp.Navigate("about:blank"))
	b.size(desktopWidth, 900)
	return b
}

// do runs actions, failing the test with what it was doing.
func (b *browser) do(what string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page status: %q)", what, err, b.statusText())
	}
}

// size sets the viewport; mobile widths get a phone's touch viewport.
func (b *browser) size(w, h int) {
	b.t.Helper()
	b.do(fmt.Sprintf("viewport %dx%d", w, h), chromedp.ActionFunc(func(ctx context.Context) error {
		return emulation.SetDeviceMetricsOverride(int64(w), int64(h), 1, w < 700).Do(ctx)
	}))
}

// open loads a page of the console and waits until its script has run.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
	b.waitJS("the page's script to run for "+path, `document.body && document.body.dataset.ready === "true"`)
}

// eval runs an expression and decodes its value into out.
func (b *browser) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate(expr, out))
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
		lastErr = b.eval("!!("+cond+")", &ok)
		if lastErr == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %s waiting for %s (%s; last error %v; page %s, status %q)", timeout, what, cond, lastErr, b.location(), b.statusText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitText waits until the element sel holds text.
func (b *browser) waitText(sel, text string) {
	b.t.Helper()
	b.waitTextFor(20*time.Second, sel, text)
}

func (b *browser) waitTextFor(timeout time.Duration, sel, text string) {
	b.t.Helper()
	b.waitJSFor(timeout, fmt.Sprintf("%q to show %q", sel, text),
		fmt.Sprintf(`(() => { const n = document.querySelector(%s); return n && n.textContent.includes(%s); })()`, js(sel), js(text)))
}

// text is an element's text, "" when there is none.
func (b *browser) text(sel string) string {
	var s string
	_ = b.eval(fmt.Sprintf(`(() => { const n = document.querySelector(%s); return n ? n.textContent : ""; })()`, js(sel)), &s)
	return s
}

func (b *browser) statusText() string {
	var s string
	_ = b.eval(`(() => { const n = document.querySelector("#status"); return n ? n.textContent : ""; })()`, &s)
	return s
}

func (b *browser) location() string {
	var s string
	_ = b.eval(`location.href`, &s)
	return s
}

// fill types into a field after clearing it, like a person would.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.do("fill "+sel, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.SetValue(sel, "", chromedp.ByQuery),
		chromedp.SendKeys(sel, value, chromedp.ByQuery))
}

// setValue sets a field's value at once (long texts) and fires input.
func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	b.do("set "+sel, chromedp.Evaluate(fmt.Sprintf(`(() => { const n = document.querySelector(%s); n.value = %s; n.dispatchEvent(new Event("input", {bubbles: true})); n.dispatchEvent(new Event("change", {bubbles: true})); })()`, js(sel), js(value)), nil))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Click(sel, chromedp.ByQuery))
}

// noSidewaysScroll fails when the page is wider than the viewport.
func (b *browser) noSidewaysScroll(page string) {
	b.t.Helper()
	var r struct {
		Scroll, Inner int
		Wide          string
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
	if err := b.eval(expr, &r); err != nil {
		b.t.Fatalf("%s: measure width: %v", page, err)
	}
	if r.Scroll > r.Inner || r.Wide != "" {
		b.t.Errorf("%s at %d px scrolls sideways: scrollWidth %d, first wide element %s", page, r.Inner, r.Scroll, r.Wide)
	}
}

// shot saves a full-page screenshot as name.png in the test's folder and,
// when GATEWAY_SCREENSHOTS names a folder, there too.
func (b *browser) shot(name string) {
	b.t.Helper()
	var png []byte
	b.do("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	dirs := []string{b.t.TempDir()}
	if d := os.Getenv("GATEWAY_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
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

// contains is strings.Contains, for conditions read from the page.
func contains(s, sub string) bool { return strings.Contains(s, sub) }
