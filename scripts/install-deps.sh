#!/bin/sh
# Install what nabla needs to build, test and train, from Debian 12's
# packages: compilers, zlib, libpng, cJSON, cmocka, OpenMP, the sanitizer
# runtime, Fashion-MNIST, and Debian's PyTorch (tests compare against it).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential make pkg-config clang libomp-dev libclang-rt-14-dev libcairo2-dev \
    zlib1g-dev libpng-dev libcjson-dev libcmocka-dev \
    dataset-fashion-mnist python3 python3-numpy python3-torch
