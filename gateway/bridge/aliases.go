package bridge

import (
	"fmt"
	"sync"

	"github.com/eclipse/paho.golang/paho"
)

// inAliases are the topic aliases an MQTT 5 remote set on this connection
// (up to bridge_max_topic_alias, told in CONNECT). paho.golang hands them
// over unresolved, so the bridge keeps the map itself.
type inAliases struct {
	max uint16
	mu  sync.Mutex
	m   map[uint16]string
}

func newInAliases(max uint16) *inAliases {
	return &inAliases{max: max, m: map[uint16]string{}}
}

// resolve returns the topic of p, learning or using its alias; an alias
// out of range or never set is a protocol error from the remote.
func (a *inAliases) resolve(p *paho.Publish) (string, error) {
	if p.Properties == nil || p.Properties.TopicAlias == nil {
		return p.Topic, nil
	}
	n := *p.Properties.TopicAlias
	if n == 0 || n > a.max {
		return "", fmt.Errorf("remote sent topic alias %d; bridge_max_topic_alias is %d", n, a.max)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.Topic != "" {
		a.m[n] = p.Topic
		return p.Topic, nil
	}
	t, ok := a.m[n]
	if !ok {
		return "", fmt.Errorf("remote sent topic alias %d before setting it", n)
	}
	return t, nil
}
