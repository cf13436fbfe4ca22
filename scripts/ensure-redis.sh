#!/usr/bin/env bash
# Makes sure redis-server is on the PATH: the integration tests spawn their own on free ports.
# Installs Debian's package when it can do so without asking (root, or password-less sudo, and
# apt-get present); otherwise says in one line what to install. SFRELAY_NO_INSTALL=1 never
# installs (then it only checks).
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0

hint="redis-server is missing (the tests spawn it): install it, e.g. \`sudo apt-get install redis-server\` or \`brew install redis\`"
if [ "${SFRELAY_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1; then
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo_cmd=(sudo -n); else
      echo "$hint" >&2; exit 1
    fi
  fi
  echo "installing redis-server (Debian package) for the tests"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q redis-server
  command -v redis-server >/dev/null 2>&1 && exit 0
fi
echo "$hint" >&2
exit 1
