# gosst — build, test, install and demo.
# Every target that needs system packages depends on `deps`, which installs
# them only when missing and never starts or changes the system MariaDB.

PREFIX  ?= /usr
DESTDIR ?=
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/gosst/gosst/internal/version.Version=$(VERSION)
# Whole-suite limit; CI has 90 minutes, we aim for well under 30.
TEST_TIMEOUT ?= 25m

# Debian packages the tests, the demo and the benchmarks use: the server
# stack, zstd/age (interop tests), time (peak RSS), rsync/socat (the stock
# SST methods test/bench/sst.sh compares against), xfsprogs (the reflink
# XFS test/bench/storage.sh gives its S3 server), lintian (test/pkgtest checks the .deb),
# sysbench (the write workload of test/bench/pitr.sh; no test needs it).
DEB_PACKAGES := mariadb-server galera-4 mariadb-backup mariadb-client zstd age time rsync socat xfsprogs lintian iproute2 sysbench

# Tools built from the Go module proxy into ./.tools (git-ignored), kept
# out of go.mod: the real S3-compatible server the storage tests run.
TOOLS_DIR   := $(CURDIR)/.tools
VERSITYGW   := $(TOOLS_DIR)/versitygw
VERSITYGW_VERSION := v1.8.0
# nfpm builds the .deb (make deb); a tool, not a module of gosst.
NFPM         := $(TOOLS_DIR)/nfpm
NFPM_VERSION := v2.48.0

# make deb: staging and output directory, Debian version and architecture.
DEB_DIR     ?= dist
DEB_VERSION ?= $(shell sh packaging/deb/version.sh)
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
# Set it to a real address for packages you publish (lintian refuses @localhost).
DEB_MAINTAINER ?= gosst developers <gosst@localhost>
# Timestamps in the package and its man pages: the last commit's time.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: all build test test-short install deps tools nfpm deb demo demo-schedule lint fuzz-smoke clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## deps: install missing Debian packages (idempotent; root or sudo needed
## only when something is missing). The system mariadb service is not
## started: a policy-rc.d guard is in place during the install.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null && $$SUDO chmod 755 /usr/sbin/policy-rc.d && guard=1; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; rc=$$?; \
	  [ -z "$$guard" ] || $$SUDO rm -f /usr/sbin/policy-rc.d; \
	  exit $$rc; \
	else echo "deps: all Debian packages present"; fi
	@command -v $(GO) >/dev/null || { echo "deps: Go 1.26 or newer is required (https://go.dev/doc/install)"; exit 1; }
	$(GO) mod download

## tools: versitygw (S3 test server) and nfpm (make deb), only when
## missing or another version.
tools: nfpm
	@if ! $(GO) version -m $(VERSITYGW) 2>/dev/null | grep -q "mod.*github.com/versity/versitygw.*$(VERSITYGW_VERSION)"; then \
	  echo "tools: building versitygw $(VERSITYGW_VERSION) into $(TOOLS_DIR)"; \
	  GOBIN=$(TOOLS_DIR) $(GO) install -trimpath -ldflags="-s -w" github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi

nfpm:
	@if ! $(GO) version -m $(NFPM) 2>/dev/null | grep -q "mod.*github.com/goreleaser/nfpm/v2.*$(NFPM_VERSION)"; then \
	  echo "tools: building nfpm $(NFPM_VERSION) into $(TOOLS_DIR)"; \
	  GOBIN=$(TOOLS_DIR) $(GO) install -trimpath -ldflags="-s -w" github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION); \
	fi

## deb: $(DEB_DIR)/gosst_VERSION_ARCH.deb with both binaries, the
## galera-backup-schedule systemd unit, /etc/gosst/galera-backup.cnf.example,
## man pages generated from the command tree, and the docs. Needs only the
## Go module proxy. test/pkgtest runs this target and checks the result.
deb: nfpm
	rm -rf $(DEB_DIR)/root && mkdir -p $(DEB_DIR)/root
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DEB_DIR)/root/bin/ ./cmd/galera-backup ./cmd/wsrep_sst_gosst
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./cmd/gen-man -out $(DEB_DIR)/root/man -version $(DEB_VERSION)
	printf 'gosst (%s) unstable; urgency=medium\n\n  * Built from git commit %s.\n\n -- %s  %s\n' \
	  '$(DEB_VERSION)' "$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" '$(DEB_MAINTAINER)' \
	  "$$(LC_ALL=C date -u -R -d @$(SOURCE_DATE_EPOCH))" | gzip -9n > $(DEB_DIR)/root/changelog.gz
	rm -f $(DEB_DIR)/gosst_*.deb
	DEB_ROOT=$(abspath $(DEB_DIR))/root DEB_VERSION='$(DEB_VERSION)' DEB_ARCH=$(DEB_ARCH) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
	  DEB_MAINTAINER='$(DEB_MAINTAINER)' \
	  $(NFPM) package --config packaging/deb/nfpm.yaml --packager deb --target $(DEB_DIR)/
	@ls -l $(DEB_DIR)/gosst_*.deb

## test: lint, then every test (unit, fuzz seeds, and integration tests
## against real MariaDB Galera clusters on loopback).
test: deps tools lint
	GOSST_VERSITYGW=$(VERSITYGW) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## test-short: unit tests only (no clusters).
test-short:
	$(GO) test -short -count=1 ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## fuzz-smoke: a short run of every fuzz target.
fuzz-smoke:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=20s -fuzzminimizetime=1s $$pkg || exit 1; \
	  done; \
	done

## install: put the binaries where mysqld finds wsrep_sst_gosst
## (<basedir>/bin, /usr/bin on Debian).
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/galera-backup bin/wsrep_sst_gosst $(DESTDIR)$(PREFIX)/bin/

## demo: a local 3-node cluster on loopback and galera-backup against it.
demo: deps build
	$(GO) run ./test/demo -bin bin

## demo-schedule: the same cluster with galera-backup schedule on all three
## nodes (option files only, a full backup every 20 s, failover, metrics).
demo-schedule: deps build
	$(GO) run ./test/demo -bin bin -schedule

clean:
	rm -rf bin dist $(TOOLS_DIR)
