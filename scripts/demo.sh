#!/usr/bin/env bash
# `make demo`: the whole path on one machine — redis-server, the Slack and Salesforce emulators
# and sfrelay — first a Closed Won callout and what Slack received, then a button: an escalated
# Case's card, a person clicking "Take it" (the emulator signs the click as Slack does), the
# write Salesforce received and the card redrawn in place.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${DEMO_REDIS_PORT:-6399}
SLACK_PORT=${DEMO_SLACK_PORT:-3001}
SF_PORT=${DEMO_SF_PORT:-3002}
PORT=${DEMO_PORT:-8089}
SECRET=demo-signing-secret
bin=./target/debug

# shellcheck source=scripts/demo-lib.sh
. scripts/demo-lib.sh

start_redis
$bin/sfrelay-emulator slack --listen "127.0.0.1:$SLACK_PORT" >"$dir/slack.out" 2>&1 &
pids="$pids $!"
$bin/sfrelay-emulator salesforce --listen "127.0.0.1:$SF_PORT" --client-id demo.client \
  --public-key tests/fixtures/keys/rsa-public.pem --data tests/fixtures/demo/salesforce.json \
  >"$dir/salesforce.out" 2>&1 &
pids="$pids $!"

# The shipped routes and templates, one org whose API access is the Salesforce emulator.
cat >"$dir/sfrelay.toml" <<TOML
routes_dir = "$PWD/routes"
templates_dir = "$PWD/templates"
fixtures_dir = "$PWD/tests/fixtures"
time_zone = "UTC"

[[orgs]]
id = "00D5g000004ABCdEAO"
name = "demo"

[orgs.salesforce]
instance_url = "https://acme.my.salesforce.com"
login_url = "http://127.0.0.1:$SF_PORT"
client_id = "demo.client"
username = "integration@acme.example"
private_key_file = "$PWD/tests/fixtures/keys/rsa-private.pem"
TOML

REDIS_URL="redis://127.0.0.1:$REDIS_PORT" SLACK_API_BASE="http://127.0.0.1:$SLACK_PORT/api" \
  SLACK_BOT_TOKEN=xoxb-test-token SLACK_SIGNING_SECRET=$SECRET SFRELAY_LISTEN="127.0.0.1:$PORT" \
  $bin/sfrelay serve --config "$dir/sfrelay.toml" 2>"$dir/sfrelay.log" &
pids="$pids $!"

wait_ready

echo "== POST /v1/events (tests/fixtures/flow-opportunity-closed-won.json)"
curl -s -X POST "localhost:$PORT/v1/events" -H 'Content-Type: application/json' \
  --data @tests/fixtures/flow-opportunity-closed-won.json
echo
wait_for "localhost:$SLACK_PORT/_emulator/messages?channel=C0DEALDESK" '"ts"' >/dev/null
echo "== what Slack received (GET /_emulator/messages)"
curl -s "localhost:$SLACK_PORT/_emulator/messages"
echo

echo
echo "== A button: POST /v1/events (tests/fixtures/flow-case-escalated.json)"
curl -s -X POST "localhost:$PORT/v1/events" -H 'Content-Type: application/json' \
  --data @tests/fixtures/flow-case-escalated.json
echo
wait_for "localhost:$SLACK_PORT/_emulator/messages?channel=C0SUPESC01" 'take_case' >/dev/null
echo "== Riley clicks \"Take it\" on the card in #support-escalations (POST /_emulator/interact)"
curl -s -X POST "localhost:$SLACK_PORT/_emulator/interact" -H 'Content-Type: application/json' \
  --data "{\"url\": \"http://127.0.0.1:$PORT/slack/interactions\", \"signing_secret\": \"$SECRET\",
           \"type\": \"block_actions\", \"user\": \"U0RILEY001\", \"channel\": \"C0SUPESC01\",
           \"action_id\": \"take_case\"}" >"$dir/click.json"
echo "sfrelay answered $(grep -o '"status":[0-9]*' "$dir/click.json") in $(grep -o '"elapsed_ms":[0-9]*' "$dir/click.json")"
wait_for "localhost:$SF_PORT/_emulator/writes" '"operation"' >/dev/null
echo "== what Salesforce received (GET /_emulator/writes → journal)"
curl -s "localhost:$SF_PORT/_emulator/writes" | grep -o '"journal":\[.*\]' | head -c 600
echo
wait_for "localhost:$SLACK_PORT/_emulator/messages?channel=C0SUPESC01" 'Taken by' >/dev/null
echo "== the card now (GET /_emulator/messages?channel=C0SUPESC01)"
curl -s "localhost:$SLACK_PORT/_emulator/messages?channel=C0SUPESC01"
echo
