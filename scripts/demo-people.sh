#!/usr/bin/env bash
# `make demo-people`: the Slack surfaces on one machine, against the emulators — two orgs
# (production and a sandbox, one Salesforce emulator each), the Slack emulator, redis-server and
# sfrelay. Riley connects their own Salesforce account to both orgs (the emulator plays the
# sign-in page), makes the sandbox their Preferred org, finds a deal with `/sf find`, pastes a
# record link and sees it unfurled, follows the deal and gets a DM when it changes, then opens
# the Home tab: both connections, and (Riley is an admin) both orgs' health.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${DEMO_REDIS_PORT:-6399}
SLACK_PORT=${DEMO_SLACK_PORT:-3001}
PROD_PORT=${DEMO_SF_PORT:-3002}
SANDBOX_PORT=${DEMO_SF_SANDBOX_PORT:-3003}
PORT=${DEMO_PORT:-8089}
SECRET=demo-signing-secret
PROD=00D5g000004ABCdEAO
SANDBOX=00D5g000007QRStEAO
RILEY=U0RILEY001
bin=./target/debug
app="http://127.0.0.1:$PORT"
slack="http://127.0.0.1:$SLACK_PORT"

# shellcheck source=scripts/demo-lib.sh
. scripts/demo-lib.sh

start_redis
$bin/sfrelay-emulator slack --listen "127.0.0.1:$SLACK_PORT" >"$dir/slack.out" 2>&1 &
pids="$pids $!"
for org in "$PROD:$PROD_PORT" "$SANDBOX:$SANDBOX_PORT"; do
  $bin/sfrelay-emulator salesforce --listen "127.0.0.1:${org#*:}" --org-id "${org%:*}" \
    --client-id demo.client --public-key tests/fixtures/keys/rsa-public.pem \
    --data tests/fixtures/demo/salesforce.json >"$dir/salesforce-${org#*:}.out" 2>&1 &
  pids="$pids $!"
done

# Two orgs; people connect their own accounts (public_url, an encryption key); Riley is an
# admin; production is the Default org; cards show a deal's stage and amount.
org_section() { # name id instance-host emulator-port
  cat <<TOML

[[orgs]]
id = "$2"
name = "$1"

[orgs.salesforce]
instance_url = "https://$3"
login_url = "http://127.0.0.1:$4"
client_id = "demo.client"
username = "integration@acme.example"
private_key_file = "$PWD/tests/fixtures/keys/rsa-private.pem"
TOML
}
{
  cat <<TOML
routes_dir = "$PWD/routes"
templates_dir = "$PWD/templates"
fixtures_dir = "$PWD/tests/fixtures"
time_zone = "UTC"
public_url = "$app"

[slack]
admins = ["$RILEY"]
default_org = "production"

[cards.Opportunity]
fields = ["StageName", "Amount"]
TOML
  org_section production "$PROD" acme.my.salesforce.com "$PROD_PORT"
  org_section sandbox "$SANDBOX" acme--uat.sandbox.my.salesforce.com "$SANDBOX_PORT"
} >"$dir/sfrelay.toml"

REDIS_URL="redis://127.0.0.1:$REDIS_PORT" SLACK_API_BASE="$slack/api" \
  SLACK_BOT_TOKEN=xoxb-test-token SLACK_SIGNING_SECRET=$SECRET SFRELAY_LISTEN="127.0.0.1:$PORT" \
  SFRELAY_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
  $bin/sfrelay serve --config "$dir/sfrelay.toml" 2>"$dir/sfrelay.log" &
pids="$pids $!"

wait_ready

# Each org's connected app sends people back to sfrelay; each holds one deal.
for org in "$PROD_PORT:0065g00000DEMo1AAH:Acme Corp - Q3 Enterprise" "$SANDBOX_PORT:0065g00000DEMo2AAH:Acme Corp - Sandbox renewal"; do
  IFS=: read -r port id name <<<"$org"
  curl -sf -X POST "127.0.0.1:$port/_emulator/oauth/app" -H 'Content-Type: application/json' \
    --data "{\"callback_urls\": [\"$app/oauth/salesforce/callback\"]}" >/dev/null
  curl -sf -X POST "127.0.0.1:$port/_emulator/records" -H 'Content-Type: application/json' \
    --data "{\"Opportunity\": [{\"Id\": \"$id\", \"Name\": \"$name\", \"StageName\": \"Negotiation/Review\", \"Amount\": 75000}]}" >/dev/null
done

# Riley types `/sf $1` in #deal-desk (the emulator signs it as Slack does); prints what matches
# $2 (default: the whole text) in the answer that replaced "Looking…".
sf() {
  local sent id
  sent=$(curl -s -X POST "$slack/_emulator/command" -H 'Content-Type: application/json' \
    --data "{\"url\": \"$app/slack/commands\", \"signing_secret\": \"$SECRET\", \"user\": \"$RILEY\",
             \"channel\": \"C0DEALDESK\", \"command\": \"/sf\", \"text\": \"$1\"}")
  id=$(grep -o '"response_id":"[^"]*"' <<<"$sent" | cut -d'"' -f4)
  wait_for "$slack/_emulator/response/$id" "${2:-\"text\":\"[^\"]*\"}" | head -1 | sed 's/^"text":"//; s/"$//; s/\\n/\n/g'
}

# Riley's browser: opens the sign-in link sfrelay handed out, signs in at Salesforce (the
# emulator's login page takes login_as) and comes back to sfrelay; prints what the page says.
connect() {
  local sent id link authorize back jar="$dir/cookies-$1"
  sent=$(curl -s -X POST "$slack/_emulator/command" -H 'Content-Type: application/json' \
    --data "{\"url\": \"$app/slack/commands\", \"signing_secret\": \"$SECRET\", \"user\": \"$RILEY\",
             \"channel\": \"C0DEALDESK\", \"command\": \"/sf\", \"text\": \"connect $1\"}")
  id=$(grep -o '"response_id":"[^"]*"' <<<"$sent" | cut -d'"' -f4)
  link=$(wait_for "$slack/_emulator/response/$id" "$app/oauth/salesforce/start?state=[^\"]*" | head -1)
  authorize=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' "$link")
  back=$(curl -s -o /dev/null -w '%{redirect_url}' "$authorize&login_as=riley@acme.example")
  curl -s -c "$jar" -b "$jar" "$back" >"$dir/page.html"
  if ! grep -o 'Connected to [^<]*' "$dir/page.html" | sed 's/ You can close.*//'; then
    echo "the sign-in page said:" >&2
    sed 's/<[^>]*>/ /g' "$dir/page.html" >&2
    return 1
  fi
}

echo "== /sf connect production, then /sf connect sandbox (Riley signs in to each)"
connect production
connect sandbox
echo "== /sf org sandbox"
sf "org sandbox"
echo "== /sf orgs"
sf "orgs"
echo "== /sf find Acme (in Riley's Preferred org, the sandbox, as Riley)"
sf "find Acme" 'Acme Corp - [A-Za-z0-9 ]*'
echo "searched by: $(curl -s "127.0.0.1:$SANDBOX_PORT/_emulator/searches" | grep -o '"username":"[^"]*"' | tail -1)"

echo "== Riley pastes the sandbox deal's link in #deal-desk (link_shared → chat.unfurl)"
curl -s -X POST "$slack/_emulator/event" -H 'Content-Type: application/json' \
  --data "{\"url\": \"$app/slack/events\", \"signing_secret\": \"$SECRET\", \"type\": \"link_shared\",
           \"user\": \"$RILEY\", \"channel\": \"C0DEALDESK\",
           \"links\": [\"https://acme--uat.sandbox.lightning.force.com/lightning/r/Opportunity/0065g00000DEMo2AAH/view\"]}" >/dev/null
wait_for "$slack/_emulator/unfurls" '"text":"\*Acme Corp - Sandbox renewal[^"]*"' | head -1

echo "== /sf follow the production deal, and it changes (a Flow callout)"
sf "follow https://acme.lightning.force.com/lightning/r/Opportunity/0065g00000DEMo1AAH/view"
curl -s -X POST "$app/v1/events" -H 'Content-Type: application/json' --data "{
  \"event_id\": \"demo-stage-1\", \"org_id\": \"$PROD\", \"object\": \"Opportunity\",
  \"change_type\": \"UPDATE\", \"changed_fields\": [\"StageName\"],
  \"prior\": {\"StageName\": \"Negotiation/Review\"},
  \"record\": {\"Id\": \"0065g00000DEMo1AAH\", \"Name\": \"Acme Corp - Q3 Enterprise\", \"StageName\": \"Closed Won\"}}" >/dev/null
echo "the DM Riley got:"
wait_for "$slack/_emulator/messages?channel=D0RILEY001" 'StageName\*\\n[^"]*' | head -1

echo "== Riley opens the Home tab (app_home_opened → views.publish)"
curl -s -X POST "$slack/_emulator/event" -H 'Content-Type: application/json' \
  --data "{\"url\": \"$app/slack/events\", \"signing_secret\": \"$SECRET\", \"type\": \"app_home_opened\",
           \"user\": \"$RILEY\"}" >/dev/null
wait_for "$slack/_emulator/home/$RILEY" '\*[a-z]*\* health' | head -2
curl -s "$slack/_emulator/home/$RILEY" | grep -o 'Connected as [^"*\\]*\|token valid' | sort | uniq -c
