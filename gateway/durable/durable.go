// Package durable is the broker's store: mochi's bbolt storage hook, with
// the one fault that would lose messages mended from outside.
//
// mochi v2.7.9's bolt hook writes every change at once (each bbolt
// transaction is fsynced), so retained messages, sessions, subscriptions and
// queued QoS 1/2 messages survive kill -9 and power cuts, not only a clean
// stop. But it saves queued messages without their packet id, so on load
// every one of a session's messages gets id 0 and all but one are lost. The
// id is still in the record's key ("if_<client>:<id>"), so StoredInflightMessages
// here puts it back.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"go.etcd.io/bbolt"
)

// Hook is mochi's bolt hook with the packet ids restored on load.
type Hook struct {
	*bolt.Hook
}

// New returns the hook; pass Options(path) to server.AddHook.
func New() *Hook { return &Hook{Hook: new(bolt.Hook)} }

// Options opens the store at path, creating its folder. A store still held
// by another broker process is an error after a second, not a hang.
func Options(path string) (*bolt.Options, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("persistence folder: %w", err)
	}
	return &bolt.Options{
		Path:    path,
		Options: &bbolt.Options{Timeout: time.Second},
	}, nil
}

// StoredInflightMessages loads the queued messages with their packet ids.
func (h *Hook) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := h.Hook.StoredInflightMessages()
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		if id, ok := packetIDFromKey(msgs[i].ID); ok {
			msgs[i].PacketID = id
		}
	}
	return msgs, nil
}

// packetIDFromKey reads the id after the last ':' of an inflight key.
func packetIDFromKey(key string) (uint16, bool) {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(key[i+1:], 10, 16)
	if err != nil {
		return 0, false
	}
	return uint16(n), true
}
