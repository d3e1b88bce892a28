#!/usr/bin/env bash
# Buys a monthly product through the emulator and lets its life play out on
# the emulated clock, printing each transition on both sides: the
# marketplace's (the emulator) and the merchant's (this server). The buyer
# renews once; then the subscription expires, is frozen and released.
#
# The demo runs a stack of its own, on a clock of its own (one emulated day
# per 2 s, so the whole life takes about three minutes), whether or not
# 'make run' is up: its own ports (18080, 18090), database (fulfillment_demo)
# and task queues, and the Temporal server of 'make run' when one answers.
# It stops what it started at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export HTTP_ADDR="${DEMO_HTTP_ADDR:-127.0.0.1:18080}"
export EMULATOR_ADDR="${DEMO_EMULATOR_ADDR:-127.0.0.1:18090}"
export DATABASE_URL="${DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fulfillment_demo?sslmode=disable}"
export TEMPORAL_TASK_QUEUE=fulfillment-demo
export EMULATOR_TASK_QUEUE=koogallery-emulator-demo
export FULFILLMENT_SPOOL_DIR=.data/demo-spool
export EMULATOR_TIME_SCALE="${DEMO_TIME_SCALE:-1d=2s}"
export EMULATOR_URL="http://${EMULATOR_ADDR}"
export FULFILLMENT_ADMIN_TOKEN="${FULFILLMENT_ADMIN_TOKEN:-local-admin-token}"
export EMULATOR_MERCHANT_ADMIN_URL="http://${HTTP_ADDR}"
export EMULATOR_MERCHANT_ADMIN_TOKEN="${FULFILLMENT_ADMIN_TOKEN}"
# make run's .data/run.env stays make run's: the demo's stack writes its own.
export RUN_ENV_FILE=.data/demo-run.env
unset EMULATOR_PRODUCTION_URL KOOGALLERY_API_URL PUBLIC_URL

if ! command -v curl >/dev/null; then
	echo "make demo needs curl." >&2
	exit 1
fi
mkdir -p .data
echo "Starting the demo's own stack (log: .data/demo-stack.log)..."
setsid scripts/run-local.sh >.data/demo-stack.log 2>&1 &
stack=$!
trap 'kill -TERM -- -"$stack" 2>/dev/null || true; wait "$stack" 2>/dev/null || true' EXIT
for _ in $(seq 1 1200); do
	curl -fsS "${EMULATOR_URL}/healthz" >/dev/null 2>&1 && curl -fsS "${EMULATOR_MERCHANT_ADMIN_URL}/healthz" >/dev/null 2>&1 && break
	if ! kill -0 "$stack" 2>/dev/null; then
		echo "The demo's stack stopped; its log, .data/demo-stack.log, says why:" >&2
		tail -n 20 .data/demo-stack.log >&2
		exit 1
	fi
	sleep 0.5
done
echo "One emulated day lasts $(bin/fulfillment emulator scale 1d) here; the whole life takes about three minutes."

id=$(bin/fulfillment emulator buy -period month -json | sed -n 's/.*"purchaseId": *"\([^"]*\)".*/\1/p')
echo "Bought purchase $id: a monthly subscription."
bin/fulfillment emulator watch -merchant "$id" &
watcher=$!
# Renew once it is in service.
for _ in $(seq 1 120); do
	bin/fulfillment emulator show -json "$id" | grep -q '"state": "in_service"' && break
	sleep 0.5
done
bin/fulfillment emulator renew "$id" >/dev/null
wait "$watcher"
echo
bin/fulfillment emulator show "$id"
# What the server's signature checks saw: the emulator sends its bodies
# unsorted and signs their canonical form (EMULATOR_SIGNATURE_FORM).
echo
echo "Signatures the server checked, by the form of the body they covered:"
curl -fsS "${EMULATOR_MERCHANT_ADMIN_URL}/metrics" | grep '^fulfillment_signature_checks_total' || true
