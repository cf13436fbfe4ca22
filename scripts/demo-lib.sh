# Shared by the demo scripts (sourced): a scratch folder and the processes to stop on exit,
# redis-server on $REDIS_PORT, waiting for sfrelay's /readyz, and polling for an answer.

dir=$(mktemp -d)
pids=""
cleanup() {
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# Starts a process in the background and stops it on exit: `spawn <output file> <command…>`.
spawn() {
  local out=$1
  shift
  "$@" >"$out" 2>&1 &
  pids="$pids $!"
}

start_redis() {
  spawn /dev/null redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir"
}

# Waits (at most 10 s) for sfrelay on $PORT to be ready; shows its log if it never is.
wait_ready() {
  for _ in $(seq 100); do
    curl -sf "localhost:$PORT/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "sfrelay did not start:"
  cat "$dir/sfrelay.log"
  exit 1
}

# Polls until `curl $1` prints something matching $2 (at most 5 s); prints the match.
wait_for() {
  for _ in $(seq 50); do
    if curl -s "$1" | grep -o "$2"; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $2 at $1" >&2
  return 1
}
