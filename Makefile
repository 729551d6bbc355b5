# lastcall: see README.md. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
CONTROLLER_TOOLS_VERSION := v0.19.0
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/lastcall-dev/lastcall/internal/version.Version=$(VERSION)
# Integration tests start a real control plane per package; two at once is
# what 2 cores carry well.
TEST_PARALLEL ?= 2
# Every go command here (vet, staticcheck's package loading, tests, the
# control-plane and peer builds) compiles with -trimpath: one set of flags,
# so each dependency is compiled once on a fresh machine and shared by all
# of them, and the cache stays valid for a checkout at any path (CI clones
# afresh).
export GOFLAGS := $(strip $(GOFLAGS) -trimpath)
# Test binaries skip DWARF (-w), a third of each link; stack traces do not
# need it.
TESTFLAGS ?= -ldflags=-w

.PHONY: demo-real-node images push docs deps bench all build test lint fmt-check vet staticcheck unit integration devcluster minio demo generate verify-generate clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lastcall ./cmd/lastcall

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BIN)/controller-gen:
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) vet -tags integration,bench ./...

staticcheck: $(BIN)/staticcheck
	$(BIN)/staticcheck ./...
	$(BIN)/staticcheck -tags integration ./...
	$(BIN)/staticcheck -tags integration,bench ./...

lint: fmt-check vet staticcheck verify-generate

# Builds the control-plane binaries, the real node's kubelet and kube-proxy,
# and the peers the end-to-end tests run (Flagger and its loadtester) once:
# about 16 + 2 min on 2 cores the first time, with progress, so the tests
# below start in seconds.
devcluster:
	$(GO) run ./cmd/lastcall-dev build --peers --real-node --helm

# Builds the MinIO server the state service's S3 tests run against, once
# (about 3 min on 2 cores the first time, after lint has compiled the
# dependencies they share; with progress; cached after).
minio:
	$(GO) run ./hack/minio

# System packages the tests use, installed from Debian when missing (needs
# root, as on CI): dbus-daemon for the node agent's real D-Bus tests;
# containerd, runc, the CNI plugins, iptables (kube-proxy) and util-linux's
# unshare for the real node lane (test/realnode).
DEB_PACKAGES := dbus containerd runc containernetworking-plugins iptables util-linux iproute2
DEB_COMMANDS := dbus-daemon containerd runc /usr/lib/cni/bridge iptables unshare ip
deps:
	@missing=; for c in $(DEB_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing Debian packages for:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	  else echo "missing:$$missing; install Debian's $(DEB_PACKAGES) (sudo apt-get install ...)"; exit 1; fi; fi

unit: deps
	$(GO) test $(TESTFLAGS) -race -count=1 ./...

# test/e2e is named first because go test starts packages in the order
# given: it is the longest (~2 min, mostly Flagger's 10 s analysis ticks,
# which Flagger will not shorten), and the others then run beside it.
integration: devcluster minio deps
	$(GO) test $(TESTFLAGS) -tags integration -count=1 -p $(TEST_PARALLEL) -timeout 60m \
	  ./test/e2e/ ./test/realnode/ $$($(GO) list -tags integration ./... | grep -v -e '/test/e2e$$' -e '/test/realnode$$')

test: lint unit integration

# Benchmarks on the real control plane (not part of `make test`); results
# are recorded in docs/benchmarks.md.
# Every benchmark runs even when an earlier one misses its target (they fail
# then); the target fails at the end if any did.
bench: devcluster deps
	@status=0; \
	$(GO) test -tags integration -run XXX -bench . -benchtime 5x -timeout 30m ./internal/run/ || status=1; \
	$(GO) test -tags integration -run XXX -bench . -benchtime 1x -timeout 30m ./internal/gate/ || status=1; \
	$(GO) test -tags integration -run XXX -bench . -benchtime 3x -timeout 30m ./internal/server/ || status=1; \
	$(GO) test -tags "integration bench" -count=1 -timeout 40m -run TestBenchmarkEvacuationVsKubectlDrain -v ./internal/node/ -args -bench-rounds=3 || status=1; \
	$(GO) test -run XXX -bench . -benchtime 10x -timeout 30m ./internal/state/ || status=1; \
	$(GO) test -count=1 -run 'Binary|Latency' -v ./cmd/lastcall-prestop/ -args -latency-runs=200 || status=1; \
	exit $$status

# The Flagger scenario end to end with a live view (docs/e2e.md): a private
# control plane, Flagger and lastcall server, all stopped at the end.
demo: devcluster
	./hack/demo.sh

# The same scenario with lastcall installed by its Helm chart on a real node
# (kubelet, containerd; needs root and `make deps`).
demo-real-node: devcluster deps
	./hack/demo.sh --real-node

# CRDs and deepcopy come from the API types; never edit them by hand.
# OCI images without Docker (internal/image, go-containerregistry):
# lastcall, lastcall-prestop and the test node's lastcall-pause, each for
# linux/amd64 and linux/arm64 in one index, in bin/images/<name> (an OCI
# layout) and bin/images/<name>.tar. Reproducible: every time in them is
# the commit's (or SOURCE_DATE_EPOCH).
images:
	$(GO) run ./cmd/lastcall-dev images --out $(BIN)/images --version $(VERSION)

# Pushes what `make images` built; for a release (no registry is reachable
# from CI). Credentials from the Docker config (docker login / crane auth).
push:
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=ghcr.io/you"; exit 1; }
	$(GO) run ./cmd/lastcall-dev push --dir $(BIN)/images --registry $(REGISTRY)

# docs/reference (one page per command, generated from the cobra commands)
# and the CLI golden files in cmd/lastcall/testdata/golden;
# TestFlagReferenceIsCurrent fails when they drift.
docs:
	$(GO) test ./cmd/lastcall -run 'TestFlagReferenceIsCurrent|TestCLIOutputsMatchGoldenFiles' -count=1 -args -update

generate: $(BIN)/controller-gen
	$(BIN)/controller-gen object paths=./api/...
	$(BIN)/controller-gen crd:allowDangerousTypes=true paths=./api/... output:crd:dir=charts/lastcall/crds
	gofmt -w api

# Fails when generated files differ from what `make generate` makes.
verify-generate: generate
	@git diff --exit-code -- api charts/lastcall/crds || { echo "generated files are stale: run make generate and commit"; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- api charts/lastcall/crds)" || { echo "untracked generated files: run make generate and commit"; exit 1; }

clean:
	rm -rf $(BIN)
