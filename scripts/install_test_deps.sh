#!/usr/bin/env bash
# System packages the test suite needs beyond pip: a Java runtime (pycocoevalcap's
# PTBTokenizer and METEOR) and Debian's chromium (the leaderboard's browser test,
# driven by Playwright; never `playwright install`). Installs only what is missing.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_test_deps: missing ${need[*]} and no apt-get here; install them by hand" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
