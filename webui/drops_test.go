package webui

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/gateway/sysstats"
	"github.com/homebox/gateway/webui/api"
)

type floodedDevices struct{}

func (floodedDevices) Devices() []discovery.Device            { return []discovery.Device{{ID: "one"}} }
func (floodedDevices) Device(string) (discovery.Device, bool) { return discovery.Device{}, false }
func (floodedDevices) Forget(string, bool) (discovery.Forgotten, error) {
	return discovery.Forgotten{}, discovery.ErrUnknownDevice
}
func (floodedDevices) Stats() discovery.DropStats {
	return discovery.DropStats{Messages: 2, Devices: 19002, Entities: 7, Fields: 3}
}

type quietStats struct{}

func (quietStats) Snapshot() sysstats.Snapshot { return sysstats.Snapshot{Up: true} }
func (quietStats) Changed() (<-chan struct{}, func()) {
	return make(chan struct{}), func() {}
}

// What discovery's limits refused shows on the overview's figures.
func TestStatsShowDiscoveryDrops(t *testing.T) {
	h := New(Deps{Devices: floodedDevices{}, Console: &Console{Stats: quietStats{}}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, socketReq("GET", "/api/broker/stats", nil))
	var st api.Stats
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &st) != nil {
		t.Fatalf("stats: %d %s", rec.Code, rec.Body)
	}
	if st.DevicesDropped == nil || st.DevicesDropped.Devices != 19002 || st.DevicesDropped.Messages != 2 || *st.Devices != 1 {
		t.Errorf("stats: %s", rec.Body)
	}
}
