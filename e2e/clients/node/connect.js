// Connects, prints the CONNACK (code, session present, properties) and
// leaves with a DISCONNECT.
'use strict'
const s = require('./session')

s.start(s.options()).then(s.end)
