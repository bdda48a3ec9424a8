package announce

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func z2mList(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"ieee_address":"0x%016x","type":"EndDevice","friendly_name":"d%d"}`, i+1, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func TestPayloadCapBeforeDecoding(t *testing.T) {
	p := Parsers{MaxPayload: 64, MaxListPayload: 128}
	big := []byte(`{"id":"a","name":"` + strings.Repeat("n", 100) + `"}`)
	if _, ok, err := p.Parse("gateway/announce/a", big, time.Now()); !ok || !errors.Is(err, ErrTooLarge) {
		t.Errorf("announce over MaxPayload: ok=%v err=%v", ok, err)
	}
	// Not even looked at: a broken payload over the cap is "too large".
	if _, _, err := p.Parse("homeassistant/sensor/x/config", bytes.Repeat([]byte("{"), 65), time.Now()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("broken payload over the cap: %v", err)
	}
	if _, _, err := p.Parse("zigbee2mqtt/bridge/devices", z2mList(1), time.Now()); err != nil {
		t.Errorf("list under MaxListPayload: %v", err)
	}
	if _, _, err := p.Parse("zigbee2mqtt/bridge/devices", z2mList(3), time.Now()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("list over MaxListPayload: %v", err)
	}
}

// zigbee2mqtt's list is read entry by entry: claims stop at MaxClaims, the
// rest are only checked and counted.
func TestZigbee2MQTTListCapped(t *testing.T) {
	p := Parsers{MaxClaims: 100}
	res, ok, err := p.Parse("zigbee2mqtt/bridge/devices", z2mList(5000), time.Now())
	if !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if len(res.Claims) != 100 || res.Dropped.Devices != 4900 {
		t.Errorf("claims %d, dropped %+v; want 100 and 4900", len(res.Claims), res.Dropped)
	}
	if res.Claims[99].Name != "d99" {
		t.Errorf("last claim = %+v", res.Claims[99])
	}
	// Past the cap, entries are still checked: a malformed tail refuses the
	// list as before.
	bad := append(bytes.TrimSuffix(z2mList(200), []byte("]")), []byte(`,{"friendly_name":"no ieee"}]`)...)
	if _, _, err := p.Parse("zigbee2mqtt/bridge/devices", bad, time.Now()); err == nil || !strings.Contains(err.Error(), "entry 200") {
		t.Errorf("malformed entry past the cap: %v", err)
	}
	for _, tail := range []string{`]x`, ``, `,]`} {
		payload := append(bytes.TrimSuffix(z2mList(2), []byte("]")), tail...)
		if _, _, err := p.Parse("zigbee2mqtt/bridge/devices", payload, time.Now()); err == nil {
			t.Errorf("list ending %q accepted", tail)
		}
	}
}

func TestEntitiesPerMessageCapped(t *testing.T) {
	p := Parsers{MaxEntities: 3}
	var cmps []string
	for i := range 10 {
		cmps = append(cmps, fmt.Sprintf(`"c%02d":{"p":"sensor","uniq_id":"u%02d"}`, i, i))
	}
	res, _, err := p.Parse("homeassistant/device/big/config", []byte(`{"dev":{"ids":"big"},"cmps":{`+strings.Join(cmps, ",")+`}}`), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Claims[0].Entities); n != 3 || res.Dropped.Entities != 7 {
		t.Errorf("entities %d, dropped %+v", n, res.Dropped)
	}
	var exposes []string
	for i := range 10 {
		exposes = append(exposes, fmt.Sprintf(`{"type":"numeric","name":"v%d","property":"v%d"}`, i, i))
	}
	list := `[{"ieee_address":"0x01","definition":{"model":"m","vendor":"v","exposes":[` + strings.Join(exposes, ",") + `]}}]`
	res, _, err = p.Parse("zigbee2mqtt/bridge/devices", []byte(list), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Claims[0].Entities); n != 3 || res.Dropped.Entities != 7 {
		t.Errorf("zigbee2mqtt entities %d, dropped %+v", n, res.Dropped)
	}
}
