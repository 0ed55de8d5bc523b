#!/usr/bin/env bash
# Installs the Debian data package for Fashion-MNIST when we can (root, apt available).
# Never fails the setup: the tests do not need it, and the loaders say what to install when missing.
set -u
if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing dataset-fashion-mnist (Debian) ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
    || echo "warning: could not install dataset-fashion-mnist; Fashion-MNIST tasks will say how to get the data"
else
  echo "note: run 'sudo apt-get install dataset-fashion-mnist' for the Fashion-MNIST tasks"
fi
exit 0
