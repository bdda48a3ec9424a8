package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/homebox/gateway/rootfs/growdata"
)

// growDataMain is `gatewayd grow-data DIR`, run by the disk image's rcS
// at every boot: the data partition mounted at DIR takes the rest of the
// disk (package growdata). In gatewayd rather than a tool of its own
// because the image has no other Go binary to put it in.
func growDataMain(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, "usage: gatewayd grow-data DIR\n")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := growdata.Grow(args[0], "data", log); err != nil {
		fmt.Fprintf(stderr, "gatewayd grow-data: %v\n", err)
		return 1
	}
	return 0
}
