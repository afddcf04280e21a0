#!/usr/bin/env bash
# System packages the test suite needs beyond pip: a Java runtime (pycocoevalcap's
# PTBTokenizer and METEOR), Debian's chromium (the leaderboard's browser test, driven by
# Playwright; never `playwright install`) and a CJK font with fontconfig, so Chinese
# predictions render as text, not boxes, in headless screenshots. Installs only what is
# missing, without recommended packages (chromium alone would pull ~130).
# As root it runs apt-get itself; otherwise it uses sudo if there is one, and says what to
# run if there is not.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v fc-match >/dev/null 2>&1 || need+=(fontconfig)
if ! { command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh family 2>/dev/null | grep -q .; }; then
  need+=(fonts-noto-cjk)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_test_deps: missing ${need[*]} and no apt-get here; install them with your package manager" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  echo "install_test_deps: installing ${need[*]} with sudo (it may ask for your password)" >&2
  SUDO=(sudo)
else
  echo "install_test_deps: missing ${need[*]}; not root and no sudo here. As root, run:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi
${SUDO[@]+"${SUDO[@]}"} apt-get update -qq
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
