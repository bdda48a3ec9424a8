package browsertest

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/homebox/gateway/webui/topics"
)

// The topic explorer in Chromium: the tree, a value that changes live, a
// topic's JSON and history, publishing, and clearing retained messages
// after a confirmation.
func TestTopicsPage(t *testing.T) {
	e := newPagesEnv(t)
	b := newBrowser(t, e.url)
	setUpConsole(b, e)
	b.shots = os.Getenv("GATEWAY_SCREENSHOTS")
	rec := func(topic, payload string, retained bool) {
		e.topics.tree.Record(topics.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Retained: retained, At: time.Now()})
	}
	rec("home/kitchen/temp", "21.0", true)
	rec("home/kitchen/climate", `{"temperature":21,"humidity":40}`, true)
	rec("home/door", "closed", false)
	rec("zigbee2mqtt/bridge/state", "online", true)

	b.open("/topics")
	b.waitJS("the top level", `document.querySelector('#tree li[data-topic="home"]') !== null && document.querySelector('#tree li[data-topic="zigbee2mqtt"]') !== null`)
	b.click(`#tree li[data-topic="home"] .toggle`)
	b.waitJS("home expanded", `document.querySelector('#tree li[data-topic="home/kitchen"]') !== null`)
	b.click(`#tree li[data-topic="home/kitchen"] .toggle`)
	b.waitText(`#tree li[data-topic="home/kitchen/temp"]`, "21.0")
	// Live: a new value shows without a reload.
	for i := 1; i <= 3; i++ {
		rec("home/kitchen/temp", fmt.Sprintf("21.%d", i), false)
	}
	b.waitText(`#tree li[data-topic="home/kitchen/temp"]`, "21.3")
	// A topic's page: pretty JSON, history with a sparkline.
	b.click(`#tree li[data-topic="home/kitchen/climate"] .name`)
	b.waitText("#topic-value", "\"humidity\": 40")
	b.click(`#tree li[data-topic="home/kitchen/temp"] .name`)
	b.waitJS("a sparkline", `document.querySelector("#sparkline path") !== null`)
	b.waitText("#topic-history", "21.3")

	// Publish.
	b.fill("#pub-topic", "home/light/set")
	b.fill("#pub-payload", "ON")
	b.click("#publish-form button[type=submit]")
	b.waitText("#status", "Published to home/light/set")
	if s := e.topics.sent(); len(s) != 1 || s[0].Topic != "home/light/set" || s[0].Payload != "ON" || s[0].QoS != 1 {
		t.Errorf("published %+v", s)
	}
	b.fill("#pub-topic", "home/#")
	b.click("#publish-form button[type=submit]")
	b.waitText("#publish-error", "wildcard")

	// Clear retained below home/kitchen, after the dialog.
	b.click(`#tree li[data-topic="home/kitchen"] .name`)
	b.waitText("#topic-name", "home/kitchen")
	b.click("#clear-tree")
	b.waitJS("the dialog asks", `document.querySelector("#confirm").open && document.querySelector("#confirm-title").textContent.includes("below home/kitchen")`)
	if len(e.topics.sent()) != 1 {
		t.Fatal("something was cleared before the confirmation")
	}
	b.click("#confirm-ok")
	b.waitText("#status", "Cleared 1 retained message")
	if s := e.topics.sent(); len(s) != 2 || s[1].Topic != "home/kitchen/climate" || s[1].Payload != "" || !s[1].Retain {
		t.Errorf("clearing sent %+v", s)
	}
	b.pageBoth("topics", "/topics", `document.querySelector('#tree li[data-topic="home"]') !== null`)
}

// setUpConsole sets the admin password on a fresh console, which logs in.
func setUpConsole(b *browser, e *pagesEnv) {
	b.do("open /setup", chromedpNavigate(e.url+"/setup"))
	b.waitJS("the setup page", `document.body.dataset.ready === "true"`)
	b.fill("#setup-password", adminPassword)
	b.fill("#setup-confirm", adminPassword)
	b.click("#setup-form button[type=submit]")
	b.waitJS("the overview after setup", `location.pathname === "/" && document.body.dataset.ready === "true"`)
}

// BenchmarkExplorerPage is the figure: the Topics page in Chromium
// over a tree of 10,000 topics while 1,000 messages a second arrive, for
// 10 s. It reports the page's frame times (requestAnimationFrame deltas)
// and the tree's heap. make bench runs it once.
func BenchmarkExplorerPage(bm *testing.B) {
	e := newPagesEnv(bm)
	b := newBrowser(bm, e.url)
	setUpConsole(b, e)
	now := time.Now()
	for i := range 10000 {
		e.topics.tree.Record(topics.Message{Topic: fmt.Sprintf("home/room%d/sensor%d/value", i/100, i%100), Payload: []byte(`{"temperature":21.5}`), At: now})
	}
	stop := make(chan struct{})
	streamed := make(chan int)
	go func() { // 1,000 msg/s: 10 every 10 ms
		n := 0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				streamed <- n
				return
			case at := <-tick.C:
				for range 10 {
					e.topics.tree.Record(topics.Message{Topic: fmt.Sprintf("home/room%d/sensor%d/value", n%100, (n/100)%100), Payload: []byte(strconv.Itoa(n % 40)), At: at})
					n++
				}
			}
		}
	}()
	b.open("/topics")
	b.waitJS("the tree", `document.querySelector('#tree li[data-topic="home"]') !== null`)
	b.click(`#tree li[data-topic="home"] .toggle`)
	b.waitJS("home open", `document.querySelector('#tree li[data-topic="home/room1"]') !== null`)
	b.click(`#tree li[data-topic="home/room1"] .toggle`)
	b.waitJS("a room open", `document.querySelector('#tree li[data-topic="home/room1/sensor1"]') !== null`)
	b.do("count frames", chromedp.Evaluate[chromedp.Void](`(() => { window.__frames = []; let last = performance.now();
		const f = t => { window.__frames.push(t - last); last = t; requestAnimationFrame(f); }; requestAnimationFrame(f); return {}; })()`))
	bm.ResetTimer()
	window := time.NewTimer(10 * time.Second) // the measured window, not a wait for a condition
	<-window.C
	frames, err := eval[[]float64](b, `window.__frames`)
	close(stop)
	n := <-streamed
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if err != nil || len(frames) < 10 {
		bm.Fatalf("frames: %v (%d)", err, len(frames))
	}
	slices.Sort(frames)
	pct := func(p float64) float64 { return frames[int(p*float64(len(frames)-1))] }
	bm.ReportMetric(pct(.5), "ms-frame-p50")
	bm.ReportMetric(pct(.95), "ms-frame-p95")
	bm.ReportMetric(frames[len(frames)-1], "ms-frame-max")
	bm.ReportMetric(float64(n)/10, "msg/s")
	bm.ReportMetric(float64(after.HeapAlloc)/(1<<20), "MiB-heap") // the whole console's, the tree's included
}
