#!/usr/bin/env python3
"""nabla against PyTorch on the CPU: the table of GitHub issue 4.

Runs nabla (`nabla bench --json`, bench/gemm_bench --json, bench/fma_peak
--json, a one-epoch `nabla train`) and PyTorch (bench/torch_peer.py under
Debian's /usr/bin/python3 with OPENBLAS_CORETYPE set from the CPU, and under
/opt/torch-pypi/bin/python when it exists) on the same workloads, same
threads and batch, interleaved (nabla, torch, torch-pypi, then again) for
--reps repetitions, and prints one row per target with the medians:

    workload | nabla | each torch | ratio vs the stronger torch | target | met?

    python3 bench/compare.py                  # build/, 3 repetitions
    python3 bench/compare.py --build build-perf --reps 5 --json run1.json
    python3 bench/compare.py --merge run1.json run2.json run3.json
    python3 bench/compare.py --isa avx2       # both sides limited to AVX2
    python3 bench/compare.py --only resnet18  # only the ResNet-18 rows
    python3 bench/compare.py --dry-run        # print the commands, run none

OpenBLAS's core type follows the CPU: SkylakeX with AVX-512, Haswell with
AVX2, unset otherwise. --isa avx2 runs nabla with NABLA_ISA=avx2 and PyTorch
with ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2 and OpenBLAS Haswell,
so the AVX2 table can be measured on an AVX-512 machine.

--merge prints the table of several saved runs, each figure the median of
the runs' medians. Timings on a shared machine are noisy: quote medians and
ratios, never a single run.
"""
import argparse, collections, json, os, shlex, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER = os.path.join(HERE, "torch_peer.py")
TORCHES = [("torch", "/usr/bin/python3"), ("torch-pypi", "/opt/torch-pypi/bin/python")]
DRY_RUN = False  # --dry-run: print each command with its environment instead


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_coretype(isa, flags):
    """OpenBLAS's kernel set for the CPU (or the forced ISA); None leaves it unset."""
    if isa == "avx2" or (isa is None and "avx512f" not in flags and {"avx2", "fma"} <= flags):
        return "Haswell"
    if isa is None and "avx512f" in flags:
        return "SkylakeX"
    return None


def nabla_env(isa):
    return {"NABLA_ISA": isa} if isa else {}


def torch_env(isa, flags):
    env = {}
    core = openblas_coretype(isa, flags)
    if core:
        env["OPENBLAS_CORETYPE"] = core
    if isa == "avx2":
        env.update({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})
    return env


def show(cmd, env):
    print(" ".join(["%s=%s" % kv for kv in sorted((env or {}).items())] + [shlex.quote(c) for c in cmd]))


def run_json(cmd, env=None, timeout=900):
    """Run a command that prints one JSON line (the last line is taken)."""
    if DRY_RUN:
        show(cmd, env)
        fake = collections.defaultdict(float)
        fake["images_per_s"] = 0.0
        return fake
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()[-400:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def peak_rss_kb(cmd, env=None):
    """Peak resident set of a child process, from its own rusage."""
    if DRY_RUN:
        show(cmd, env)
        return 0
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, **(env or {})))
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.read().decode()[-400:]))
    return ru.ru_maxrss


# nabla bench runs: (key, model, batch, threads, extra args)
NABLA_RUNS = [("lenet_b64_t1", "lenet5", 64, 1, []), ("lenet_b64_t2", "lenet5", 64, 2, []),
              ("lenet_b256_t1", "lenet5", 256, 1, []), ("lenet_b256_t2", "lenet5", 256, 2, []),
              ("alexnet_b8_t1", "alexnet", 8, 1, ["--steps", "2"]),
              ("alexnet_b8_t2", "alexnet", 8, 2, ["--steps", "2"]),
              ("resnet18_b16_t2", "resnet18", 16, 2, ["--steps", "1", "--rounds", "3"])]
# torch_peer.py runs: (key, workload, threads, batch)
TORCH_RUNS = [("lenet_train_t1", "lenet_train", 1, 64), ("lenet_train_t2", "lenet_train", 2, 64),
              ("lenet_infer_b64_t1", "lenet_infer", 1, 64), ("lenet_infer_b64_t2", "lenet_infer", 2, 64),
              ("lenet_infer_b256_t1", "lenet_infer", 1, 256), ("lenet_infer_b256_t2", "lenet_infer", 2, 256),
              ("alexnet_train_t1", "alexnet_train", 1, 8), ("alexnet_train_t2", "alexnet_train", 2, 8),
              ("alexnet_infer_t2", "alexnet_infer", 2, 8),
              ("resnet18_train_t2", "resnet18_train", 2, 16), ("resnet18_infer_t2", "resnet18_infer", 2, 16),
              ("sgemm_t1", "sgemm", 1, 0)]
# The model each run belongs to, for --only: the key's first word.
MODELS = ("lenet", "alexnet", "resnet18", "sgemm")


def model_of(key):
    return key.split("_", 1)[0]


def measure(args):
    """One repetition of everything, interleaved; returns {source: {key: value}}."""
    nabla = os.path.join(args.build, "nabla")
    flags = cpu_flags()
    nenv = nabla_env(args.isa)
    torches = [(name, py, torch_env(args.isa, flags)) for name, py in TORCHES
               if os.path.exists(py) and not (args.no_pypi and name == "torch-pypi")]
    out = {"nabla": {}}
    for name, _, _ in torches:
        out[name] = {}
    wanted = set(args.only or MODELS)
    nabla_runs = [r for r in NABLA_RUNS if model_of(r[0]) in wanted]
    torch_runs = [r for r in TORCH_RUNS if model_of(r[0]) in wanted]
    # Interleave: one nabla run, then the matching-size torch runs, so a
    # drift in the machine's speed touches both sides alike.
    for i in range(max(len(nabla_runs), len(torch_runs))):
        if i < len(nabla_runs):
            key, model, batch, threads, extra = nabla_runs[i]
            r = run_json([nabla, "bench", "--model", model, "--batch", str(batch), "--threads", str(threads),
                          "--json", "--no-layers"] + extra, nenv)
            out["nabla"][key] = r
            print("  nabla %-14s train %9.1f  fwd+bwd %9.1f  infer %9.1f img/s" % (
                key, r["train_images_per_s"], r["fwdbwd_images_per_s"], r["infer_images_per_s"]),
                file=sys.stderr, flush=True)
        if i < len(torch_runs):
            key, workload, threads, batch = torch_runs[i]
            for name, py, env in torches:
                cmd = [py, PEER, workload, "--threads", str(threads)]
                if batch:
                    cmd += ["--batch", str(batch)]
                r = run_json(cmd, env)
                out[name][key] = r
                fig = r.get("images_per_s", r.get("gflops"))
                print("  %-10s %-20s %9.1f" % (name, key, fig), file=sys.stderr, flush=True)
    if "sgemm" not in wanted:
        return out
    g = run_json([os.path.join(args.build, "bench", "gemm_bench"), "--json", "0.5"], nenv)
    p = run_json([os.path.join(args.build, "bench", "fma_peak"), "--json", "0.5"], nenv)
    out["nabla"]["sgemm"] = g
    out["nabla"]["fma_peak"] = p
    print("  nabla sgemm %.1f GFLOP/s, FMA peak %.1f GFLOP/s" % (g["gflops_1t"], p["fma_peak_gflops"]),
          file=sys.stderr, flush=True)
    if not args.no_rss and "lenet" in wanted:
        rss = peak_rss_kb([nabla, "train", "--model", "lenet5", "--epochs", "1", "--no-test", "--threads", "2"], nenv)
        out["nabla"]["rss_kb"] = rss
        print("  nabla peak RSS of a LeNet-5 epoch: %.1f MB" % (rss / 1024), file=sys.stderr, flush=True)
    return out


def rows_of(m):
    """The table from one set of figures m[source][key] -> number; a row
    whose figures were not measured (--only) is left out."""
    n = m["nabla"]
    srcs = [s for s in m if s != "nabla"]

    def torch_fig(key):
        return [m[s].get(key) for s in srcs]

    def have(*keys):
        return all(n.get(k) is not None for k in keys)

    rows = []

    def speed(label, nkey, key, target):
        if not have(nkey):
            return
        nv = n[nkey]
        t = [x for x in torch_fig(key) if x is not None]
        best = max(t) if t else None
        ratio = nv / best if best else None
        rows.append((label, nv, torch_fig(key), ratio, ">= %.1fx" % target, ratio is not None and ratio >= target,
                     "img/s"))

    def scaling(label, two, one, tkey2, tkey1):
        if not have(two, one):
            return
        s1 = n[two] / n[one]
        ts = [a / b if a and b else None for a, b in zip(torch_fig(tkey2), torch_fig(tkey1))]
        rows.append((label, s1, ts, None, ">= 1.7x", s1 >= 1.7, "x"))

    speed("LeNet-5 train b64 1t", "lenet_b64_t1.train", "lenet_train_t1", 2.0)
    speed("LeNet-5 train b64 2t", "lenet_b64_t2.train", "lenet_train_t2", 3.0)
    if have("lenet_b64_t2.train"):
        epoch = 60000.0 / n["lenet_b64_t2.train"]
        tt = [60000.0 / x if x else None for x in torch_fig("lenet_train_t2")]
        rows.append(("LeNet-5 epoch 60k, 2t (s)", epoch, tt, None, "< 1.5 s", epoch < 1.5, "s"))
    speed("LeNet-5 infer b64 1t", "lenet_b64_t1.infer", "lenet_infer_b64_t1", 3.0)
    speed("LeNet-5 infer b64 2t", "lenet_b64_t2.infer", "lenet_infer_b64_t2", 3.0)
    speed("LeNet-5 infer b256 1t", "lenet_b256_t1.infer", "lenet_infer_b256_t1", 3.0)
    speed("LeNet-5 infer b256 2t", "lenet_b256_t2.infer", "lenet_infer_b256_t2", 3.0)
    speed("AlexNet fwd+bwd b8 2t", "alexnet_b8_t2.fwdbwd", "alexnet_train_t2", 1.5)
    speed("AlexNet infer b8 2t", "alexnet_b8_t2.infer", "alexnet_infer_t2", 1.3)
    # A whole step on both sides: forward, backward and the SGD update.
    speed("ResNet-18 train b16 2t", "resnet18_b16_t2.train", "resnet18_train_t2", 1.3)
    speed("ResNet-18 infer b16 2t", "resnet18_b16_t2.infer", "resnet18_infer_t2", 1.3)
    if have("sgemm_1t", "fma_peak"):
        pct = 100.0 * n["sgemm_1t"] / n["fma_peak"]
        rows.append(("SGEMM 1024^3 1t (GFLOP/s)", n["sgemm_1t"], torch_fig("sgemm_t1"),
                     None, ">= 85%% of %.0f" % n["fma_peak"], pct >= 85.0, "GFLOP/s"))
        rows.append(("  SGEMM % of FMA peak", pct,
                     [100.0 * x / n["fma_peak"] if x else None for x in torch_fig("sgemm_t1")],
                     None, ">= 85%", pct >= 85.0, "%"))
    scaling("Scaling 2t/1t LeNet-5 train", "lenet_b64_t2.train", "lenet_b64_t1.train", "lenet_train_t2",
            "lenet_train_t1")
    scaling("Scaling 2t/1t AlexNet fwd+bwd", "alexnet_b8_t2.fwdbwd", "alexnet_b8_t1.fwdbwd", "alexnet_train_t2",
            "alexnet_train_t1")
    if have("rss_mb"):
        rows.append(("Peak RSS, LeNet-5 epoch (MB)", n["rss_mb"], [None] * len(srcs), None, "<= 100 MB",
                     n["rss_mb"] <= 100.0, "MB"))
    if have("allocs"):
        rows.append(("Allocations per train step", n["allocs"], [None] * len(srcs), None, "0", n["allocs"] == 0,
                     "count"))
    return srcs, rows


def flatten(rep):
    """One repetition's raw JSON -> {source: {figure: number}}."""
    f = {"nabla": {}}
    for key, r in rep["nabla"].items():
        if key.startswith(("lenet", "alexnet", "resnet18")):
            f["nabla"][key + ".train"] = r["train_images_per_s"]
            f["nabla"][key + ".fwdbwd"] = r["fwdbwd_images_per_s"]
            f["nabla"][key + ".infer"] = r["infer_images_per_s"]
    benches = [r for r in rep["nabla"].values() if isinstance(r, dict) and "allocs_per_train_step" in r]
    if benches:
        f["nabla"]["allocs"] = max(r["allocs_per_train_step"] for r in benches)
    if "sgemm" in rep["nabla"]:
        f["nabla"]["sgemm_1t"] = rep["nabla"]["sgemm"]["gflops_1t"]
        f["nabla"]["fma_peak"] = rep["nabla"]["fma_peak"]["fma_peak_gflops"]
    if "rss_kb" in rep["nabla"]:
        f["nabla"]["rss_mb"] = rep["nabla"]["rss_kb"] / 1024.0
    for src, figs in rep.items():
        if src == "nabla":
            continue
        f[src] = {k: r.get("images_per_s", r.get("gflops")) for k, r in figs.items()}
    return f


def median_of(flats):
    out = {}
    for src in flats[0]:
        out[src] = {}
        for key in flats[0][src]:
            vals = [f[src][key] for f in flats if f.get(src, {}).get(key) is not None]
            out[src][key] = statistics.median(vals) if vals else None
    return out


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "img/s":
        return "%.0f" % v if v >= 100 else "%.1f" % v
    if unit == "x":
        return "%.2fx" % v
    if unit == "count":
        return "%d" % v
    if unit == "%":
        return "%.1f%%" % v
    return "%.2f" % v if v < 100 else "%.1f" % v


def print_table(m, note):
    srcs, rows = rows_of(m)
    head = ["workload", "nabla"] + srcs + ["ratio", "target", "met?"]
    lines = []
    for label, nv, tv, ratio, target, met, unit in rows:
        lines.append([label, fmt(nv, unit)] + [fmt(x, unit) for x in tv] +
                     ["%.2fx" % ratio if ratio is not None else "", target, "yes" if met else "NO"])
    widths = [max(len(str(r[i])) for r in lines + [head]) for i in range(len(head))]
    print(note)
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in lines:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    met = sum(1 for r in rows if r[5])
    print("%d of %d targets met" % (met, len(rows)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="nabla's build directory")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument("--no-pypi", action="store_true", help="skip /opt/torch-pypi")
    ap.add_argument("--no-rss", action="store_true", help="skip the full-epoch peak-RSS run")
    ap.add_argument("--json", help="save the raw figures of every repetition here")
    ap.add_argument("--merge", nargs="+", metavar="RUN.json", help="print the median table of saved runs")
    ap.add_argument("--isa", choices=["avx2"], help="limit both sides to this instruction set")
    ap.add_argument("--only", nargs="+", choices=MODELS, help="measure only these workloads' rows")
    ap.add_argument("--dry-run", action="store_true", help="print one repetition's commands, run nothing")
    args = ap.parse_args()
    if args.dry_run:
        global DRY_RUN
        DRY_RUN = True
        measure(args)
        return
    if args.merge:
        runs = [json.load(open(p)) for p in args.merge]
        per_run = [median_of([flatten(rep) for rep in r["reps"]]) for r in runs]
        print_table(median_of(per_run), "median of %d runs (each the median of its repetitions)" % len(runs))
        return
    reps = []
    for i in range(args.reps):
        print("repetition %d of %d" % (i + 1, args.reps), file=sys.stderr, flush=True)
        reps.append(measure(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "reps": reps}, f)
    print_table(median_of([flatten(r) for r in reps]), "median of %d repetitions" % len(reps))


if __name__ == "__main__":
    main()
