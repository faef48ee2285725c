#!/bin/sh
# Install what cross-building and testing nabla for arm64 (aarch64) needs,
# from Debian 12's packages: the aarch64 cross gcc (its libgomp comes with
# it), clang's aarch64 target (clang itself is in install-deps.sh), the arm64
# multiarch -dev packages nabla links, and qemu-user to run the results.
# Safe to run again: adding an architecture twice and installing what is
# installed are no-ops. Run scripts/test-arm64.sh afterwards.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -qq
# The :arm64 libraries sit beside the amd64 ones (Multi-Arch: same) and must
# be the same version as them, so the amd64 -dev packages come along.
$SUDO apt-get install -y -qq --no-install-recommends \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross clang lld qemu-user \
    zlib1g-dev zlib1g-dev:arm64 libpng-dev libpng-dev:arm64 \
    libcjson-dev libcjson-dev:arm64 libcmocka-dev libcmocka-dev:arm64 \
    libjpeg62-turbo-dev libjpeg62-turbo-dev:arm64 \
    libcairo2-dev libcairo2-dev:arm64 libfontconfig-dev libfontconfig-dev:arm64
