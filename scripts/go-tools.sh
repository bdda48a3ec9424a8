#!/usr/bin/env bash
# Installs the Go tools `make test` runs (from the Go module proxy, pinned),
# when missing, into $(go env GOPATH)/bin, and prints that folder so the
# Makefile can find them without relying on PATH.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2, built with this Go

bin="$(go env GOPATH)/bin"
if ! "$bin/staticcheck" -version 2>/dev/null | grep -q "(${STATICCHECK_VERSION#v})"; then
  echo "go-tools: installing staticcheck ${STATICCHECK_VERSION}" >&2
  if ! go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"; then
    echo "go-tools: could not install staticcheck ${STATICCHECK_VERSION} from the Go module proxy" >&2
    exit 1
  fi
fi
echo "$bin"
