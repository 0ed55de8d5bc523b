#!/usr/bin/env bash
# Debian's chromium for the report's browser test (tests/test_report.py). playwright drives it through
# executable_path=/usr/bin/chromium, so playwright's own browser download is never needed.
set -euo pipefail
if command -v chromium >/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
