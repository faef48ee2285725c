#!/usr/bin/env python3
"""The PyTorch side of bench/compare.py: one workload, timed, one JSON line.

Runs under Debian's python3-torch (/usr/bin/python3) or any other Python
with torch. The models are the ones nabla builds (LeNet-5 and torchvision's
AlexNet, defined inline, and torchvision's ResNet-18), at PyTorch's best setting on this CPU for the
Debian build: OPENBLAS_CORETYPE=SkylakeX and one OpenBLAS thread (set by
compare.py), torch.set_num_threads(T).

    torch_peer.py lenet_train --threads 2 --batch 64
    torch_peer.py lenet_infer --threads 1 --batch 256
    torch_peer.py alexnet_train --threads 2 --batch 8
    torch_peer.py alexnet_infer --threads 2 --batch 8
    torch_peer.py resnet18_train --threads 2 --batch 16
    torch_peer.py resnet18_infer --threads 2 --batch 16
    torch_peer.py sgemm --threads 1
"""
import argparse, ctypes, json, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def alexnet(classes=1000):
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(),
        nn.Dropout(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
        nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, classes))


def set_blas_threads(n):
    """Debian's torch forwards BLAS to OpenBLAS, whose thread count torch does not set."""
    for lib in ("libopenblas.so.0", "libopenblasp-r0.3.21.so"):
        try:
            ctypes.CDLL(lib).openblas_set_num_threads(n)
            return
        except (OSError, AttributeError):
            pass


def median_rate(fn, items, reps, warmup=2):
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        rates.append(items / (time.perf_counter() - t))
    return statistics.median(rates)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=["lenet_train", "lenet_infer", "alexnet_train", "alexnet_infer",
                                          "resnet18_train", "resnet18_infer", "sgemm"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    set_blas_threads(1)
    torch.manual_seed(0)
    out = {"workload": a.workload, "threads": a.threads, "batch": a.batch, "torch": torch.__version__}

    if a.workload.startswith("lenet"):
        model = lenet5()
        steps = 60 if a.workload == "lenet_train" else 120
        x = torch.rand(steps * a.batch, 1, 28, 28)
        y = torch.randint(0, 10, (steps * a.batch,))
        if a.workload == "lenet_train":
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

            def run():
                for i in range(steps):
                    xb, yb = x[i * a.batch:(i + 1) * a.batch], y[i * a.batch:(i + 1) * a.batch]
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(model(xb), yb).backward()
                    opt.step()
        else:
            def run():
                with torch.no_grad():
                    for i in range(steps):
                        model(x[i * a.batch:(i + 1) * a.batch])
        out["images_per_s"] = median_rate(run, steps * a.batch, a.reps)
    elif a.workload.startswith(("alexnet", "resnet18")):
        if a.workload.startswith("alexnet"):
            model = alexnet()
        else:
            import torchvision
            model = torchvision.models.resnet18(num_classes=1000)
        x = torch.randn(a.batch, 3, 224, 224)
        y = torch.randint(0, 1000, (a.batch,))
        if a.workload == "alexnet_train":
            model.train()

            def run():
                model.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
        elif a.workload == "resnet18_train":
            # A whole training step, as nabla bench's "training" figure:
            # forward, backward and the SGD update.
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

            def run():
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()
        else:
            model.eval()

            def run():
                with torch.no_grad():
                    model(x)
        rate = median_rate(run, a.batch, a.reps + 2, warmup=1)
        out["images_per_s"] = rate
        out["ms_per_batch"] = 1000.0 * a.batch / rate
    else:
        n = 1024
        A, B = torch.rand(n, n), torch.rand(n, n)
        rate = median_rate(lambda: [torch.mm(A, B) for _ in range(10)], 10, a.reps + 2)
        out["gflops"] = rate * 2 * n ** 3 / 1e9
    print(json.dumps(out))


if __name__ == "__main__":
    main()
