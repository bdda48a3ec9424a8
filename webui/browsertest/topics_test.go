package browsertest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/homebox/gateway/webui/topics"
)

// The topic explorer in Chromium: the tree, a value that changes live, a
// topic's JSON and history, publishing, and clearing retained messages
// after a confirmation.
func TestTopicsPage(t *testing.T) {
	e := newPagesEnv(t)
	b := newBrowser(t, e.url)
	b.do("open /setup", chromedpNavigate(e.url+"/setup"))
	b.waitJS("the setup page", `document.body.dataset.ready === "true"`)
	b.fill("#setup-password", adminPassword)
	b.fill("#setup-confirm", adminPassword)
	b.click("#setup-form button[type=submit]")
	b.waitJS("the overview after setup", `location.pathname === "/" && document.body.dataset.ready === "true"`)
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
