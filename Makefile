# The two commands a newcomer needs: `make run` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS  := -s -w -X github.com/homebox/gateway/internal/version.Version=$(VERSION) -X github.com/homebox/gateway/internal/version.Commit=$(COMMIT)
DEVROOT  ?= ./var/dev

.PHONY: build run test test-deps bench soak fuzz image clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/gatewayd ./cmd/gatewayd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/gwctl ./cmd/gwctl

# The whole box in ./var/dev: broker on 1883, console on 127.0.0.1:8080, mDNS off.
run: build
	./bin/gatewayd run --root $(DEVROOT) --dev

test-deps:
	bash scripts/test-deps.sh

# Every test. Installs what the tests need first (as root), fails clearly
# otherwise. go.mod must be tidy and staticcheck clean before a test runs.
test: test-deps
	$(GO) mod tidy -diff
	$(GO) vet ./...
	"$$(bash scripts/go-tools.sh)/staticcheck" ./...
	$(GO) test -race -timeout 18m ./...

# The broker against Debian's mosquitto side by side (ratios), then the
# supervisor's, the box's (crash to accepting; idle memory of the whole box,
# issue 8), the bridges' and discovery's Go benchmarks.
bench: build test-deps
	$(GO) run ./cmd/gwbench -gatewayd bin/gatewayd
	$(GO) test -run '^$$' -bench . -benchtime 20x ./supervisor
	$(GO) test -run '^$$' -bench CrashToAccepting -benchtime 20x ./e2e
	$(GO) test -run '^$$' -bench BoxIdleMemory -benchtime 3x ./e2e
	$(GO) test -run '^$$' -bench . ./gateway/bridge ./discovery
	$(GO) test -run '^$$' -bench Attack -benchtime 1x ./e2e/security
	$(GO) test -run '^$$' -bench Tree10k -benchtime 200000x ./webui/topics
	$(GO) test -run '^$$' -bench ExplorerPage -benchtime 1x ./webui/browsertest

soak: build test-deps
	$(GO) run ./cmd/gwbench -gatewayd bin/gatewayd -soak

# Bootable disk images (arm64, amd64) and rootfs tarballs/squashfs (arm64,
# armv7, amd64) in dist/; the Debian packages the disks are made of are
# fetched once into ~/.cache/gateway-image (scripts/image-deps.sh).
# Reproducible: SOURCE_DATE_EPOCH defaults to the last commit's time.
image:
	$(GO) run ./cmd/mkimage -out dist -version $(VERSION) -commit $(COMMIT)

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./gateway/mosquittoconf

clean:
	rm -rf bin dist var
