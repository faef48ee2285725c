#!/bin/sh
# Data-parallel training across two hosts, as tests/test_mpi.c runs it: two
# network namespaces joined by a veth pair (10.77.0.1 and 10.77.0.2) stand
# for two machines, Open MPI's TCP transport carries the ranks' traffic
# between them, and a launcher agent stands in for ssh (it enters the
# host's namespace). The 2-rank run must end with one process's weights
# and losses. Exits 77 (skipped) where it cannot make namespaces: not
# root, or no `ip netns`.
# usage: tests/mpi_hosts_check.sh TMPDIR
set -eu
tmp=$1
nabla=$PWD/${BUILD:-build}/nabla
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null 2>&1; then
    echo "mpi_hosts_check: skipped: making network namespaces needs root and ip (iproute2)"
    exit 77
fi
host0=nabla-h0-$$ host1=nabla-h1-$$
cleanup() {
    ip netns del "$host0" 2>/dev/null || true
    ip netns del "$host1" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! ip netns add "$host0" 2>/dev/null; then
    echo "mpi_hosts_check: skipped: ip netns add fails here (no network namespaces)"
    exit 77
fi
ip netns add "$host1"
ip link add nbveth0 netns "$host0" type veth peer name nbveth1 netns "$host1"
ip -n "$host0" addr add 10.77.0.1/24 dev nbveth0
ip -n "$host1" addr add 10.77.0.2/24 dev nbveth1
for h in "$host0" "$host1"; do
    ip -n "$h" link set lo up
done
ip -n "$host0" link set nbveth0 up
ip -n "$host1" link set nbveth1 up

# What ssh would do: run the command line mpirun gives (a shell command)
# on the named host, here inside its namespace.
cat >"$tmp/agent.sh" <<EOF
#!/bin/sh
case \$1 in
10.77.0.1) ns=$host0 ;;
10.77.0.2) ns=$host1 ;;
*) echo "agent: unknown host \$1" >&2; exit 1 ;;
esac
shift
exec ip netns exec \$ns sh -c "\$*"
EOF
chmod +x "$tmp/agent.sh"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' >"$tmp/hostfile"

export OMP_NUM_THREADS=1
# Open MPI keeps memory to the end by design: its plugins stay loaded and
# stacks are unwound in full, so that the sanitizer build's leak report can
# name them and be told to skip them (tests/lsan_mpi.supp); nabla's own
# leaks are still reported.
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan_mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
data=$tmp/data
[ -d "$data" ] || python3 tests/mpi_compare.py subset /usr/share/datasets/fashion-mnist "$data" 2000 1000
common="--model lenet5 --data $data --batch 64 --threads 1 --seed 3 --lr 0.05 --schedule constant --quiet"
"$nabla" train $common --steps 8 --save "$tmp/h1.safetensors" --log "$tmp/h1.csv" --log-every 1 >/dev/null
mpirun="mpirun --allow-run-as-root --hostfile $tmp/hostfile -np 2 -x OMP_NUM_THREADS
    --mca plm_rsh_agent $tmp/agent.sh --mca pml ob1 --mca btl tcp,self
    --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24"
# The ranks say where they run: the first address of their namespace.
timeout 120 ip netns exec "$host0" $mpirun sh -c 'echo "rank $OMPI_COMM_WORLD_RANK on $(ip -4 -o addr show nbveth0 2>/dev/null; ip -4 -o addr show nbveth1 2>/dev/null)"' \
    >"$tmp/where" 2>&1 || { cat "$tmp/where"; echo "mpi_hosts_check: mpirun across the namespaces failed"; exit 1; }
grep -q "rank 0 on .*10.77.0.1/24" "$tmp/where" && grep -q "rank 1 on .*10.77.0.2/24" "$tmp/where" ||
    { cat "$tmp/where"; echo "mpi_hosts_check: the ranks are not one per host"; exit 1; }
timeout 120 ip netns exec "$host0" $mpirun "$nabla" train $common --steps 8 --save "$tmp/h2.safetensors" \
    --log "$tmp/h2.csv" --log-every 1 >"$tmp/hosts.out" 2>&1 ||
    { cat "$tmp/hosts.out"; echo "mpi_hosts_check: training across the namespaces failed"; exit 1; }
python3 tests/mpi_compare.py weights "$tmp/h1.safetensors" "$tmp/h2.safetensors" 2e-5
python3 tests/mpi_compare.py logs "$tmp/h1.csv" "$tmp/h2.csv" 2e-4
echo "mpi_hosts_check: 2 ranks on 2 hosts (10.77.0.1, 10.77.0.2) over TCP train as one process"
