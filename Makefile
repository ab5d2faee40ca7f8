# fastapi-dls — build, run, test, package.
# `make run` and `make test` are the README's two commands.

GO      ?= go
VERSION ?= $(shell dpkg-parsechangelog -SVersion 2>/dev/null || echo dev)
# The commit /status reports; outside a git checkout the binary reports its
# version instead (see buildCommit in cmd/fastapi-dls).
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin/fastapi-dls

# Local, unprivileged defaults for `make run`: state under ./state, a high port.
RUN_STATE ?= $(CURDIR)/state
RUN_PORT  ?= 8443
RUN_HTTP  ?= 127.0.0.1:8080

# Sub-makes (test, system-test) without "Entering directory" noise.
MAKEFLAGS += --no-print-directory

.PHONY: all build readme run test system-test root-check deps unit fmt-check vet lint golden e2e image image-test units-check deb lintian deb-test bench fuzz soak clean

all: build

# say prints one progress line on the console before a step that can take a
# while, with what it costs the first time (no commas in the text: $(call)
# would split it there).
say = @printf '==> %s\n' $(1)

build:
	@[ -x $(BIN) ] || printf '==> %s\n' "building $(BIN) (the first Go build fetches modules and compiles: about 90 s; later builds take seconds)"
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/fastapi-dls

run: build
	mkdir -p $(RUN_STATE)
	DLS_ENV_FILE=/dev/null DLS_URL=localhost DLS_PORT=$(RUN_PORT) \
	DLS_LISTEN=127.0.0.1:$(RUN_PORT) DLS_HTTP_LISTEN=$(RUN_HTTP) \
	DLS_DB=$(RUN_STATE)/dls.db CERT_PATH=$(RUN_STATE)/cert \
	DLS_TLS_CERT=$(RUN_STATE)/webserver.crt DLS_TLS_KEY=$(RUN_STATE)/webserver.key \
	./$(BIN) serve

# test is the README's test command and what .ci/run calls: the Go tests
# (-race), then the system tests: the daemon under a real systemd in an
# nspawn box (e2e), the container image under podman (image-test), the Debian
# package built, linted and installed, upgraded and purged in boxes (deb,
# lintian, deb-test). The system tests need root;
# `make unit` runs the Go tests alone without it. The steps run one after
# another in this order, also under `make -j` (each is a sub-make; -j only
# parallelises inside a step). The times printed were measured on 2 busy cores.
test:
	$(call say,"[1/6] deps: Debian packages the tests need (first run: apt-get; 1-2 min)")
	$(MAKE) deps
	$(call say,"[2/6] fmt-check")
	$(MAKE) fmt-check
	$(call say,"[3/6] vet")
	$(MAKE) vet
	$(call say,"[4/6] lint: staticcheck and shellcheck (first run builds staticcheck: 1-2 min)")
	$(MAKE) lint
	$(call say,"[5/6] unit: go test -race ./... (5-10 min on 2 cores)")
	$(MAKE) unit
	$(call say,"[6/6] system-test: systemd-nspawn boxes and podman (10-15 min; the first run builds images: some minutes more)")
	$(MAKE) system-test

system-test:
	$(MAKE) root-check
	$(MAKE) units-check
	$(call say,"e2e: the daemon under systemd in a box (first run builds the Debian image: about 150 s)")
	$(MAKE) e2e
	$(call say,"image-test: the container image under podman (first run installs podman: 1-2 min)")
	$(MAKE) image-test
	$(call say,"deb: building the Debian package (about 1 min)")
	DEB_BUILD_OPTIONS=nocheck $(MAKE) deb
	$(MAKE) lintian
	$(call say,"deb-test: package tests in bookworm and trixie and noble boxes (3-4 min each; a first run builds their images: 2-3 min each)")
	$(MAKE) deb-test

root-check:
	@if [ "$$(id -u)" -ne 0 ]; then \
	  echo "the system tests boot Debian boxes with systemd-nspawn and need root:"; \
	  echo "  run make test as root (or make unit, for the Go tests alone)"; exit 1; \
	fi

deps:
	./.ci/deps

unit:
	$(GO) test -race -count=1 ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The shell scripts under .ci/ and debian/ (found by their #! line, plus the
# sourced lib.sh), for shellcheck.
SHELL_SCRIPTS = $(shell grep -lE '^\#! *(/usr)?/bin/(env +)?(ba|da)?sh' .ci/* debian/* debian/tests/* 2>/dev/null) debian/tests/lib.sh

# staticcheck is pinned by go.mod's tool directive (go get -tool …@version);
# shellcheck comes from Debian (.ci/deps installs it).
lint:
	$(GO) tool staticcheck ./...
	@command -v shellcheck >/dev/null || { echo "shellcheck is missing: run .ci/deps (Debian package shellcheck)"; exit 1; }
	shellcheck -x $(SHELL_SCRIPTS)

golden:
	$(GO) test ./pkg/httpapi -run Golden -update
	$(GO) test ./pkg/config -run TestSettingsDocs -update

# readme renders README.md into the HTML page /-/readme embeds.
readme:
	$(GO) test ./pkg/httpapi -run '^TestEmbeddedReadme$$' -count=1 -update

# bench: micro-benchmarks of the hot paths, then this tree's daemon beside an
# older commit's under dls-guest load (journeys, renewals, a boot storm);
# prints the README's performance table. Knobs: BENCH_* in .ci/bench.
bench:
	GO=$(GO) ./.ci/bench

# fuzz explores every Fuzz target for FUZZTIME each (go test -fuzz takes one
# target at a time); their seeds (f.Add, testdata/fuzz/) run in every `make
# unit`. A failure writes the input to testdata/fuzz/<target>/: commit it
# with the fix, it then stays a test.
FUZZTIME ?= 30s
fuzz:
	@set -e; for dir in $$(grep -l '^func Fuzz' $$(git ls-files '*_test.go') | xargs -n1 dirname | sort -u); do \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -d' ' -f2); do \
	    echo "== fuzz ./$$dir $$t for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$dir; \
	  done; \
	done

# soak holds SOAK_GUESTS simulated guests renewing against the real daemon
# for SOAK_TIME and reports errors, the daemon's RSS over time and the file
# size; it fails on any error or on memory that keeps growing (README: Soak).
SOAK_TIME   ?= 5m
SOAK_GUESTS ?= 1000
soak:
	SOAK_TIME=$(SOAK_TIME) SOAK_GUESTS=$(SOAK_GUESTS) $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./cmd/fastapi-dls

# The container image (.ci/image/Containerfile): FROM scratch, the static
# binary built here and passwd/group for its user, staged in bin/image (the
# build context: nothing else of the tree goes in). --format docker keeps the
# HEALTHCHECK (OCI images have none); --pull=never: there is no base to pull.
PODMAN ?= podman
IMAGE  ?= localhost/fastapi-dls:$(VERSION)
IMAGE_FORMAT ?= docker

image: build
	rm -rf bin/image
	mkdir -p bin/image/empty
	cp $(BIN) bin/image/fastapi-dls
	printf 'root:x:0:0:root:/:/nonexistent\nfastapi-dls:x:65532:65532:fastapi-dls:/var/lib/fastapi-dls:/nonexistent\n' >bin/image/passwd
	printf 'root:x:0:\nfastapi-dls:x:65532:\n' >bin/image/group
	chmod 0644 bin/image/passwd bin/image/group
	chmod 0750 bin/image/empty
	$(PODMAN) build --pull=never --format $(IMAGE_FORMAT) --label org.opencontainers.image.version=$(VERSION) \
	  -f .ci/image/Containerfile -t $(IMAGE) bin/image
	@$(PODMAN) image inspect --format '{{.Id}} {{.Size}} bytes' $(IMAGE)

# The image under podman (installed when missing), with host networking on a
# loopback port of its own; see .ci/e2e-image. Needs root.
image-test:
	./.ci/e2e-image

# Debian package (debian/). dpkg-buildpackage writes into ..; deb moves the
# results to dist/. Build-Depends says golang-go | golang-any, but bookworm's
# golang-go is Go 1.19 and go.mod needs 1.26: the build uses the go in PATH
# (/usr/local/go), so the other build dependencies are installed here and
# dpkg-buildpackage runs with -d (no Build-Depends check).
DEB_TOOLS := debhelper dpkg-dev lintian

deb:
	@missing=; for p in $(DEB_TOOLS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	mkdir -p dist
	rm -f dist/fastapi-dls_* dist/fastapi-dls-dbgsym_*
	v=$$(dpkg-parsechangelog -SVersion); rc=0; \
	dpkg-buildpackage -us -uc -d || rc=$$?; \
	for f in ../fastapi-dls_$$v[._]* ../fastapi-dls-dbgsym_$${v}_*; do \
	  if [ -e "$$f" ]; then mv "$$f" dist/; fi; \
	done; \
	exit $$rc
	@ls -1 dist

lintian:
	lintian --fail-on error,warning --display-info dist/*.changes

# Runs debian/tests/* against dist/*.deb in .ci/box containers.
deb-test:
	./debian/tests/run-all

# systemd units: the offline hardening score (fails above 1.5); `verify` needs
# the ExecStart binary in place, so here only where it is installed (the e2e
# box always runs it).
units-check:
	systemd-analyze security --offline=yes --threshold=15 --no-pager systemd/fastapi-dls.service
	@if [ -x /usr/bin/fastapi-dls ]; then \
	  echo "systemd-analyze verify --man=no systemd/*"; \
	  systemd-analyze verify --man=no systemd/fastapi-dls.service systemd/fastapi-dls.socket systemd/fastapi-dls-http.socket; \
	fi

# The daemon under a real systemd in a Debian box (.ci/box, systemd-nspawn),
# driven by bin/dls-guest. Needs root.
e2e:
	./.ci/e2e-systemd

clean:
	rm -rf bin dist
