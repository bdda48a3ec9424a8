// What connect.js, pub.js and sub.js share: the options (one JSON argument,
// see internal/testclients.Options), an mqtt.js client made from them, and
// what happens printed as JSON lines on stdout (internal/testclients.Event).
// Problems go to stderr with a non-zero exit.
'use strict'
const mqtt = require('mqtt')

function emit (event, fields) {
  process.stdout.write(JSON.stringify({ ...fields, event }) + '\n')
}

function fail (msg) {
  process.stderr.write(msg + '\n', () => process.exit(1))
}

// mqtt.js names properties in camelCase; the events use the names of the
// MQTT 5 spec without spaces (as paho does): receiveMaximum -> ReceiveMaximum.
function props (p) {
  const out = {}
  for (const [k, v] of Object.entries(p || {})) {
    out[k.charAt(0).toUpperCase() + k.slice(1)] = v
  }
  return out
}

// "size" makes a payload of that many bytes without a long argv.
function payload (m) {
  return m.size ? Buffer.alloc(m.size, 'x') : (m.payload || '')
}

function options () {
  if (process.argv.length !== 3) fail(`usage: ${process.argv[1]} '<options as JSON>'`)
  return JSON.parse(process.argv[2])
}

// start connects and resolves with the client once the CONNACK came, or
// null when the broker refused (the connack event says how). onMessage is
// called after each message is printed: set before connecting, as a
// persistent session's queued messages can come in the CONNACK's read. The
// script fails at its deadline, whatever it is waiting for.
function start (o, onMessage) {
  const deadline = (o.deadline || 10) * 1000
  setTimeout(() => fail(`deadline of ${deadline / 1000}s passed`), deadline).unref()
  const v5 = o.version === 5
  const opts = {
    host: o.host || '127.0.0.1',
    port: Number(o.port),
    protocolVersion: v5 ? 5 : 4,
    clientId: o.id || '',
    clean: !o.persistent,
    keepalive: o.keepalive === undefined ? 30 : o.keepalive,
    reconnectPeriod: 0, // one connection: the tests judge each one
    connectTimeout: deadline
  }
  if (o.username !== undefined && o.username !== null) {
    opts.username = o.username
    opts.password = o.password
  }
  if (v5 && o.session_expiry !== undefined && o.session_expiry !== null) {
    opts.properties = { sessionExpiryInterval: o.session_expiry }
  }
  if (o.will) {
    opts.will = { topic: o.will.topic, payload: payload(o.will), qos: o.will.qos || 0, retain: !!o.will.retain }
  }
  const c = mqtt.connect(opts)
  c.closed = false
  let connacked = false
  c.on('packetreceive', (p) => {
    if (p.cmd === 'connack') {
      const code = p.reasonCode !== undefined ? p.reasonCode : p.returnCode
      emit('connack', { code, session_present: !!p.sessionPresent, props: props(p.properties) })
    } else if (p.cmd === 'suback') {
      emit('suback', { granted: p.granted.map((g) => (typeof g === 'object' ? g.qos : g)) })
    } else if (p.cmd === 'disconnect') {
      emit('disconnect', { code: p.reasonCode || 0, props: props(p.properties) })
    }
  })
  c.on('message', (topic, body, p) => {
    emit('message', { topic, payload: body.toString(), qos: p.qos, retain: !!p.retain, props: props(p.properties) })
    if (onMessage) onMessage()
  })
  return new Promise((resolve) => {
    c.on('connect', () => { connacked = true; resolve(c) })
    c.on('close', () => {
      if (!c.closed && !c.leaving) emit('closed', {}) // the broker ended it
      c.closed = true
      resolve(null)
    })
    c.on('error', (err) => {
      // No CONNACK at all is a fault of the run. A refusal is an event
      // (connack) already, and a connection the broker ends is one too
      // (closed): the tests judge those.
      if (!connacked && err.code && typeof err.code === 'string') fail(`connect: ${err.message}`)
      else process.stderr.write(`mqtt.js: ${err.message}\n`)
    })
  })
}

// end leaves with a DISCONNECT and exits.
function end (c) {
  if (!c || c.closed) process.exit(0)
  c.leaving = true
  c.end(false, {}, () => process.exit(0))
}

module.exports = { emit, fail, payload, options, start, end }
