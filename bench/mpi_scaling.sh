#!/bin/sh
# The README's data-parallel figures: bench/mpi_overlap for LeNet-5 and
# AlexNet in one process at 1, 2 and 4 threads, and on 2 and 4 ranks of 1
# thread each with every way of reducing the gradients (a build with MPI).
#     sh bench/mpi_scaling.sh [lenet5 steps, default 200] [alexnet steps, default 6]
set -eu
bench=${BUILD:-build}/bench/mpi_overlap
mpirun="mpirun --oversubscribe -x OMP_NUM_THREADS=1"
[ "$(id -u)" -ne 0 ] || mpirun="$mpirun --allow-run-as-root"
for model in lenet5 alexnet; do
    steps=${1:-200}
    [ $model = lenet5 ] || steps=${2:-6}
    for threads in 1 2 4; do OMP_NUM_THREADS=$threads $bench $model "$steps"; done
    for ranks in 2 4; do $mpirun -np $ranks $bench $model "$steps"; done
done
