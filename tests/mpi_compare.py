"""Helpers of tests/mpi_check.sh, standard library only:

  mpi_compare.py subset SRC DST NTRAIN NTEST   the first images of an MNIST-format set
  mpi_compare.py weights A B TOL               two .safetensors files hold the same
                                               tensors within TOL (absolute, float32)
  mpi_compare.py logs A B TOL                  two --log CSV files agree: the same records,
                                               losses and accuracies within TOL
"""
import array
import gzip
import json
import math
import os
import struct
import sys


def subset(src, dst, ntrain, ntest):
    os.makedirs(dst, exist_ok=True)
    for split, n in (("train", ntrain), ("t10k", ntest)):
        for kind, item in (("images-idx3-ubyte", 28 * 28), ("labels-idx1-ubyte", 1)):
            with gzip.open(os.path.join(src, f"{split}-{kind}.gz")) as f:
                data = f.read()
            dims = data[3]
            header = bytearray(data[: 4 + 4 * dims])
            struct.pack_into(">I", header, 4, n)
            with gzip.open(os.path.join(dst, f"{split}-{kind}.gz"), "wb") as f:
                f.write(bytes(header) + data[len(header): len(header) + n * item])


def load_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8: 8 + n])
    body = blob[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        lo, hi = info["data_offsets"]
        a = array.array("f")
        a.frombytes(body[lo:hi])
        if sys.byteorder != "little":
            a.byteswap()
        tensors[name] = a
    return tensors


def weights(a, b, tol):
    ta, tb = load_safetensors(a), load_safetensors(b)
    if sorted(ta) != sorted(tb):
        sys.exit(f"{a} and {b} hold different tensors: {sorted(ta)} and {sorted(tb)}")
    worst, where = 0.0, ""
    for name in ta:
        for i, (x, y) in enumerate(zip(ta[name], tb[name])):
            if not (abs(x - y) <= worst):
                worst, where = abs(x - y), f"{name}[{i}] {x} vs {y}"
    print(f"weights {a} vs {b}: largest difference {worst:.3g} ({where})")
    if not worst <= tol:
        sys.exit(f"weights differ by more than {tol}")


def logs(a, b, tol):
    def rows(path):
        with open(path) as f:
            lines = f.read().split("\n")
        keys = lines[0].split(",")
        return [dict(zip(keys, line.split(","))) for line in lines[1:] if line]

    ra, rb = rows(a), rows(b)
    if [(r["kind"], r["step"]) for r in ra] != [(r["kind"], r["step"]) for r in rb]:
        sys.exit(f"{a} and {b} hold different records")
    worst = 0.0
    for x, y in zip(ra, rb):
        for key in ("train_loss", "test_loss", "test_accuracy", "lr"):
            if (x[key] == "") != (y[key] == ""):
                sys.exit(f"step {x['step']}: {key} is '{x[key]}' in {a}, '{y[key]}' in {b}")
            if x[key] == "":
                continue
            d = abs(float(x[key]) - float(y[key]))
            if math.isnan(d) or d > tol:
                sys.exit(f"step {x['step']}: {key} {x[key]} in {a}, {y[key]} in {b}")
            worst = max(worst, d)
    print(f"logs {a} vs {b}: {len(ra)} records, largest difference {worst:.3g}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "subset":
        subset(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "weights":
        weights(args[0], args[1], float(args[2]))
    elif cmd == "logs":
        logs(args[0], args[1], float(args[2]))
    else:
        sys.exit(__doc__)
