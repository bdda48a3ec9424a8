"""Connects and publishes "messages" in order, each waited on (QoS 0:
written; 1: PUBACK; 2: PUBCOMP) and printed as "published"; stops when the
broker ends the connection."""

import mqttc

o = mqttc.options()
s = mqttc.Session(o)
if s.connect():
    for m in o.get("messages", []):
        s.publish(m)
        if s.closed:
            break
    s.disconnect()
