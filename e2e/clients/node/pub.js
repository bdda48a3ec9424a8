// Connects and publishes "messages" in order, each waited on (QoS 0:
// written; 1: PUBACK; 2: PUBCOMP) and printed as "published"; stops when
// the broker ends the connection.
'use strict'
const s = require('./session')

async function main () {
  const o = s.options()
  const c = await s.start(o)
  // mqtt.js may never call back a QoS 1/2 publish whose connection ended.
  const closed = new Promise((resolve) => c && c.on('close', () => resolve('closed')))
  for (const m of (c ? o.messages || [] : [])) {
    if (c.closed) break
    const opts = { qos: m.qos || 0, retain: !!m.retain }
    if (m.alias) opts.properties = { topicAlias: m.alias }
    const err = await Promise.race([closed, new Promise((resolve) => c.publish(m.topic, s.payload(m), opts, resolve))])
    if (err === 'closed') break
    // An MQTT 5 PUBACK with a failure code (an ACL's "not authorized")
    // is an error to mqtt.js, and a result here.
    s.emit('published', err ? { topic: m.topic, error: err.message } : { topic: m.topic })
  }
  s.end(c)
}
main()
