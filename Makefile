# netpulse — see README.md. `make run` and `make test` are the contract.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build build-static run test test-short lint bench fuzz captures clean

all: build

# The full binary links the embedded DuckDB store (cgo; the first build
# takes a minute).
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/netpulse ./cmd/netpulse

# The edge binary (proxy, monitor, tcpstats, probe, decode) is static: no
# cgo, no DuckDB.
build-static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/netpulse-static ./cmd/netpulse

# The main job: the all-in-one collector + proxy on the embedded store,
# with simulated routers sending over loopback. State in ./netpulse-data.
run: build
	./bin/netpulse run -demo

# All tests, with the race detector. Integration tests skip loudly when a
# peer (tshark, softflowd…) is missing, and fail instead when
# NETPULSE_REQUIRE_INTEGRATION=1, as in CI.
test:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/netpulse
	$(GO) test -race -count=1 ./...
	cd bench/goflow2 && GOFLAGS=-mod=mod $(GO) vet ./... && GOFLAGS=-mod=mod $(GO) test -count=1 -run . -bench XXX ./...

test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Benchmarks on the real captures, ours and goflow2's in the same run.
bench:
	$(GO) test -run XXX -bench . -benchmem ./decoder/... ./flow/...
	cd bench/goflow2 && GOFLAGS=-mod=mod $(GO) test -run XXX -bench . -benchmem ./...

# A short run of every fuzz target in the tree, found by name so that a
# new one is never left out (make fuzz FUZZTIME=10m for longer).
FUZZTIME ?= 30s
fuzz:
	@set -e; grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^./bench/' | sort | \
	while IFS=: read -r file _ rest; do \
		name=$$(echo "$$rest" | sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/'); \
		pkg=./$$(dirname "$${file#./}"); \
		echo "== $$pkg $$name"; \
		$(GO) test -run XXX -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	done

# Regenerate the real-exporter captures (root; needs softflowd, pmacct,
# fprobe, tcpreplay, dumpcap). Not part of `make test`.
captures:
	bash testdata/gen/make-captures.sh

clean:
	rm -rf bin
