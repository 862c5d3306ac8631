#!/usr/bin/env bash
# Installs what the offline book and its browser test need, from Debian's archive (run as root):
#   chromium + chromium-driver  the headless browser of `make browser-test`
#   libjs-mathjax, fonts-mathjax MathJax 2.7, which `make book` copies into the HTML (offline math)
#   npm                          fetches the widget manager and require.js for the browser test
# Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ -f /usr/share/javascript/mathjax/MathJax.js ] || need+=(libjs-mathjax fonts-mathjax)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -eq 0 ]; then
  echo "install_browser: chromium, chromedriver, MathJax and npm are already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
chromium --version
