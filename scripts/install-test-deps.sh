#!/bin/sh
# Install what only the tests need (`make check` runs this first): cmocka;
# clang with its OpenMP and sanitizer/libFuzzer runtimes (the ASan+UBSan
# suite and the fuzzers); Debian's PyTorch, Pillow and torchvision, which make the reference
# numbers the tests compare against; Open MPI, so that the build the tests make
# has data-parallel training and the tests run it under mpirun (building and
# training need no MPI). Does nothing when all are installed.
set -eu
PACKAGES="libcmocka-dev clang libomp-dev libclang-rt-14-dev python3 python3-numpy python3-torch python3-pil python3-torchvision libopenmpi-dev openmpi-bin"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "installing the test dependencies:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
