// Package security tests what the box defends against on a real home
// network (issue 14, docs/SECURITY.md): a real `gatewayd broker`, built
// from this tree, runs inside a network namespace the test makes, with the
// shipped conf (anonymous clients on 1883 and websockets on 9001), and is
// attacked from other namespaces:
//
//	box     192.0.2.1/24, 2001:db8:1::1/64 on the LAN (default route via the router)
//	lan     192.0.2.10/24, 2001:db8:1::10/64: a host on the same LAN
//	router  192.0.2.254 / 2001:db8:1::fe on the LAN, 198.51.100.254 / 2001:db8:2::fe outside
//	out     198.51.100.10/24, 2001:db8:2::10/64: a host on another network, routed in
//
// joined by a bridge in a fifth namespace. Only documentation ranges are
// used, and no namespace touches the machine's interfaces.
//
// What is defended and tested here: a LAN host is served while a host
// outside the box's attached subnets is refused before a byte is read
// (IPv4, IPv6, IPv4-mapped; forwarded headers change nothing), a web page's
// websocket from a foreign Origin is refused, PUBLISH headers claiming
// 256 MiB neither grow the broker nor restart it, and connections that
// never send CONNECT are closed at the deadline while clients still connect.
//
// The namespaces need root: without it the tests are skipped with a
// message, or fail when CI is set. GW_SECURITY_GATEWAYD names another
// gatewayd to attack (an older build, to see the findings fail), and
// GW_SECURITY_ALLOW_NETWORKS replaces "lan" (an older build's "lan" refuses
// this LAN: give it "lan,192.0.2.0/24,2001:db8:1::/64" to see the others).
package security
