"""What connect.py, pub.py and sub.py share: the options (one JSON argument,
see internal/testclients.Options), a client of Debian's python3-paho-mqtt
made from them, and what happens printed as JSON lines on stdout
(internal/testclients.Event). Problems go to stderr with a non-zero exit."""

import json
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes


def emit(event, **fields):
    fields["event"] = event
    print(json.dumps(fields), flush=True)


def fail(msg):
    print(msg, file=sys.stderr, flush=True)
    sys.exit(1)


def props(p):
    return p.json() if p is not None else {}


def code(rc):
    return rc.value if isinstance(rc, ReasonCodes) else int(rc)


def payload(m):
    # "size" makes a payload of that many bytes without a long argv.
    if m.get("size"):
        return b"x" * m["size"]
    return m.get("payload", "").encode()


class Client(mqtt.Client):
    """paho's client, telling every CONNACK of MQTT 3.1.1 as it comes: on
    "identifier rejected" for an empty id paho connects again with an id of
    its own, and on_connect hears only of the second answer. A device with
    this library goes through both; the tests judge the first."""

    def _handle_connack(self):
        if self._protocol != mqtt.MQTTv5 and len(self._in_packet["packet"]) == 2:
            flags, result = self._in_packet["packet"][0], self._in_packet["packet"][1]
            emit("connack", code=result, session_present=bool(flags & 1), props={})
        return super()._handle_connack()


class Session:
    """One connection and the events seen on it, for the scripts' steps."""

    def __init__(self, opts):
        self.opts = opts
        self.v5 = opts.get("version", 4) == 5
        self.deadline = time.monotonic() + opts.get("deadline", 10)
        self.connack = None
        self.closed = False
        self.leaving = False
        self.subacks = []
        self.published = set()
        self.messages = 0
        clean = not opts.get("persistent", False)
        c = Client(client_id=opts.get("id", ""),
                        clean_session=None if self.v5 else clean,
                        protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311)
        if opts.get("username") is not None:
            c.username_pw_set(opts["username"], opts.get("password"))
        w = opts.get("will")
        if w:
            c.will_set(w["topic"], payload(w), w.get("qos", 0), w.get("retain", False))
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        self.c = c
        self.clean = clean

    def _on_connect(self, c, userdata, flags, rc, properties=None):
        self.connack = code(rc)
        if not self.v5:
            return  # told by Client
        emit("connack", code=self.connack, session_present=bool(flags.get("session present")),
             props=props(properties))

    def _on_disconnect(self, c, userdata, rc, properties=None):
        if isinstance(rc, ReasonCodes):  # the server sent DISCONNECT
            emit("disconnect", code=rc.value, props=props(properties))
        self.closed = True
        if not self.leaving:  # the broker ended it
            emit("closed")

    def _on_subscribe(self, c, userdata, mid, granted, properties=None):
        self.subacks.append(mid)
        emit("suback", granted=[code(g) for g in granted])

    def _on_publish(self, c, userdata, mid):
        self.published.add(mid)

    def _on_message(self, c, userdata, msg):
        self.messages += 1
        emit("message", topic=msg.topic, payload=msg.payload.decode(errors="replace"),
             qos=msg.qos, retain=bool(msg.retain), props=props(getattr(msg, "properties", None)))

    def until(self, cond):
        """Runs the network loop until cond() or the connection ends;
        returns cond(). Past the deadline the script fails."""
        while not cond() and not self.closed:
            if time.monotonic() > self.deadline:
                fail("deadline of %ss passed" % self.opts.get("deadline", 10))
            self.c.loop(0.05)
        return cond()

    def connect(self):
        """Connects; returns whether the broker accepted."""
        kw = {}
        if self.v5:
            kw["clean_start"] = self.clean
            p = Properties(PacketTypes.CONNECT)
            if self.opts.get("session_expiry") is not None:
                p.SessionExpiryInterval = self.opts["session_expiry"]
                kw["properties"] = p
        try:
            self.c.connect(self.opts.get("host", "127.0.0.1"), int(self.opts["port"]),
                           self.opts.get("keepalive", 30), **kw)
        except OSError as e:
            fail("connect: %s" % e)
        self.until(lambda: self.connack is not None)
        return self.connack == 0

    def publish(self, m):
        p = None
        if m.get("alias"):
            p = Properties(PacketTypes.PUBLISH)
            p.TopicAlias = m["alias"]
        info = self.c.publish(m["topic"], payload(m), m.get("qos", 0), m.get("retain", False), properties=p)
        if self.until(lambda: info.mid in self.published):
            emit("published", topic=m["topic"])

    def subscribe(self, topics, qos):
        mid = self.c.subscribe([(t, qos) for t in topics])[1]
        self.until(lambda: mid in self.subacks)

    def disconnect(self):
        if not self.closed:
            self.leaving = True
            self.c.disconnect()
            self.until(lambda: False)


def options():
    if len(sys.argv) != 2:
        fail("usage: %s '<options as JSON>'" % sys.argv[0])
    return json.loads(sys.argv[1])
