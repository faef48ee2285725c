#!/bin/sh
# Install what nabla needs to build, test and train, from Debian 12's
# packages: compilers, zlib, libpng, libjpeg-turbo, cJSON, cmocka, OpenMP,
# the sanitizer runtime, Fashion-MNIST, and Debian's PyTorch, Pillow and
# torchvision (tests compare against them).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential make pkg-config clang libomp-dev libclang-rt-14-dev \
    zlib1g-dev libpng-dev libjpeg62-turbo-dev libcjson-dev libcmocka-dev \
    dataset-fashion-mnist python3 python3-numpy python3-torch
# test-only: Pillow and torchvision, the references for JPEG decoding, the
# resize and the eval transform (tests/pil_image_check.py), and the writer
# of Fashion-MNIST image folders (scripts/fashion_mnist_folders.py); torchvision also for the built-in
# resnet18 (tests/torch_resnet18_check.py).
$SUDO apt-get install -y -qq --no-install-recommends python3-pil python3-torchvision
