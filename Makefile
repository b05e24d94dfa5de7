# tbflow — what people and CI run. `make test` is the one test command.
GO       ?= go
PKGS     ?= ./...
GOFLAGS  ?=
export GOFLAGS

.PHONY: all build test unit peers lint fmt bench faults hostile e2e clean

all: build

build:
	$(GO) build -o tbflow ./cmd/tbflow

## test: every test, hermetic and against the real peers (installs them when missing and run as root)
test: peers lint
	TBFLOW_REQUIRE_PEERS=1 $(GO) test -race -count=1 -timeout 30m $(PKGS)

## unit: the hermetic tests only (peer tests skip with a message)
unit:
	$(GO) test -race -count=1 $(PKGS)

peers:
	@bash scripts/peers.sh

## lint: gofmt and go vet must be clean
lint:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

## bench: every benchmark of the project, with same-run baselines and ratios
bench: peers
	TBFLOW_REQUIRE_PEERS=1 $(GO) run ./bench/cmd/benchtable

## faults: the fault suite (broker outages, kill -9, a stalled link, a vanishing Modbus unit, malformed replies)
faults: peers
	TBFLOW_REQUIRE_PEERS=1 $(GO) test -race -count=1 -timeout 20m -v -run 'TestFault' ./faults/

## hostile: hostile inputs (flows, expressions, WebSocket frames, MQTT packets, RPC bodies, Modbus
## replies) against the real components; prints tried / accepted / clear errors / crashed / hung /
## leaked per kind. It is part of `make test` too.
hostile:
	$(GO) test -race -count=1 -timeout 5m -v -run 'TestHostile$$' ./hostile/

## e2e: the editor's end-to-end tests in Debian's chromium (playwright-core)
e2e: peers
	TBFLOW_REQUIRE_PEERS=1 $(GO) test -count=1 -timeout 20m -v -run 'TestE2E' ./web/

clean:
	rm -f tbflow
