#!/usr/bin/env bash
# Tests of the deployment tooling itself (run by `make k8s-validate`), each on a temporary copy
# of the parts of the checkout it needs, so the checkout is never changed:
#
#   overlays_build_without_flags   `kubectl kustomize` (what `kubectl apply -k` runs) builds
#                                  k8s/overlays/prod and dev with no load-restrictor flag
#   new_route_makes_config_stale   a route added to routes/ makes `k8s-config.sh --check` fail,
#                                  naming the file; regenerating fixes it and the rendered
#                                  ConfigMap then carries the new route
#   generated_config_is_deterministic  two runs of the generator write the same bytes
#   missing_redis_is_named         `make test` without redis-server says in one line what to
#                                  install (when it may not install it itself)
#
# Needs kubectl (its embedded kustomize v5), or KUSTOMIZE_BIN pointing at a kustomize v5 binary.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

# The kustomize that `kubectl apply -k` embeds, with default (restricting) options.
kustomize_build() { # dir
  if [ -n "${KUSTOMIZE_BIN:-}" ]; then "$KUSTOMIZE_BIN" build "$1"; else kubectl kustomize "$1"; fi
}

# A copy of what the deployment files read: k8s/, routes/, templates/, scripts/.
copy_tree() { # dest
  mkdir -p "$1"
  cp -r "$ROOT/k8s" "$ROOT/routes" "$ROOT/templates" "$ROOT/scripts" "$1/"
}

run() { # name
  local out="$WORK/$1.out" rc
  # A plain statement, not a condition: bash ignores `set -e` inside `if`, `||` and `&&`, and
  # each test relies on it to stop at its first failing command.
  ( set -e; "$1" ) > "$out" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1)); echo "ok: $1"
  else
    failed=$((failed + 1)); echo "FAILED: $1"; sed 's/^/    /' "$out"
  fi
}

overlays_build_without_flags() {
  local overlay
  for overlay in prod dev; do
    kustomize_build "$ROOT/k8s/overlays/$overlay" > "$WORK/$overlay.yaml"
    grep -q '^kind: Deployment' "$WORK/$overlay.yaml"
    grep -q 'name: sfrelay-routes-' "$WORK/$overlay.yaml"
    grep -q 'name: sfrelay-templates-' "$WORK/$overlay.yaml"
  done
}

new_route_makes_config_stale() {
  local tree="$WORK/stale"
  copy_tree "$tree"
  cp "$tree/routes/high-value-lead.toml" "$tree/routes/zz-added-route.toml"
  if "$tree/scripts/k8s-config.sh" --root "$tree" --check > "$WORK/check.out" 2>&1; then
    echo "k8s-config.sh --check passed with a route missing from k8s/base/generated"; return 1
  fi
  grep -q 'zz-added-route.toml' "$WORK/check.out" \
    || { echo "the failure does not name the new file:"; cat "$WORK/check.out"; return 1; }
  grep -q 'make k8s-config' "$WORK/check.out" \
    || { echo "the failure does not say how to fix it:"; cat "$WORK/check.out"; return 1; }
  "$tree/scripts/k8s-config.sh" --root "$tree" > /dev/null
  "$tree/scripts/k8s-config.sh" --root "$tree" --check > /dev/null
  kustomize_build "$tree/k8s/overlays/prod" > "$WORK/stale-prod.yaml"
  grep -q '^  zz-added-route.toml: ' "$WORK/stale-prod.yaml" \
    || { echo "the rendered routes ConfigMap lacks the new route"; return 1; }
  # A removed template is noticed too.
  rm "$tree/templates/high-value-lead.json"
  ! "$tree/scripts/k8s-config.sh" --root "$tree" --check > /dev/null 2>&1
}

generated_config_is_deterministic() {
  local a="$WORK/det-a" b="$WORK/det-b"
  copy_tree "$a"
  copy_tree "$b"
  # Files created in another order must not change the output.
  ( cd "$b/routes" && for f in $(ls -r); do cp "$f" "$f.tmp" && rm "$f" && mv "$f.tmp" "$f"; done )
  "$a/scripts/k8s-config.sh" --root "$a" > /dev/null
  "$b/scripts/k8s-config.sh" --root "$b" > /dev/null
  diff -r "$a/k8s/base/generated" "$b/k8s/base/generated"
  # …and what is committed is what the generator writes.
  diff -r "$a/k8s/base/generated" "$ROOT/k8s/base/generated"
}

missing_redis_is_named() {
  # A PATH with the tools the check needs but no redis-server.
  local bin="$WORK/bin" tool
  mkdir -p "$bin"
  for tool in bash sh env dirname id cat; do ln -sf "$(command -v "$tool")" "$bin/$tool"; done
  local rc=0
  PATH="$bin" SFRELAY_NO_INSTALL=1 "$ROOT/scripts/ensure-redis.sh" > "$WORK/redis.out" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || { echo "ensure-redis.sh succeeded without redis-server"; return 1; }
  [ "$(wc -l < "$WORK/redis.out")" -eq 1 ] || { echo "not one line:"; cat "$WORK/redis.out"; return 1; }
  grep -q 'redis-server' "$WORK/redis.out" && grep -q 'apt-get install' "$WORK/redis.out"
  # With redis-server on the PATH it passes quietly.
  ln -sf "$(command -v redis-server)" "$bin/redis-server"
  PATH="$bin" SFRELAY_NO_INSTALL=1 "$ROOT/scripts/ensure-redis.sh"
}

run overlays_build_without_flags
run new_route_makes_config_stale
run generated_config_is_deterministic
run missing_redis_is_named
echo "test-deploy: $passed passed, $failed failed"
[ "$failed" = 0 ]
