"""Connects, subscribes to "topics" at "qos", prints the SUBACK and each
message, and leaves after "count" messages (0: right after the SUBACK)."""

import mqttc

o = mqttc.options()
s = mqttc.Session(o)
if s.connect():
    want = o.get("count", 0)
    if o.get("topics"):
        s.subscribe(o["topics"], o.get("qos", 0))
    s.until(lambda: s.messages >= want)
    s.disconnect()
