#!/bin/sh
# Install what nabla needs to build and train, from Debian 12's packages:
# a C compiler and make, pkg-config, zlib, libpng, libjpeg-turbo, cJSON, cairo (the tool's
# pictures) and Fashion-MNIST. What only the tests need comes with the test
# command: scripts/install-test-deps.sh, which `make check` runs.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential make pkg-config \
    zlib1g-dev libpng-dev libjpeg62-turbo-dev libcjson-dev libcairo2-dev \
    dataset-fashion-mnist
