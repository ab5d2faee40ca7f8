# fastapi-dls — build, run, test, package.
# `make run` and `make test` are the README's two commands.

GO      ?= go
PREFIX  ?= /usr
VERSION ?= $(shell dpkg-parsechangelog -SVersion 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/fastapi-dls

# Local, unprivileged defaults for `make run`: state under ./state, a high port.
RUN_STATE ?= $(CURDIR)/state
RUN_PORT  ?= 8443
RUN_HTTP  ?= 127.0.0.1:8080

.PHONY: all build run test deps unit fmt-check vet lint golden e2e deb lintian bench fuzz soak clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/fastapi-dls

run: build
	mkdir -p $(RUN_STATE)
	DLS_ENV_FILE=/dev/null DLS_URL=localhost DLS_PORT=$(RUN_PORT) \
	DLS_LISTEN=127.0.0.1:$(RUN_PORT) DLS_HTTP_LISTEN=$(RUN_HTTP) \
	DLS_DB=$(RUN_STATE)/dls.db CERT_PATH=$(RUN_STATE)/cert \
	DLS_TLS_CERT=$(RUN_STATE)/webserver.crt DLS_TLS_KEY=$(RUN_STATE)/webserver.key \
	./$(BIN) serve

# test is what .ci/run calls: tools, style, unit + integration tests.
test: deps fmt-check vet unit

deps:
	./.ci/deps

unit:
	$(GO) test -race -count=1 ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 ./...

golden:
	$(GO) test ./pkg/... -run Golden -update

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dist
