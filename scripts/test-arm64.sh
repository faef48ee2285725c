#!/bin/sh
# Cross-build nabla for arm64 (aarch64) and run the test suite under
# qemu-user, one thread, ending with the usual "N passed, N failed" line.
#   sh scripts/install-cross-deps.sh     once, to install what this needs
#   sh scripts/test-arm64.sh             the named subset below (CI runs it)
#   sh scripts/test-arm64.sh --all       every test program (takes far longer)
#   sh scripts/test-arm64.sh test_conv   the programs named
# CC (default aarch64-linux-gnu-gcc) and BUILD (default build-arm64) pick the
# compiler and the build folder, as for make.
#
# Why a subset: under emulation the plain loops run 20-50 times slower than
# natively, and the command-line tests train models through `nabla`. The
# subset keeps every kernel test (GEMM, the fast paths, convolution,
# pooling, elementwise, matmul), the lecture examples, and every test
# program that finishes in seconds; it leaves out the programs that train
# through the CLI and the PyTorch comparison (x86 python cannot check an
# emulated build): test_alexnet_train test_bench_cli test_cli test_cli_robust
# test_torch_match.
#
# Why one thread: under qemu-user here, a guest's first pthread_create never
# returns, so OMP_NUM_THREADS=1 keeps OpenMP from starting threads, and
# NB_TEST_MAX_THREADS=1 makes the tests that compare 1 and 2 threads compare
# two runs on one thread instead (tests/support.h, test_threads).
set -eu
cd "$(dirname "$0")/.."
CC=${CC:-aarch64-linux-gnu-gcc}
BUILD=${BUILD:-build-arm64}
SUBSET="test_conv test_dataset test_dropout test_elementwise test_fast_paths test_gemm test_graph
        test_idx test_image test_lecture test_matmul test_model test_netfile test_optimizer test_pool
        test_safetensors test_softmax_loss test_training test_views test_loader test_folder"

case "${1:-}" in
    --all) programs=$(ls tests/test_*.c | sed 's|tests/\(.*\)\.c|\1|') ;;
    "") programs=$SUBSET ;;
    *) programs="$*" ;;
esac

command -v qemu-aarch64 >/dev/null || { echo "test-arm64: qemu-aarch64 missing: run scripts/install-cross-deps.sh" >&2; exit 1; }
start=$(date +%s)
make -j"$(nproc)" CC="$CC" BUILD="$BUILD" all tests

# Tests that run $BUILD/nabla or $BUILD/tests/header_example go through the
# host's /bin/sh, which cannot start an arm64 program by itself: they get
# $BUILD/qemu, where each of those is a script that starts it under qemu.
export QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}
wrap="$BUILD/qemu"
mkdir -p "$wrap/tests"
for prog in nabla tests/header_example; do
    printf '#!/bin/sh\nexec qemu-aarch64 "%s" "$@"\n' "$(pwd)/$BUILD/$prog" > "$wrap/$prog"
    chmod +x "$wrap/$prog"
done

tests=""
for p in $programs; do tests="$tests $BUILD/tests/$p"; done
echo "test-arm64: $CC, under qemu-aarch64, one thread:$programs" | tr -s ' \n' ' '
echo
# The suite's closing "N passed, N failed" line stays last: it is held back
# while the time taken is printed.
log="$BUILD/test-arm64.log"
{ OMP_NUM_THREADS=1 NB_TEST_MAX_THREADS=1 NB_SKIP_TORCH=1 BUILD="$wrap" TEST_RUNNER=qemu-aarch64 \
      sh tests/run.sh $tests; echo "$?" > "$log.rc"; } 2>&1 | tee "$log" | sed '$d'
echo "test-arm64: $(( $(date +%s) - start )) s with the build"
tail -n 1 "$log"
exit "$(cat "$log.rc")"
