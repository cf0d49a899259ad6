# Shared by scripts/serve and scripts/test: make .venv with mailbag installed.
# Usage: . scripts/bootstrap.sh [EXTRAS]   (sourced; sets VENV)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MAILBAG_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@";
  else return 1; fi
}

apt_install() {
  # Installs Debian packages when we may; otherwise says what is missing.
  command -v apt-get >/dev/null 2>&1 || { echo "bootstrap: no apt-get; install by hand: $*" >&2; return 0; }
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "bootstrap: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq || true
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || echo "bootstrap: could not install ${missing[*]}; tests that need them will be skipped" >&2
}

if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q -e "$ROOT${1:+[$1]}"
