#!/usr/bin/env bash
# Buys a monthly product through the emulator and lets its life play out on
# the emulated clock, printing each transition on both sides: the
# marketplace's (the emulator) and the merchant's (this server). The buyer
# renews once; then the subscription expires, is frozen and released.
# Uses the stack of 'make run' when it is up; otherwise starts one, on a
# faster clock (one emulated day per 2 s), and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export EMULATOR_URL="${EMULATOR_URL:-http://127.0.0.1:8090}"
export FULFILLMENT_ADMIN_TOKEN="${FULFILLMENT_ADMIN_TOKEN:-local-admin-token}"
export EMULATOR_MERCHANT_ADMIN_URL="${EMULATOR_MERCHANT_ADMIN_URL:-http://127.0.0.1:8080}"
export EMULATOR_MERCHANT_ADMIN_TOKEN="${EMULATOR_MERCHANT_ADMIN_TOKEN:-${FULFILLMENT_ADMIN_TOKEN}}"

make --no-print-directory bin/fulfillment >/dev/null
started=""
if ! curl -fsS "${EMULATOR_URL}/healthz" >/dev/null 2>&1; then
	echo "No stack running: starting one (log: .data/demo-stack.log)..."
	mkdir -p .data
	EMULATOR_TIME_SCALE="${EMULATOR_TIME_SCALE:-1d=2s}" setsid scripts/run-local.sh >.data/demo-stack.log 2>&1 &
	started=$!
	trap 'kill -TERM -- -"$started" 2>/dev/null || true; wait "$started" 2>/dev/null || true' EXIT
	for _ in $(seq 1 300); do
		curl -fsS "${EMULATOR_URL}/healthz" >/dev/null 2>&1 && curl -fsS "${EMULATOR_MERCHANT_ADMIN_URL}/healthz" >/dev/null 2>&1 && break
		sleep 0.5
	done
fi

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
