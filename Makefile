# The fulfillment server's tasks. "make help" lists them.

TEMPORAL_CLI_VERSION := v1.5.1
# The Temporal server of make bench-postgres; newer versions need a newer Go.
TEMPORAL_SERVER_VERSION := v1.29.1
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
# How long make fuzz runs each fuzz target, and how many runs it may spend
# shrinking each new input: few, so that the database-backed targets spend
# their time fuzzing rather than polishing their corpus (a failing input is
# saved either way).
FUZZTIME ?= 10s
FUZZMINIMIZETIME ?= 50x

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

## test: run every test (unit, workflow, database, end-to-end) against real Postgres and Temporal, then make fuzz
.PHONY: test
test: bin/temporal
	go test $(GO_TEST_FLAGS) ./...
	@$(MAKE) --no-print-directory fuzz

## fuzz: run every fuzz target (each func Fuzz… in a *_test.go) for FUZZTIME (10s) each; about 2 minutes
.PHONY: fuzz
fuzz:
	FUZZTIME=$(FUZZTIME) FUZZMINIMIZETIME=$(FUZZMINIMIZETIME) scripts/fuzz.sh

# The sizes of make bench: the targets' sizes (200 callbacks/s, the expiry
# storm of 10,000), which a shared 2-core machine gets through in about 15
# minutes (go run ./bench/load -h lists the flags; -storm-idle adds
# idle open purchases to the storm).
BENCH_FLAGS ?= -for 30s -mix 300 -storm 10000 -storm-lead 8m -storm-patience 15m
BENCH_POSTGRES_FLAGS ?= -for 30s -mix 300 -storm 0

## bench: load the production interface (200 callbacks/s, flat out against the raw Temporal ceiling, an expiry storm of 10,000) on the dev server; figures into docs/benchmarks.md (about 15 min)
.PHONY: bench
bench: bin/temporal
	go run ./bench/load -temporal dev $(BENCH_FLAGS) -write docs/benchmarks.md

## bench-postgres: the same without the storm on the Temporal server backed by Postgres (builds bin/server and bin/sql from the module proxy)
.PHONY: bench-postgres
bench-postgres: bin/temporal bin/server bin/sql
	go run ./bench/load -temporal postgres $(BENCH_POSTGRES_FLAGS) -write docs/benchmarks.md

## bin/server: the Temporal server (for make bench-postgres)
bin/server:
	GOBIN=$(CURDIR)/bin go install go.temporal.io/server/cmd/server@$(TEMPORAL_SERVER_VERSION)

## bin/sql: the Temporal server's schema tool (for make bench-postgres)
bin/sql:
	GOBIN=$(CURDIR)/bin go install go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VERSION)

## bench-usage: measure usage intake (1,000,000 records over HTTP), the hourly close of 10,000 pay-per-use instances one by one and of 100,000 by the usage collector (directly and through Temporal) into docs/benchmarks.md (17 to 20 min)
.PHONY: bench-usage
bench-usage: bin/temporal
	go run ./bench/usage -write docs/benchmarks.md

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

# The workflow determinism checker of the Temporal Go SDK's contrib tools.
WORKFLOWCHECK_VERSION := v0.6.0
# staticcheck (honnef.co/go/tools), module version of release 2026.2.2.
STATICCHECK_VERSION := v0.8.2

## lint: check formatting, vet, staticcheck, and workflowcheck on the workflow code (the server's and the emulator's)
.PHONY: lint
lint: bin/workflowcheck bin/staticcheck
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)
	go vet ./...
	bin/staticcheck ./...
	bin/workflowcheck -config workflows/workflowcheck.config.yaml ./workflows/... ./emulator/...

## bin/staticcheck: install staticcheck from the Go module proxy
bin/staticcheck:
	GOBIN=$(CURDIR)/bin go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## bin/workflowcheck: install the SDK's workflow determinism checker from the Go module proxy
bin/workflowcheck:
	GOBIN=$(CURDIR)/bin go install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

## histories: re-record the workflow histories of the replay test (only on purpose: see internal/histories)
.PHONY: histories
histories: bin/temporal
	go run ./internal/histories -out workflows/testdata/histories -temporal bin/temporal

# The Jackson of Debian's libjackson2-databind-java, which the canonical-body
# vectors are made with (the way Huawei's sample project canonicalises).
JACKSON_CLASSPATH := /usr/share/java/jackson-databind.jar:/usr/share/java/jackson-core.jar:/usr/share/java/jackson-annotations.jar

## readme-env: rewrite the README's table of environment variables from the settings' declarations
.PHONY: readme-env
readme-env:
	scripts/readme-env.sh

## vectors: regenerate the Java reference vectors of the signature, V1 authToken, canonical-body, AES and kit RSA-OAEP code (needs Java 17 and libjackson2-databind-java)
.PHONY: vectors
vectors:
	@test -f /usr/share/java/jackson-databind.jar || { echo "make vectors needs Jackson: apt-get install libjackson2-databind-java"; exit 1; }
	cd koogallery/testdata && java VectorGen.java > vectors.json
	cd koogallery/testdata && java V1VectorGen.java > v1-vectors.json
	cd koogallery/testdata && java -cp $(JACKSON_CLASSPATH) CanonicalVectorGen.java > canonical-vectors.json
	cd koogallery/testdata && java KitOaepVectorGen.java > kit-oaep-vectors.json

## clean: remove built binaries and local run data (keeps bin/temporal)
.PHONY: clean
clean:
	rm -rf bin/fulfillment .data
