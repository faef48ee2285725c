#!/bin/sh
# Data-parallel training under mpirun, as tests/test_mpi.c runs it (a build
# with MPI): 2 and 4 ranks train LeNet-5 on a Fashion-MNIST subset with
# global batch 64 and end with the weights, the per-step losses and the
# test-set figures of one process; a checkpoint written by 2 ranks resumes
# on 4 and ends where the uninterrupted run does; and the faults end the
# job with a message instead of a hang: a rank with other data, a rank
# killed, a rank that stops answering (--mpi-timeout).
# usage: tests/mpi_check.sh TMPDIR
set -eu
tmp=$1
nabla=$PWD/${BUILD:-build}/nabla
export OMP_NUM_THREADS=1
# Open MPI keeps memory to the end by design: its plugins stay loaded and
# stacks are unwound in full, so that the sanitizer build's leak report can
# name them and be told to skip them (tests/lsan_mpi.supp); nabla's own
# leaks are still reported.
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan_mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
mpirun="mpirun --oversubscribe -x OMP_NUM_THREADS"
[ "$(id -u)" -ne 0 ] || mpirun="$mpirun --allow-run-as-root"
data=$tmp/data
python3 tests/mpi_compare.py subset /usr/share/datasets/fashion-mnist "$data" 2000 1000
common="--model lenet5 --data $data --batch 64 --threads 1 --seed 3 --lr 0.05 --schedule constant --quiet"
fail() { echo "mpi_check: $*"; exit 1; }

# A nabla built without MPI (this build's objects, distributed.c compiled
# without NB_HAVE_MPI) refuses to run as one of several processes.
cc=${NB_CC:-cc}
cp "${BUILD:-build}/libnabla.a" "$tmp/nompi.a"
$cc -std=c11 -fopenmp -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L -c src/nn/distributed.c -o "$tmp/distributed.o"
ar r "$tmp/nompi.a" "$tmp/distributed.o" 2>/dev/null
# shellcheck disable=SC2086
$cc -fopenmp ${NB_LDFLAGS:-} -o "$tmp/nabla-nompi" "${BUILD:-build}"/tools/*.o "$tmp/nompi.a" \
    $(pkg-config --libs cairo fontconfig zlib libpng libjpeg libcjson) -lm
rc=0
$mpirun -np 2 "$tmp/nabla-nompi" train $common --steps 2 >"$tmp/outn" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "built without MPI.*apt-get install libopenmpi-dev openmpi-bin" "$tmp/outn" ||
    { cat "$tmp/outn"; fail "a build without MPI under mpirun: exit $rc"; }
"$tmp/nabla-nompi" train $common --steps 1 --no-test >/dev/null || fail "a build without MPI does not train alone"
echo "mpi_check: without MPI: $(grep -m1 -o 'built without MPI[^:]*' "$tmp/outn")"

# One process, then 2, 3 (unequal shards: 21, 21, 22) and 4 ranks: the same
# 12 steps.
"$nabla" train $common --steps 12 --save "$tmp/w1.safetensors" --log "$tmp/l1.csv" --log-every 1 >"$tmp/out1"
for n in 2 3 4; do
    $mpirun -np $n "$nabla" train $common --steps 12 --save "$tmp/w$n.safetensors" \
        --log "$tmp/l$n.csv" --log-every 1 >"$tmp/out$n" 2>&1 || { cat "$tmp/out$n"; fail "-np $n failed"; }
    grep -q "; $n ranks" "$tmp/out$n" || fail "-np $n: no '$n ranks' in the header"
    [ "$(grep -c '^epoch ' "$tmp/out$n")" -eq 1 ] || fail "-np $n: more than rank 0 printed"
    python3 tests/mpi_compare.py weights "$tmp/w1.safetensors" "$tmp/w$n.safetensors" 2e-5
    python3 tests/mpi_compare.py logs "$tmp/l1.csv" "$tmp/l$n.csv" 2e-4
done

# A global batch of 3 on 4 ranks: one rank has no sample in each step and
# still takes part in every sum.
"$nabla" train $common --batch 3 --steps 5 --no-test --save "$tmp/s1.safetensors" >/dev/null
$mpirun -np 4 "$nabla" train $common --batch 3 --steps 5 --no-test --save "$tmp/s4.safetensors" \
    >"$tmp/outs" 2>&1 || { cat "$tmp/outs"; fail "batch 3 on 4 ranks failed"; }
python3 tests/mpi_compare.py weights "$tmp/s1.safetensors" "$tmp/s4.safetensors" 2e-5

# Buckets reduced while backward runs hold the sums of the same buckets
# reduced after it, to the bit (LeNet-5's 247 KB in buckets of 16 KB).
for how in overlap after-backward; do
    $mpirun -np 4 "$nabla" train $common --steps 4 --no-test --mpi-reduce $how --mpi-bucket-kb 16 \
        --save "$tmp/b-$how.safetensors" >"$tmp/outb" 2>&1 || { cat "$tmp/outb"; fail "--mpi-reduce $how failed"; }
done
cmp "$tmp/b-overlap.safetensors" "$tmp/b-after-backward.safetensors" || fail "overlap changed the sums"

# A checkpoint after 6 steps on 2 ranks, resumed on 4 for the other 6.
$mpirun -np 2 "$nabla" train $common --steps 6 --no-test --checkpoint "$tmp/c.safetensors" >"$tmp/outc" 2>&1 ||
    { cat "$tmp/outc"; fail "the 2-rank run to checkpoint failed"; }
$mpirun -np 4 "$nabla" train $common --steps 12 --resume "$tmp/c.safetensors" --save "$tmp/wr.safetensors" \
    >"$tmp/outr" 2>&1 || { cat "$tmp/outr"; fail "resuming on 4 ranks failed"; }
python3 tests/mpi_compare.py weights "$tmp/w1.safetensors" "$tmp/wr.safetensors" 2e-5
grep "^epoch" "$tmp/out1" | sed 's/  [0-9]* img.*//' >"$tmp/epoch1"
grep "^epoch" "$tmp/outr" | sed 's/  [0-9]* img.*//' >"$tmp/epochr"
cmp -s "$tmp/epoch1" "$tmp/epochr" || fail "the resumed run reports $(cat "$tmp/epochr"), one process $(cat "$tmp/epoch1")"

# The faults. A wrapper gives rank 1 its own way to fail.
python3 tests/mpi_compare.py subset /usr/share/datasets/fashion-mnist "$tmp/small" 1000 1000
cat >"$tmp/rank1.sh" <<EOF
#!/bin/sh
# rank 1: \$1 is what to do differently
what=\$1; shift
[ "\$OMPI_COMM_WORLD_RANK" = 1 ] || exec "\$@"
case \$what in
other-data) exec "\$@" --data "$tmp/small" ;;
die) (sleep 2; kill -9 \$\$) & exec "\$@" ;;
hang) (sleep 2; kill -STOP \$\$) & exec "\$@" ;;
term) (sleep 2; kill -TERM \$\$) & exec "\$@" ;;
esac
EOF
chmod +x "$tmp/rank1.sh"
expect_failure() { # NAME MESSAGE-PATTERN COMMAND...
    name=$1 pattern=$2; shift 2
    rc=0
    timeout 120 "$@" >"$tmp/fault" 2>&1 || rc=$?
    [ $rc -ne 0 ] || { cat "$tmp/fault"; fail "$name: the job succeeded"; }
    [ $rc -ne 124 ] || { cat "$tmp/fault"; fail "$name: the job hung"; }
    grep -q "$pattern" "$tmp/fault" || { cat "$tmp/fault"; fail "$name: no message like '$pattern'"; }
    echo "mpi_check: $name: exit $rc, $(grep -m1 "$pattern" "$tmp/fault")"
}
expect_failure "a rank with other data" "rank 1 has 1000 images" \
    $mpirun -np 2 "$tmp/rank1.sh" other-data "$nabla" train $common --steps 4 --no-test
expect_failure "a rank killed" "rank 1.*signal 9" \
    $mpirun -np 2 "$tmp/rank1.sh" die "$nabla" train $common --epochs 50 --no-test
expect_failure "a rank that hangs" "rank 0 of 2: .* waited more than 3 s" \
    $mpirun -np 2 "$tmp/rank1.sh" hang "$nabla" train $common --epochs 50 --no-test --mpi-timeout 3
# A rank that cannot read an image of its shard (a truncated PGM, in the
# training set, then in the test set) ends the job at that step: the others
# learn of it in the step's sums and stop at once, well before the watchdog.
bad_folder() { # DIR SPLIT-WITH-THE-BAD-IMAGE
    for split in train val; do
        for c in 0 1; do
            mkdir -p "$1/$split/class$c"
            for i in 0 1 2 3 4 5 6 7 8 9 10 11; do
                { printf 'P5\n28 28\n255\n'; head -c 784 /dev/zero | tr '\0' "\\$((c * 377))"; } \
                    >"$1/$split/class$c/$i.pgm"
            done
        done
    done
    printf 'P5\n28 28\n255\nshort' >"$1/$2/class1/5.pgm"
}
bad_folder "$tmp/bad_train" train
expect_failure "a rank that cannot read its batch" "the training step failed on 1 of 2 ranks" \
    $mpirun -np 2 "$nabla" train --model logreg --classes 2 --data "$tmp/bad_train" --batch 4 --epochs 1 \
    --no-test --mpi-timeout 100 --threads 1 --quiet
grep -q "class1/5.pgm" "$tmp/fault" || { cat "$tmp/fault"; fail "the failing rank did not name the image"; }
bad_folder "$tmp/bad_val" val
expect_failure "a rank that cannot read a test image" "the test-set evaluation failed on 1 of 2 ranks" \
    $mpirun -np 2 "$nabla" train --model logreg --classes 2 --data "$tmp/bad_val" --batch 4 --epochs 1 \
    --mpi-timeout 100 --threads 1 --quiet
# SIGTERM to one rank stops them all after the same step, with a
# checkpoint, which then resumes on 3 ranks.
rc=0
timeout 120 $mpirun -np 2 "$tmp/rank1.sh" term "$nabla" train $common --epochs 50 --no-test \
    --checkpoint "$tmp/stop.safetensors" >"$tmp/outt" 2>&1 || rc=$?
[ $rc -eq 143 ] || { cat "$tmp/outt"; fail "SIGTERM to rank 1: exit $rc, expected 143"; }
grep -q "SIGTERM: stopped after step" "$tmp/outt" || { cat "$tmp/outt"; fail "SIGTERM to rank 1: no stop message"; }
step=$(sed -n 's/.*SIGTERM: stopped after step \([0-9]*\).*/\1/p' "$tmp/outt")
$mpirun -np 3 "$nabla" train $common --steps $((step + 2)) --no-test --resume "$tmp/stop.safetensors" \
    >"$tmp/outt3" 2>&1 || { cat "$tmp/outt3"; fail "resuming the stopped run on 3 ranks failed"; }
echo "mpi_check: SIGTERM to rank 1 stopped both ranks after step $step; resumed on 3 ranks"
echo "mpi_check: all passed"
