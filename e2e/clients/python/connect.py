"""Connects, prints the CONNACK (code, session present, properties) and
leaves with a DISCONNECT."""

import mqttc

s = mqttc.Session(mqttc.options())
if s.connect():
    s.disconnect()
