package topics

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTreeCountsValuesAndBounds(t *testing.T) {
	tr := NewTree(4)
	t0 := time.Unix(1000, 0)
	rec := func(topic, payload string, retained bool) {
		tr.Record(Message{Topic: topic, Payload: []byte(payload), QoS: 1, Retained: retained, At: t0})
	}
	rec("home/kitchen/temp", "21.4", true)
	rec("home/kitchen/temp", "21.5", false)
	rec("home/kitchen/hum", `{"h":40}`, false)
	rec("home/door", "\x00\xffbin", true)
	rec("garden/soil", "dry", false)
	rec("garden/rain", "no", false) // the fifth topic: past the bound
	if n, dropped := tr.Stats(); n != 4 || dropped != 1 {
		t.Errorf("topics %d dropped %d, want 4 and 1", n, dropped)
	}
	top := tr.List("", 1, t0.Add(2*time.Second))
	if len(top) != 2 || top[0].Topic != "garden" || top[1].Topic != "home" || top[1].Messages != 4 || top[1].Children != 2 || top[1].Payload != nil {
		t.Fatalf("top level %+v", top)
	}
	deep := tr.List("home", 2, t0.Add(2*time.Second))
	var names []string
	for _, n := range deep {
		names = append(names, n.Topic)
	}
	if strings.Join(names, ",") != "home/door,home/kitchen,home/kitchen/hum,home/kitchen/temp" {
		t.Errorf("home two deep: %v", names)
	}
	temp, hist, ok := tr.Get("home/kitchen/temp", t0.Add(2*time.Second))
	if !ok || *temp.Payload != "21.5" || *temp.Retained || *temp.QoS != 1 || *temp.AgeSeconds != 2 || temp.Messages != 2 ||
		len(hist) != 2 || hist[1].Value != "21.5" {
		t.Errorf("temp %+v history %v", temp, hist)
	}
	door, _, _ := tr.Get("home/door", t0)
	if door.Payload != nil || *door.PayloadHex != "00 ff 62 69 6e" {
		t.Errorf("binary shown as %+v", door)
	}
	if r := tr.Retained("home", true); strings.Join(r, ",") != "home/door" {
		t.Errorf("retained under home: %v (temp's last was not retained)", r)
	}
	// An empty retained message clears the value.
	tr.Record(Message{Topic: "home/door", Retained: true, At: t0})
	if r := tr.Retained("home", true); len(r) != 0 {
		t.Errorf("retained after clearing: %v", r)
	}
	// Values are cut at MaxPayload; the history holds HistoryLen numbers.
	for i := range HistoryLen + 5 {
		rec("home/kitchen/temp", strconv.Itoa(i), false)
	}
	rec("home/kitchen/temp", strings.Repeat("y", MaxPayload+10), false)
	big, hist, _ := tr.Get("home/kitchen/temp", t0)
	if len(*big.Payload) != MaxPayload || !big.Truncated || len(hist) != HistoryLen {
		t.Errorf("payload %d truncated %v history %d", len(*big.Payload), big.Truncated, len(hist))
	}
	if l := tr.List("nope", 1, t0); len(l) != 0 {
		t.Errorf("unknown prefix: %v", l)
	}
}
