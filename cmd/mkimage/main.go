// Command mkimage is `make image`: it builds the flashable disk images and
// the rootfs images (package rootfs/image) into dist/. Version, commit and build time default to
// what git says about the checkout, so that two runs on the same commit
// give the same bytes; SOURCE_DATE_EPOCH overrides the time.
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/homebox/gateway/rootfs/image"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "dist", "output folder")
	module := fs.String("module", ".", "the module's root folder")
	version := fs.String("version", "", "version in file names and binaries (default: git describe --tags --always --dirty)")
	commit := fs.String("commit", "", "commit stamped into the binaries (default: git rev-parse --short HEAD)")
	archList := fs.String("arch", "", "comma-separated architectures (default: all of "+archNames()+")")
	disks := fs.String("disk", "arm64,amd64", "comma-separated architectures that also get a bootable disk image (of "+strings.Join(image.DiskArches(), ", ")+`; "" for none)`)
	debs := fs.String("debs", "", "folder with a folder of Debian packages per architecture (default: "+image.DepsScript+" fetches them into its cache)")
	keyPath := fs.String("key", "", "the release key (ed25519, PEM) that signs update bundles (default: the development key pair, made once in $GATEWAY_KEYS or the user's cache)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mkimage: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var arches []image.Arch
	if *archList != "" {
		for _, n := range strings.Split(*archList, ",") {
			a, err := image.LookupArch(strings.TrimSpace(n))
			if err != nil {
				fmt.Fprintf(stderr, "mkimage: -arch: %v\n", err)
				return 2
			}
			arches = append(arches, a)
		}
	}
	var diskList []string
	for _, n := range strings.Split(*disks, ",") {
		if n = strings.TrimSpace(n); n != "" && (len(arches) == 0 || slices.ContainsFunc(arches, func(a image.Arch) bool { return a.Name == n })) {
			diskList = append(diskList, n)
		}
	}
	var err error
	if *version == "" {
		if *version, err = git(*module, "describe", "--tags", "--always", "--dirty"); err != nil {
			fmt.Fprintf(stderr, "mkimage: no -version and %v\n", err)
			return 1
		}
	}
	if *commit == "" {
		if *commit, err = git(*module, "rev-parse", "--short", "HEAD"); err != nil {
			fmt.Fprintf(stderr, "mkimage: no -commit and %v\n", err)
			return 1
		}
	}
	epoch, err := sourceDateEpoch(*module)
	if err != nil {
		fmt.Fprintf(stderr, "mkimage: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var key ed25519.PrivateKey
	if len(diskList) > 0 {
		if key, err = image.SigningKey(*keyPath); err != nil {
			fmt.Fprintf(stderr, "mkimage: signing key: %v\n", err)
			return 1
		}
	}
	res, err := image.Build(ctx, image.Options{
		ModuleDir: *module, OutDir: *out, Version: *version, Commit: *commit,
		Epoch: epoch, Arches: arches, Logger: log, Disks: diskList, DebsDir: *debs, SigningKey: key,
	})
	if err != nil {
		fmt.Fprintf(stderr, "mkimage: %v\n", err)
		return 1
	}
	for _, img := range res.Images {
		fmt.Fprintf(stdout, "%s\t%s\n%s\t%s\n%s\t%s\t(gatewayd %.1f MiB)\n",
			img.Arch.Name, img.Tarball, img.Arch.Name, img.Squashfs, img.Arch.Name, img.Manifest,
			float64(img.GatewaydSize)/(1<<20))
		if img.Disk != "" {
			fmt.Fprintf(stdout, "%s\t%s\n%s\t%s\n", img.Arch.Name, img.Disk, img.Arch.Name, img.Update)
		}
	}
	fmt.Fprintf(stdout, "sums\t%s\n", res.Sums)
	return 0
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH, else the last commit's time.
func sourceDateEpoch(module string) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	from := "SOURCE_DATE_EPOCH"
	if s == "" {
		var err error
		if s, err = git(module, "log", "-1", "--format=%ct"); err != nil {
			return time.Time{}, fmt.Errorf("no SOURCE_DATE_EPOCH and %w", err)
		}
		from = "the last commit's time"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: not a number of seconds since 1970", from, s)
	}
	return time.Unix(n, 0).UTC(), nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

func archNames() string {
	var n []string
	for _, a := range image.Arches {
		n = append(n, a.Name)
	}
	return strings.Join(n, ", ")
}
