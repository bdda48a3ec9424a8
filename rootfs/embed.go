// Package rootfs holds the overlay that becomes / on the box: the shipped
// defaults that `gatewayd init` and the first `gatewayd run` write under the
// root when they are missing.
package rootfs

import "embed"

// FS is the overlay, rooted so that "etc/gateway/gateway.yaml" is a path in it.
//
//go:embed all:etc
var FS embed.FS
