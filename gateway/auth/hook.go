package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Security is one set of Mosquitto security options: the global ones, or a
// listener's when per_listener_settings is true. The broker maps its parsed
// mosquitto.conf into it.
type Security struct {
	AllowAnonymous bool
	PasswordFile   string // "" for none
	ACLFile        string // "" for none: everything allowed but the "$" rules
}

// judge is a Security with its files loaded.
type judge struct {
	sec Security
	pw  *Passwords
	acl *ACL
}

type state struct {
	def *judge
	per map[string]*judge
}

func (s *state) judgeFor(listener string) *judge {
	if j, ok := s.per[listener]; ok {
		return j
	}
	return s.def
}

// Hook is the mochi hook that authenticates CONNECTs and judges publishes,
// deliveries and subscriptions by Security.
//
// mochi asks every hook that provides OnConnectAuthenticate or OnACLCheck
// and lets the client through if any one says yes, so the broker must not
// also add an allow-all or ledger auth hook. A will is checked at CONNECT
// (mochi never checks it): a client whose will topic it may not write is
// let in and its will dropped, so it is never published; Mosquitto 2.0
// likewise accepts it and drops the will when it would be sent. mochi already turns a refused
// filter into SUBACK 0x87 (v5) / 0x80 (v3) when OnACLCheck says no; it asks
// OnACLCheck with write=false both for a SUBSCRIBE filter and for each
// delivery, and the hook tells them apart by shape (wildcards or $share/ make
// a filter).
//
// mochi's inline client (the gateway's own publishers and subscribers) is
// always allowed.
type Hook struct {
	mqtt.HookBase

	def    Security
	per    map[string]Security
	log    *slog.Logger
	mu     sync.Mutex // one Reload at a time
	state  atomic.Pointer[state]
	server atomic.Pointer[mqtt.Server]
	box    BoxAccounts // set before the broker starts (SetBoxAccounts)
	// certNamed are the listeners whose clients are named by their
	// certificates (SetCertListeners).
	certNamed map[string]bool
}

// SetBoxAccounts lets the box's own accounts in (see ServiceUser); call it
// before the broker starts.
func (h *Hook) SetBoxAccounts(b BoxAccounts) { h.box = b }

// SetCertListeners names the listeners whose clients are named by their
// TLS certificates (use_identity_as_username, gateway/certuser): they
// logged in with no password, so a changed password file never
// disconnects them. Call it before the broker starts.
func (h *Hook) SetCertListeners(ids map[string]bool) { h.certNamed = ids }

// NewHook loads the files of def and of every listener in perListener
// (keyed by mochi listener ID; a listener not in the map uses def). It fails,
// naming file and line, if any file does not load.
func NewHook(def Security, perListener map[string]Security, log *slog.Logger) (*Hook, error) {
	if log == nil {
		log = slog.Default()
	}
	h := &Hook{def: def, per: maps.Clone(perListener), log: log}
	st, err := h.load()
	if err != nil {
		return nil, err
	}
	h.state.Store(st)
	return h, nil
}

// load reads every file once (two listeners may share one) into a new state.
func (h *Hook) load() (*state, error) {
	pws := map[string]*Passwords{}
	acls := map[string]*ACL{}
	var errs []error
	mk := func(sec Security) *judge {
		j := &judge{sec: sec}
		if f := sec.PasswordFile; f != "" {
			if p, seen := pws[f]; seen {
				j.pw = p
			} else {
				p, err := LoadPasswordFile(f)
				if err != nil {
					errs = append(errs, err)
				}
				pws[f], j.pw = p, p
			}
		}
		if f := sec.ACLFile; f != "" {
			if a, seen := acls[f]; seen {
				j.acl = a
			} else {
				a, err := LoadACLFile(f)
				if err != nil {
					errs = append(errs, err)
				}
				acls[f], j.acl = a, a
			}
		}
		return j
	}
	st := &state{def: mk(h.def), per: map[string]*judge{}}
	for _, id := range slices.Sorted(maps.Keys(h.per)) {
		st.per[id] = mk(h.per[id])
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return st, nil
}

// ID names the hook for mochi.
func (h *Hook) ID() string { return "gateway-auth" }

// Provides tells mochi which events the hook handles.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish
}

// Init is called by mochi's AddHook. Pass the server as config
// (server.AddHook(h, server)) so Reload can disconnect clients whose
// password was changed or removed; nil is accepted.
func (h *Hook) Init(config any) error {
	switch c := config.(type) {
	case nil:
	case *mqtt.Server:
		h.server.Store(c)
	default:
		return fmt.Errorf("auth hook: config is %T, want *mqtt.Server or nil", config)
	}
	return nil
}

// OnConnectAuthenticate decides a CONNECT as Mosquitto 2 does: without a
// user name only if allow_anonymous; with one, by the password file if there
// is one, else only if allow_anonymous (so allow_anonymous false without a
// password file refuses everyone). A will on a topic the ACL does not let the
// client write is dropped (dropDeniedWill). An empty user name counts as none.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.Net.Inline {
		return true
	}
	j := h.state.Load().judgeFor(cl.Net.Listener)
	user := string(pk.Connect.Username)
	refuse := func(reason string) bool {
		h.log.Info("client refused", "client", cl.ID, "user", user, "listener", cl.Net.Listener,
			"remote", cl.Net.Remote, "reason", reason)
		return false
	}
	if pk.Properties.AuthenticationMethod != "" {
		return refuse("extended authentication is not supported")
	}
	// The box's own accounts get in with their secret whatever the conf
	// says; a wrong secret is judged as any login below (an owner's
	// password_file may hold a user of the same name).
	if _, ok := h.box.verify(user, string(pk.Connect.Password)); ok && pk.Connect.PasswordFlag {
		if pk.Connect.WillFlag && !boxAllowed(pk.Connect.WillTopic, Write) {
			DropWill(h.log, cl, "will topic not allowed")
		}
		return true
	}
	switch {
	case user == "":
		if !j.sec.AllowAnonymous {
			return refuse("anonymous clients not allowed")
		}
	case j.pw != nil:
		if !pk.Connect.PasswordFlag || !j.pw.Verify(user, string(pk.Connect.Password)) {
			return refuse("bad user name or password")
		}
	case !j.sec.AllowAnonymous:
		return refuse("no password_file and allow_anonymous false")
	}
	if pk.Connect.WillFlag && !j.acl.Allowed(user, cl.ID, pk.Connect.WillTopic, Write) {
		DropWill(h.log, cl, "will topic not allowed by acl_file")
	}
	return true
}

// DropWill forgets the will of a client being let in, as Mosquitto 2.0
// does with a will its ACL denies: the client connects as usual (CONNACK 0)
// and the will is never published. mochi has parsed the will into
// cl.Properties.Will before the connect hooks run and publishes it from
// there, with no hook able to cancel it later (OnWill can only change it).
// The ACL is judged at CONNECT, Mosquitto judges it when the will would be
// sent: they differ only if the acl_file is reloaded in between.
func DropWill(log *slog.Logger, cl *mqtt.Client, reason string) {
	log.Info("will dropped", "client", cl.ID, "listener", cl.Net.Listener, "topic", cl.Properties.Will.TopicName,
		"reason", reason)
	cl.Properties.Will = mqtt.Will{}
}

// OnACLCheck judges a publish (write), a delivery (a topic name, read) or a
// subscription (a filter, read).
//
// Publishes are judged here only for MQTT 5 clients with a topic name, so
// that mochi answers a refused QoS 1/2 publish with reason 0x87. Others pass
// to OnPublish: mochi would disconnect a 3.1.1 client whose QoS 1/2 publish
// is refused, where Mosquitto acknowledges it and drops the message; and a
// publish naming only a topic alias reaches this check with an empty topic,
// the real one being known only in OnPublish.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	access := Read
	switch {
	case write:
		if cl.Properties.ProtocolVersion < 5 || topic == "" {
			return true
		}
		access = Write
	case isFilter(topic):
		access = Subscribe
	}
	return h.allowed(cl, topic, access)
}

// OnPublish drops (acknowledged as usual, delivered to no one, not retained)
// a publish the ACL refuses that OnACLCheck let through; see OnACLCheck.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	judged := cl.Properties.ProtocolVersion >= 5 && !pk.Properties.TopicAliasFlag
	if cl.Net.Inline || judged || h.allowed(cl, pk.TopicName, Write) {
		return pk, nil
	}
	return pk, packets.CodeSuccessIgnore
}

func (h *Hook) allowed(cl *mqtt.Client, topic string, access Access) bool {
	user := string(cl.Properties.Username)
	if _, isBox := h.box[user]; isBox {
		return boxAllowed(topic, access)
	}
	j := h.state.Load().judgeFor(cl.Net.Listener)
	ok := j.acl.Allowed(user, cl.ID, topic, access)
	if !ok && access != Read {
		h.log.Debug("acl refused", "client", cl.ID, "user", user, "topic", topic, "access", access.String())
	}
	return ok
}

// Reload re-reads every password and ACL file (on SIGHUP). If any file fails
// to load, the previous files stay in force and the error, naming file and
// line, is returned. On success, connected clients whose user was removed
// from their password file or whose hash changed are disconnected, as
// Mosquitto does, so a removed user cannot stay on; ACL changes apply to the
// next publish, delivery and subscription of every client.
func (h *Hook) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.load()
	if err != nil {
		h.log.Error("auth reload failed, keeping the previous password and ACL files", "error", err)
		return fmt.Errorf("auth reload: %w", err)
	}
	old := h.state.Swap(st)
	h.log.Info("auth files reloaded")
	if s := h.server.Load(); s != nil {
		h.kickStale(s, old, st)
	}
	return nil
}

// kickStale disconnects clients whose credentials the new files no longer
// hold exactly as they did.
func (h *Hook) kickStale(s *mqtt.Server, old, cur *state) {
	for _, cl := range s.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() || h.certNamed[cl.Net.Listener] {
			continue
		}
		user := string(cl.Properties.Username)
		if _, isBox := h.box[user]; user == "" || isBox {
			continue
		}
		oj, nj := old.judgeFor(cl.Net.Listener), cur.judgeFor(cl.Net.Listener)
		if nj.pw == nil {
			continue
		}
		was, _ := oj.pw.hashOf(user)
		now, ok := nj.pw.hashOf(user)
		if ok && was == now {
			continue
		}
		h.log.Info("disconnecting client: its password changed or was removed", "client", cl.ID, "user", user)
		if cl.Properties.ProtocolVersion >= 5 {
			_ = s.DisconnectClient(cl, packets.ErrNotAuthorized)
		} else {
			cl.Stop(packets.ErrNotAuthorized)
		}
	}
}

// MayWrite reports whether the ACL lets cl, under the username and id it
// has now, publish on topic: the will check of clients named by their
// certificate (gateway/certuser), whose username is not the CONNECT's.
func (h *Hook) MayWrite(cl *mqtt.Client, topic string) bool {
	return cl.Net.Inline || h.allowed(cl, topic, Write)
}
