// Connects, subscribes to "topics" at "qos", prints the SUBACK and each
// message, and leaves after "count" messages (0: right after the SUBACK).
'use strict'
const s = require('./session')

async function main () {
  const o = s.options()
  const want = o.count || 0
  let got = 0
  let subscribed = !(o.topics && o.topics.length)
  let c = null
  const check = () => { if (c && subscribed && got >= want) s.end(c) }
  // Counted from the start: a persistent session's queued messages may
  // come before the SUBACK, even in the CONNACK's read.
  c = await s.start(o, () => { got++; check() })
  if (!c) return s.end(null)
  c.on('close', () => process.exit(0))
  if (subscribed) return check() // no topics
  c.subscribe(o.topics, { qos: o.qos || 0 }, () => { subscribed = true; check() })
}
main()
