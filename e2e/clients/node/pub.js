// Connects and publishes "messages" in order, each waited on (QoS 0:
// written; 1: PUBACK; 2: PUBCOMP) and printed as "published"; stops when
// the broker ends the connection.
'use strict'
const s = require('./session')

async function main () {
  const o = s.options()
  const c = await s.start(o)
  for (const m of (c ? o.messages || [] : [])) {
    if (c.closed) break
    const opts = { qos: m.qos || 0, retain: !!m.retain }
    if (m.alias) opts.properties = { topicAlias: m.alias }
    const err = await new Promise((resolve) => c.publish(m.topic, s.payload(m), opts, resolve))
    if (err) {
      process.stderr.write(`publish ${m.topic}: ${err.message}\n`)
      break
    }
    s.emit('published', { topic: m.topic })
  }
  s.end(c)
}
main()
