# The fulfillment server's tasks. "make help" lists them.

TEMPORAL_CLI_VERSION := v1.5.1
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

.DEFAULT_GOAL := help

## help: list the targets
.PHONY: help
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /' -e 's/: /\t/' | expand -t 22

## run: run the service and the KooGallery emulator with a local Temporal dev server and Postgres (Ctrl-C stops them)
.PHONY: run
run:
	./scripts/run-local.sh

## demo: buy a monthly product through the emulator and watch its whole life on the emulated clock
.PHONY: demo
demo:
	./scripts/demo.sh

## test: run every test (unit, workflow, database, end-to-end) against real Postgres and Temporal
.PHONY: test
test: bin/temporal
	go test $(GO_TEST_FLAGS) ./...

## bench-usage: measure usage intake (1,000,000 records over HTTP) and the hourly close of 10,000 pay-per-use instances into docs/benchmarks.md (12 to 15 min)
.PHONY: bench-usage
bench-usage: bin/temporal
	go run ./internal/benchusage -write docs/benchmarks.md

## build: build bin/fulfillment
.PHONY: build
build: bin/fulfillment

## bin/fulfillment: build the server binary
.PHONY: bin/fulfillment
bin/fulfillment:
	go build -o bin/fulfillment ./cmd/fulfillment

## bin/temporal: install the Temporal CLI (dev server) from the Go module proxy
bin/temporal:
	GOBIN=$(CURDIR)/bin go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

## lint: check formatting and vet
.PHONY: lint
lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)
	go vet ./...

## histories: re-record the workflow histories of the replay test (only on purpose: see internal/histories)
.PHONY: histories
histories: bin/temporal
	go run ./internal/histories -out workflows/testdata/histories -temporal bin/temporal

## vectors: regenerate the Java reference vectors of the signature and AES code
.PHONY: vectors
vectors:
	cd koogallery/testdata && java VectorGen.java > vectors.json

## clean: remove built binaries and local run data (keeps bin/temporal)
.PHONY: clean
clean:
	rm -rf bin/fulfillment .data
