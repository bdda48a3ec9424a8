// Package fastpath is how a publish reaches its subscribers without loss:
// plain QoS 0 messages are delivered by us, encoded once and written once per
// read burst of the publisher, and a publisher waits for a subscriber that
// is behind instead of mochi dropping its messages.
//
// Both halves answer one question per publish, in one place (Hook.OnPublish,
// from one cache of routes: a topic's subscribers with what each needs):
// does this publish go our way or mochi's, and must the publisher wait?
//
// Our way. mochi v2.7.9 spends most of a QoS 0 message's cost per
// subscriber: it looks the subscribers up under a lock every publisher
// fights over, copies the packet for each, hands it to the subscriber's
// writer goroutine over a channel, encodes it into a fresh buffer and makes
// one write() per message. The hook, last in the chain, appends the encoded
// frame to each subscriber Conn's pending bytes and returns
// packets.CodeSuccessIgnore: mochi still acknowledges and calls OnPublished,
// but neither retains nor delivers it. The publisher's Conn flushes those
// subscribers when mochi next reads from it, which bufio does only when the
// publisher's read burst is used up. A subscriber's pending bytes past
// HighWater make the publisher wait until it drains.
//
// Mochi's way, for anything the fast path would not send exactly as mochi
// does: QoS 1/2, retained, MQTT 5 properties that mochi forwards, shared or
// inline (bridge) subscribers, subscription identifiers, subscribers whose
// connection is not a Conn, and subscribers for whom mochi still holds
// queued messages (the fast path would overtake them). mochi hands each
// message to the subscriber's outbound queue (MaximumClientWritesPending
// packets) and drops it when the queue is full, QoS 0 and QoS 1/2 alike. In
// fan-in (many sensors, one Home Assistant) the one writer of the subscriber
// falls behind the many publishers' readers. mochi does not expose a queue's
// length, so the hook counts per subscriber connection: a message routed to
// it adds one, a PUBLISH written to it (OnPacketSent) or dropped
// (OnPublishDropped) takes one off; past High the publisher's reader waits
// until the count is below Low, and TCP pushes back on the publisher.
//
// Either way, a subscriber that writes nothing for StallAfter while a
// publisher waits is judged stuck: nobody waits for it until it writes
// again, so one dead subscriber cannot stall the others, and its messages
// are dropped meanwhile. The broker's own publishes (bridges, $SYS) never
// wait.
//
// Upstream, the drops are mochi's choice (mochi-mqtt/server #150; PR #160
// open): TestMochiStillDropsQoS0WhenAQueueIsFull fails once mochi pushes
// back on publishers, and the counting of mochi's way can then go.
package fastpath
