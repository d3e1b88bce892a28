#!/usr/bin/env bash
# Rewrites the README's table of environment variables from the settings'
# declarations (the env and doc tags), as 'fulfillment env' prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(go run ./cmd/fulfillment env)
awk -v table="$table" '
	/^<!-- env:start/ { print; print table; skip = 1; next }
	/^<!-- env:end -->/ { skip = 0 }
	!skip { print }
' README.md > README.md.new
mv README.md.new README.md
