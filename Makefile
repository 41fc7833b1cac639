# medic — build, test and try it. `make help` lists the targets.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILDUSER ?= $(shell id -un 2>/dev/null || echo unknown)@$(shell hostname 2>/dev/null || echo unknown)
BUILDDATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
TAGS      ?= netgo
VERSIONPKG := github.com/prometheus/common/version
LDFLAGS   := -X $(VERSIONPKG).Version=$(VERSION) -X $(VERSIONPKG).Revision=$(REVISION) \
	-X $(VERSIONPKG).Branch=$(BRANCH) -X $(VERSIONPKG).BuildUser=$(BUILDUSER) -X $(VERSIONPKG).BuildDate=$(BUILDDATE)
BIN       := bin/medic

.PHONY: help build test fuzz e2e bench soak demo lint deps clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/medic
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/medic

deps: ## install what the tests need (Debian packages; run as root)
	bash .ci/deps

test: ## every test, with the race detector (needs moto_server, promtool, alertmanager, chromium: make deps)
	$(GO) test -race -count=1 -timeout 30m ./...

FUZZTIME  ?= 10s

fuzz: ## each fuzz test for 10 s (make fuzz FUZZTIME=1m for longer); seed corpora in <pkg>/testdata/fuzz
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
	  pkg=./$$(dirname $${f#./}); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

e2e: ## only the end-to-end tests of the real binary against the AWS emulator
	$(GO) test -race -count=1 -timeout 20m -run 'TestE2E' ./cmd/medic/

bench: ## the binary measured from outside (saturation, schedule, scale) and in-process diagnostics; writes BENCHMARKS.md
	bash scripts/bench.sh

soak: ## one hour, 5,000 targets coming and going: RSS, goroutine and series slopes (not CI)
	bash scripts/bench.sh soak

demo: ## the embedded default: emulator, 6-instance loopback fleet, medic, one instance broken
	$(GO) run ./cmd/medic-demo

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## vet, staticcheck, gofmt and the Prometheus rules
	$(GO) vet ./...
	GOFLAGS= $(GO) run $(STATICCHECK) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	promtool check rules alerts/rules/*.rules.yml

clean:
	rm -rf bin
