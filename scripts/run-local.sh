#!/usr/bin/env bash
# Runs the whole stack on this machine, in the foreground:
#   - PostgreSQL at DATABASE_URL (a local cluster that is down is started),
#     the database created and migrated;
#   - the Temporal dev server from bin/ (gRPC :7233, UI :8233), persisted in
#     .data/temporal.db, unless one already answers at TEMPORAL_ADDRESS;
#   - fulfillment serve on :8080;
#   - the KooGallery emulator on :8090 (its consoles and the open API), on
#     an emulated clock (EMULATOR_TIME_SCALE, default one day per 10 s), with
#     the server's lifecycle timers scaled to the same clock.
# It writes the variables a second terminal needs (the emulator's address,
# the merchant's admin API and token) into RUN_ENV_FILE (.data/run.env), which
# the emulator's commands read, and removes it when it stops.
# Ctrl-C stops what this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

# Local defaults. Real deployments set their own values.
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fulfillment?sslmode=disable}"
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
export HTTP_ADDR="${HTTP_ADDR:-:8080}"
export EMULATOR_ADDR="${EMULATOR_ADDR:-127.0.0.1:8090}"
export EMULATOR_URL="${EMULATOR_URL:-http://${EMULATOR_ADDR}}"
export KOOGALLERY_ACCESS_KEY="${KOOGALLERY_ACCESS_KEY:-local-access-key}"
export KOOGALLERY_AK="${KOOGALLERY_AK:-local-ak}"
export KOOGALLERY_SK="${KOOGALLERY_SK:-local-sk}"
export KOOGALLERY_API_URL="${KOOGALLERY_API_URL:-${EMULATOR_URL}}"
export FULFILLMENT_ADMIN_TOKEN="${FULFILLMENT_ADMIN_TOKEN:-local-admin-token}"
export FULFILLMENT_USAGE_TOKEN="${FULFILLMENT_USAGE_TOKEN:-local-usage-token}"
export FULFILLMENT_LICENSE_TOKEN="${FULFILLMENT_LICENSE_TOKEN:-local-license-token}"
# The 联营 kit: its own access key, and the merchant's RSA key pair that
# encrypts the app credentials' client secrets (generated once, below).
export KOOGALLERY_KIT_ACCESS_KEY="${KOOGALLERY_KIT_ACCESS_KEY:-local-kit-key}"
# V1 listings (the withdrawn GET interface and the V1 kit) sign with the V1 key.
export KOOGALLERY_V1_ACCESS_KEY="${KOOGALLERY_V1_ACCESS_KEY:-local-v1-key}"
# License-code callbacks have a key type of their own.
export KOOGALLERY_LICENSE_ACCESS_KEY="${KOOGALLERY_LICENSE_ACCESS_KEY:-local-license-key}"
# Listings still on the withdrawn V1.0 GET interface have a key of their own.
export KOOGALLERY_V1_ACCESS_KEY="${KOOGALLERY_V1_ACCESS_KEY:-local-v1-key}"
export KOOGALLERY_KIT_PRIVATE_KEY_FILE="${KOOGALLERY_KIT_PRIVATE_KEY_FILE:-.data/kit/kit-private.pem}"
export EMULATOR_KIT_PUBLIC_KEY_FILE="${EMULATOR_KIT_PUBLIC_KEY_FILE:-.data/kit/kit-public.pem}"
# Pay-per-use metering runs in real time (the emulator's clock cannot reach
# into the merchant's periods): minute periods, pushed 5 s after each ends,
# so that usage reaches the emulator while you watch. 1m divides a day.
export METERING_PERIOD="${METERING_PERIOD:-1m}"
export METERING_PUSH_DELAY="${METERING_PUSH_DELAY:-5s}"
export EMULATOR_TIME_SCALE="${EMULATOR_TIME_SCALE:-1d=10s}"
export LOG_FORMAT="${LOG_FORMAT:-text}"
http_port=${HTTP_ADDR##*:}
export EMULATOR_PRODUCTION_URL="${EMULATOR_PRODUCTION_URL:-http://127.0.0.1:${http_port}/produce}"
export EMULATOR_MERCHANT_ADMIN_URL="${EMULATOR_MERCHANT_ADMIN_URL:-http://127.0.0.1:${http_port}}"
export EMULATOR_MERCHANT_ADMIN_TOKEN="${EMULATOR_MERCHANT_ADMIN_TOKEN:-${FULFILLMENT_ADMIN_TOKEN}}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
RUN_ENV_FILE="${RUN_ENV_FILE-.data/run.env}"

mkdir -p .data
pids=()
wrote_env=
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ -n "$wrote_env" ]]; then rm -f "$RUN_ENV_FILE"; fi
}
trap cleanup EXIT INT TERM

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# PostgreSQL: start the machine's own cluster when it is local and down.
db_host=$(sed -E 's#^[a-z]+://([^@/]*@)?([^:/?]+).*#\2#' <<<"$DATABASE_URL")
db_port=$(sed -nE 's#^[a-z]+://([^@/]*@)?[^:/?]+:([0-9]+).*#\2#p' <<<"$DATABASE_URL")
db_port=${db_port:-5432}
if ! port_open "$db_host" "$db_port"; then
	if [[ "$db_host" == 127.0.0.1 || "$db_host" == localhost ]] && command -v pg_ctlcluster >/dev/null; then
		echo "Starting the local PostgreSQL cluster..."
		pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
	else
		echo "PostgreSQL does not answer at $db_host:$db_port; start it or set DATABASE_URL." >&2
		exit 1
	fi
fi

# The first run downloads and compiles a good part of the Go ecosystem:
# say so once, rather than leave only the toolchain's "go: downloading".
if [[ ! -x bin/temporal ]]; then
	echo "Building the Temporal CLI (its dev server is the local Temporal) into bin/ from the Go module proxy:"
	echo "first run only, about five minutes; the 'go: downloading' lines are its dependencies."
fi
if [[ ! -x bin/fulfillment ]]; then
	echo "Building bin/fulfillment (a minute or two the first time: its dependencies are downloaded and compiled)..."
fi
make --no-print-directory bin/fulfillment bin/temporal >/dev/null
bin/fulfillment migrate -create-db
if [[ ! -f .data/kit/kit-private.pem && "$KOOGALLERY_KIT_PRIVATE_KEY_FILE" == .data/kit/kit-private.pem ]]; then
	echo "Generating the 联营 kit's RSA-3072 key pair into .data/kit (once)..."
	mkdir -p -m 700 .data/kit
	bin/fulfillment kit-keygen -out .data/kit >/dev/null
fi

# The server's timers on the emulator's clock: a day of freeze grace, 16 days
# of retention (one more than the marketplace's 15, so its release comes
# first), 3 hours to complete a supervised order, 5 days before a supervised
# order stalled on the merchant is alerted, 3 days for a debug tenant.
scaled() { bin/fulfillment emulator scale "$1"; }
export LIFECYCLE_FREEZE_GRACE="${LIFECYCLE_FREEZE_GRACE:-$(scaled 24h)}"
export LIFECYCLE_RETENTION="${LIFECYCLE_RETENTION:-$(scaled 16d)}"
export SUPERVISION_SYNC_DELAY="${SUPERVISION_SYNC_DELAY:-$(scaled 3h)}"
export SUPERVISION_STALL_ALERT="${SUPERVISION_STALL_ALERT:-$(scaled 5d)}"
export DEBUG_INSTANCE_TTL="${DEBUG_INSTANCE_TTL:-$(scaled 3d)}"
# Packages whose content resets (emulator buy -mode ON_DEMAND_PKG -reset monthly): their months
# run on the emulator's clock, so that a reset comes every few minutes.
export PACKAGE_RESET_PRODUCTS="${PACKAGE_RESET_PRODUCTS:-demo-package-monthly:monthly,demo-package-yearly:yearly}"
export PACKAGE_RESET_TIME_SCALE="${PACKAGE_RESET_TIME_SCALE:-$EMULATOR_TIME_SCALE}"

# Temporal: reuse one that answers, else start the dev server.
t_host=${TEMPORAL_ADDRESS%:*}
t_port=${TEMPORAL_ADDRESS##*:}
if port_open "$t_host" "$t_port"; then
	echo "Using the Temporal server already at $TEMPORAL_ADDRESS."
else
	echo "Starting the Temporal dev server (log: .data/temporal.log)..."
	bin/temporal server start-dev --ip "$t_host" --port "$t_port" --ui-port "$TEMPORAL_UI_PORT" \
		--db-filename .data/temporal.db --log-level warn >.data/temporal.log 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do port_open "$t_host" "$t_port" && break; sleep 0.2; done
	port_open "$t_host" "$t_port" || { echo "Temporal did not start; see .data/temporal.log" >&2; exit 1; }
fi

bin/fulfillment serve &
pids+=($!)
bin/fulfillment emulator serve >.data/emulator.log 2>&1 &
pids+=($!)

emu_port=${EMULATOR_ADDR##*:}
for _ in $(seq 1 100); do port_open 127.0.0.1 "$http_port" && port_open 127.0.0.1 "$emu_port" && break; sleep 0.2; done

# What a second terminal needs: the emulator's commands read the variables
# it does not set from this file; a shell can source it.
if [[ -n "$RUN_ENV_FILE" ]]; then
	(
		umask 077
		{
			echo "# Written by scripts/run-local.sh (make run) for other terminals; removed when it stops."
			for name in EMULATOR_URL EMULATOR_TIME_SCALE EMULATOR_MERCHANT_ADMIN_URL EMULATOR_MERCHANT_ADMIN_TOKEN \
				FULFILLMENT_ADMIN_TOKEN FULFILLMENT_USAGE_TOKEN FULFILLMENT_LICENSE_TOKEN KOOGALLERY_ACCESS_KEY KOOGALLERY_KIT_ACCESS_KEY \
				KOOGALLERY_LICENSE_ACCESS_KEY KOOGALLERY_V1_ACCESS_KEY; do
				printf "export %s='%s'\n" "$name" "${!name}"
			done
		} >"$RUN_ENV_FILE"
	)
	wrote_env=1
fi

cat <<MSG

  fulfillment   http://localhost:${http_port}   (POST /produce, GET /produce for V1, /v1/instances, /v1/usage, /metrics, /readyz)
  emulator      ${EMULATOR_URL}   (KooGallery: consoles and open API; log .data/emulator.log)
                one emulated day = $(scaled 1d) real
  Temporal      ${TEMPORAL_ADDRESS}   UI: http://localhost:${TEMPORAL_UI_PORT}
  PostgreSQL    ${DATABASE_URL%%\?*}
  keys          access key ${KOOGALLERY_ACCESS_KEY}, admin token ${FULFILLMENT_ADMIN_TOKEN}
  联营 kit      kit key ${KOOGALLERY_KIT_ACCESS_KEY}, private key ${KOOGALLERY_KIT_PRIVATE_KEY_FILE}
  pay-per-use   usage token ${FULFILLMENT_USAGE_TOKEN} (POST /v1/usage); periods of ${METERING_PERIOD} (real time),
                pushed ${METERING_PUSH_DELAY} after each ends (bin/fulfillment emulator usage ID shows them)

  Buy a product, from another terminal in this directory:
    bin/fulfillment emulator buy
  then follow it with the watch command it prints, or play a whole life: make demo
  The emulator's commands read this stack's addresses and tokens from ${RUN_ENV_FILE:-(not written)};
  a shell or curl can have them too: . ${RUN_ENV_FILE:-.data/run.env}

  Ctrl-C stops everything started here.
MSG
wait -n "${pids[@]}"
