// Package connwrap finds a connection of a given kind under the wrappers
// the broker stacks on an accepted socket (framing, answers, fast path,
// bridge detection), each of which gives the one beneath with Unwrap.
package connwrap

import "net"

// Find walks down from c through Unwrap and returns the first connection
// that is a T. It does not look beneath TLS: below it the bytes differ.
func Find[T any](c net.Conn) (T, bool) {
	for range 16 { // a bound: wrappers are a handful deep
		if t, ok := c.(T); ok {
			return t, true
		}
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	var zero T
	return zero, false
}
