// Package durable is the broker's store: retained messages, persistent
// sessions, their subscriptions and queued QoS 1/2 messages, kept in a bbolt
// file so they survive a restart, a kill -9 and a power cut.
//
// mochi's own bolt hook runs one fsynced bbolt transaction per change, about
// one fdatasync per QoS 1 message, which caps QoS 1 near the disk's commit
// rate (~700 msg/s here). This hook writes each change to a log before
// returning (in the kernel, so kill -9 loses nothing; concurrent changes
// share one write(2)), syncs the log every SyncEvery (what a power cut can
// lose at most) and moves the changes into bbolt in one fsynced transaction
// every FlushEvery; bbolt never runs without its own fsyncs, so its file
// cannot be left corrupt. The one change that does not wait for the log is
// the delete of a completed QoS 1/2 message: lost in a kill -9, it only
// means the message is sent once more. See docs/BROKER.md and
// docs/BENCHMARKS.md.
//
// It keeps mochi's keys (bucket "mochi", "CL_<client>",
// "SUB_<client>:<filter>", "RET_<topic>", "IFM_<client>:<packet id>",
// "SYS") and record format, but for messages, which are written in a
// cheaper binary form (record.go); mochi's JSON messages are still read, so
// a store written by mochi's bolt hook loads unchanged (the other way round
// no longer holds: mochi's hook cannot read our messages). Queued
// messages are loaded with the packet id read back from their key: mochi's
// record leaves it out, and without it every queued message of a session
// loads with id 0 and all but one are lost (no upstream issue found;
// TestMochiStillStoresQueuedWithoutPacketID fails once mochi saves the id).
package durable

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
	"go.etcd.io/bbolt"
)

// SyncEvery is how often the log is fdatasynced: a power cut loses at most
// the changes of the last SyncEvery (a crash of the broker alone loses none).
const SyncEvery = 10 * time.Millisecond

// FlushEvery is how often the logged changes are moved into bbolt.
const FlushEvery = 250 * time.Millisecond

const defaultBucket = "mochi"

// Hook is the store as a mochi hook.
type Hook struct {
	mqtt.HookBase
	st *store
}

// inflightRef names a queued message without building its key: the store
// tracks its queued messages by it, so that deletes of records never
// written (mochi's own acks of QoS 1 publishes, one per message) cost a map
// lookup and no key building.
type inflightRef struct {
	client string
	id     uint16
}

// New returns the hook; pass Options(path) to server.AddHook.
func New() *Hook { return &Hook{} }

// Options describes the store at path, creating its folder. A store still
// held by another broker process is an error after a second, not a hang.
func Options(path string) (*bolt.Options, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("persistence folder: %w", err)
	}
	return &bolt.Options{
		Path:    path,
		Options: &bbolt.Options{Timeout: time.Second},
	}, nil
}

// ID names the hook.
func (h *Hook) ID() string { return "gateway-store" }

// Provides says which events the store follows.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnWillSent, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnSysInfoTick, mqtt.OnClientExpired, mqtt.OnRetainedExpired,
		mqtt.StoredClients, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages,
		mqtt.StoredSubscriptions, mqtt.StoredSysInfo:
		return true
	}
	return false
}

// Init opens the store: config is a *bolt.Options from Options.
func (h *Hook) Init(config any) error {
	o, ok := config.(*bolt.Options)
	if !ok || o == nil || o.Path == "" {
		return fmt.Errorf("durable: config must be *bolt.Options with a Path, got %T", config)
	}
	bucket := o.Bucket
	if bucket == "" {
		bucket = defaultBucket
	}
	log := h.Log
	if log == nil {
		log = slog.Default()
	}
	st, err := openStore(o.Path, bucket, o.Options, log, SyncEvery, FlushEvery)
	if err != nil {
		return err
	}
	h.st = st
	return st.scan(storage.InflightKey+"_", func(k string, _ []byte) error {
		client, id, ok := splitInflightKey(k)
		if ok {
			st.tracked[inflightRef{client, id}] = k
		}
		return nil
	})
}

// Stop moves every change into bbolt and closes it.
func (h *Hook) Stop() error {
	if h.st == nil {
		return nil
	}
	err := h.st.close()
	h.st = nil
	return err
}

func (h *Hook) put(key string, v storage.Serializable) {
	data, err := v.MarshalBinary()
	if err != nil {
		h.Log.Error("store: encode", "key", key, "error", err)
		return
	}
	h.st.set(key, data, false)
}

func clientKey(id string) string      { return storage.ClientKey + "_" + id }
func subKey(id, filter string) string { return storage.SubscriptionKey + "_" + id + ":" + filter }
func retainedKey(topic string) string { return storage.RetainedKey + "_" + topic }
func inflightKey(id string, pid uint16) string {
	var num [5]byte // one allocation, the key's: the number is not a string of its own
	return storage.InflightKey + "_" + id + ":" + string(strconv.AppendUint(num[:0], uint64(pid), 10))
}

// OnSessionEstablished saves the client's session.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.saveClient(cl) }

// OnWillSent saves the client without the will that was just sent.
func (h *Hook) OnWillSent(cl *mqtt.Client, _ packets.Packet) { h.saveClient(cl) }

func (h *Hook) saveClient(cl *mqtt.Client) {
	p := cl.Properties.Props.Copy(false)
	h.put(clientKey(cl.ID), &storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: p.SessionExpiryInterval,
			AuthenticationMethod:  p.AuthenticationMethod,
			AuthenticationData:    p.AuthenticationData,
			RequestProblemInfo:    p.RequestProblemInfo,
			RequestResponseInfo:   p.RequestResponseInfo,
			ReceiveMaximum:        p.ReceiveMaximum,
			TopicAliasMaximum:     p.TopicAliasMaximum,
			User:                  p.User,
			MaximumPacketSize:     p.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	})
}

// OnDisconnect forgets a session that ends with its connection (not one
// taken over by a new connection of the same client).
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !expire || cl.StopCause() == packets.ErrSessionTakenOver {
		return
	}
	h.st.set(clientKey(cl.ID), nil, true)
}

// OnClientExpired forgets an expired session.
func (h *Hook) OnClientExpired(cl *mqtt.Client) { h.st.set(clientKey(cl.ID), nil, true) }

// OnSubscribed saves the granted subscriptions.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	for i, f := range pk.Filters {
		if i >= len(codes) {
			break
		}
		h.put(subKey(cl.ID, f.Filter), &storage.Subscription{
			ID:                subKey(cl.ID, f.Filter),
			T:                 storage.SubscriptionKey,
			Client:            cl.ID,
			Qos:               codes[i],
			Filter:            f.Filter,
			Identifier:        f.Identifier,
			NoLocal:           f.NoLocal,
			RetainHandling:    f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		})
	}
}

// OnUnsubscribed forgets the subscriptions.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		h.st.set(subKey(cl.ID, f.Filter), nil, true)
	}
}

// OnRetainMessage saves or clears a retained message (r == -1: cleared).
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if r == -1 {
		h.st.set(retainedKey(pk.TopicName), nil, true)
		return
	}
	m := message(pk)
	m.ID, m.T, m.Client = retainedKey(pk.TopicName), storage.RetainedKey, cl.ID
	h.st.set(m.ID, encodeMessage(&m), false)
}

// OnRetainedExpired forgets an expired retained message.
func (h *Hook) OnRetainedExpired(topic string) { h.st.set(retainedKey(topic), nil, true) }

// OnQosPublish saves a QoS 1/2 message queued or in flight for a client.
// mochi also calls it for its own PUBACK of a QoS 1 publish, which it
// deletes again microseconds later and which is worth nothing after a
// restart: that one is not written.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if pk.FixedHeader.Type == packets.Puback {
		return
	}
	m := message(pk)
	m.ID, m.T, m.Client, m.Sent = inflightKey(cl.ID, pk.PacketID), storage.InflightKey, cl.ID, sent
	// The whole log record is built here, outside the store's lock.
	rec := startPut(m.ID, messageSizeHint(&m))
	at := len(rec)
	rec = appendMessage(rec, &m)
	sealRecord(rec)
	h.st.putTracked(inflightRef{cl.ID, pk.PacketID}, m.ID, rec, rec[at:])
}

// OnQosComplete forgets a message whose QoS flow is complete. The delete
// does not wait for its own write(2) (deleteTrackedSoon): if the broker is killed
// before it reaches the log, the message is sent once more after the
// restart, which QoS 1 allows; nothing the client was told is lost.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.st.deleteTrackedSoon(inflightRef{cl.ID, pk.PacketID})
}

// OnQosDropped forgets a message mochi gave up on.
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

// OnSysInfoTick saves the broker's counters.
func (h *Hook) OnSysInfoTick(sys *system.Info) {
	h.put(storage.SysInfoKey, &storage.SystemInfo{ID: storage.SysInfoKey, T: storage.SysInfoKey, Info: *sys.Clone()})
}

// message is pk as a stored record (a value: it lives on the stack).
func message(pk packets.Packet) storage.Message {
	p := pk.Properties.Copy(false)
	return storage.Message{
		Origin:      pk.Origin,
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		Created:     pk.Created,
		Properties: storage.MessageProperties{
			PayloadFormat:          p.PayloadFormat,
			MessageExpiryInterval:  p.MessageExpiryInterval,
			ContentType:            p.ContentType,
			ResponseTopic:          p.ResponseTopic,
			CorrelationData:        p.CorrelationData,
			SubscriptionIdentifier: p.SubscriptionIdentifier,
			TopicAlias:             p.TopicAlias,
			User:                   p.User,
		},
	}
}

// StoredClients loads the saved sessions.
func (h *Hook) StoredClients() ([]storage.Client, error) {
	return loadAll[storage.Client](h, storage.ClientKey+"_")
}

// StoredSubscriptions loads the saved subscriptions.
func (h *Hook) StoredSubscriptions() ([]storage.Subscription, error) {
	return loadAll[storage.Subscription](h, storage.SubscriptionKey+"_")
}

// loadAll decodes every stored record under prefix; one that does not
// decode is skipped (and logged), not fatal.
func loadAll[T any, P interface {
	*T
	UnmarshalBinary([]byte) error
}](h *Hook, prefix string) ([]T, error) {
	var out []T
	err := h.st.scan(prefix, func(k string, v []byte) error {
		var x T
		if err := P(&x).UnmarshalBinary(v); err != nil {
			h.skipBad(k, err)
			return nil
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// StoredRetainedMessages loads the retained messages.
func (h *Hook) StoredRetainedMessages() ([]storage.Message, error) {
	return h.messages(storage.RetainedKey + "_")
}

// StoredInflightMessages loads the queued messages with their packet ids.
func (h *Hook) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := h.messages(storage.InflightKey + "_")
	for i := range msgs {
		if id, ok := packetIDFromKey(msgs[i].ID); ok {
			msgs[i].PacketID = id
		}
	}
	return msgs, err
}

func (h *Hook) messages(prefix string) ([]storage.Message, error) {
	var out []storage.Message
	err := h.st.scan(prefix, func(k string, v []byte) error {
		m, err := decodeMessage(v)
		if err != nil {
			h.skipBad(k, err)
			return nil
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// StoredSysInfo loads the saved counters.
func (h *Hook) StoredSysInfo() (storage.SystemInfo, error) {
	var si storage.SystemInfo
	err := h.st.scan(storage.SysInfoKey, func(k string, v []byte) error {
		if k != storage.SysInfoKey {
			return nil
		}
		return si.UnmarshalBinary(v)
	})
	return si, err
}

// skipBad logs an unreadable record, which is left out rather than keeping
// the broker from starting.
func (h *Hook) skipBad(key string, err error) {
	h.Log.Warn("store: unreadable record left out", "key", key, "error", err)
}

// packetIDFromKey reads the id after the last ':' of an inflight key.
func packetIDFromKey(key string) (uint16, bool) {
	_, id, ok := splitInflightKey(key)
	return id, ok
}

// splitInflightKey reads "IFM_<client>:<packet id>".
func splitInflightKey(key string) (client string, id uint16, ok bool) {
	i := strings.LastIndexByte(key, ':')
	if i < 0 || !strings.HasPrefix(key, storage.InflightKey+"_") {
		return "", 0, false
	}
	n, err := strconv.ParseUint(key[i+1:], 10, 16)
	if err != nil {
		return "", 0, false
	}
	return key[len(storage.InflightKey)+1 : i], uint16(n), true
}
