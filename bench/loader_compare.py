#!/usr/bin/python3
"""nabla's loader beside torchvision's: images/s over the same JPEG folder.

Writes N JPEGs of 500x375 (photo-like: smooth colour fields, edges and
grain, quality 90) into DIR/train/<class>/ with Pillow, once, then for each
worker count runs, interleaved for --reps rounds:

  nabla:  build/bench/loader_bench DIR --workers W --threads 1
  torch:  ImageFolder(DIR/train, RandomResizedCrop(224), RandomHorizontalFlip(),
          ToTensor(), Normalize(ImageNet)) through DataLoader(batch 32,
          num_workers=W, shuffle), torch.set_num_threads(1)

Both decode, crop and resize with the same filters (nabla's are Pillow's,
bit for bit), flip and normalise, one epoch each. Prints the medians and the
ratio, one row per worker count.

    /usr/bin/python3 bench/loader_compare.py                      # 512 images, 1 and 2 workers, 3 rounds
    /usr/bin/python3 bench/loader_compare.py --images 1024 --reps 5 --dir /tmp/jpegs
    /usr/bin/python3 bench/loader_compare.py --alexnet      # training from the folder vs from memory

--alexnet instead trains AlexNet (10 classes, batch 32, 2 threads, rrc and
flip, a few steps) from the JPEG folder with --workers 1 and from the same
images held in memory (a 4-D IDX file of them resized to 3x224x224, the
model's input, where rrc crops and resizes the held image), interleaved, and
prints both training speeds and their ratio: loading should hide behind
compute.
"""
import argparse, json, os, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TORCH_SIDE = r"""
import sys, time, torch, torchvision.transforms as T
from torchvision.datasets import ImageFolder
from torch.utils.data import DataLoader
torch.set_num_threads(1)
root, workers = sys.argv[1], int(sys.argv[2])
t = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
               T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
loader = DataLoader(ImageFolder(root + "/train", transform=t), batch_size=32, shuffle=True,
                    num_workers=workers)
t0 = time.perf_counter()
n = sum(x.shape[0] for x, _ in loader)
print(n / (time.perf_counter() - t0))
"""


def write_jpegs(root, count):
    import numpy as np
    from PIL import Image
    marker = os.path.join(root, "train", ".complete-%d" % count)
    if os.path.exists(marker):
        return
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:375, 0:500].astype(np.float32)
    for i in range(count):
        d = os.path.join(root, "train", "class%d" % (i % 10))
        os.makedirs(d, exist_ok=True)
        fx, fy, ph = rng.uniform(0.005, 0.03, 3), rng.uniform(0.005, 0.03, 3), rng.uniform(0, 6, 3)
        img = np.stack([127 + 100 * np.sin(fx[c] * x + fy[c] * y + ph[c]) for c in range(3)], -1)
        img[(x - rng.uniform(0, 500)) ** 2 + (y - rng.uniform(0, 375)) ** 2 < rng.uniform(30, 120) ** 2] *= 0.5
        img += rng.normal(0, 8, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(d, "%05d.jpg" % i), quality=90)
    open(marker, "w").close()


def write_idx(root, count):
    """The folder's images at 3x224x224 (Pillow's resize) as MNIST-style
    4-D IDX files in root/idx, labels by class folder."""
    import struct
    import numpy as np
    from PIL import Image
    out = os.path.join(root, "idx")
    if os.path.exists(os.path.join(out, "train-labels-idx1-ubyte")):
        return out
    os.makedirs(out, exist_ok=True)
    images, labels = [], []
    for i in range(count):
        path = os.path.join(root, "train", "class%d" % (i % 10), "%05d.jpg" % i)
        im = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
        images.append(np.asarray(im).transpose(2, 0, 1))
        labels.append(i % 10)
    with open(os.path.join(out, "train-images-idx3-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 8, 4]) + struct.pack(">IIII", count, 3, 224, 224) + np.stack(images).tobytes())
    with open(os.path.join(out, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", count) + bytes(labels))
    return out


def train_speed(build, data, extra, steps):
    cmd = [os.path.join(build, "nabla"), "train", "--model", "alexnet", "--classes", "10",
           "--data", data, "--augment", "rrc,flip", "--batch", "32", "--threads", "2",
           "--steps", str(steps), "--no-test", "--quiet"] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    # The epoch line's training time ("... 6 img/s  25.3 s"): images over it,
    # with more digits than the line's own rate.
    line = [l for l in out.splitlines() if "img/s" in l][-1]
    return steps * 32 / float(line.split("img/s")[1].split()[0])


def alexnet(a):
    idx = write_idx(a.dir, a.images)
    folder, memory = [], []
    for _ in range(a.reps):
        folder.append(train_speed(a.build, a.dir, ["--workers", "1"], a.steps))
        memory.append(train_speed(a.build, idx, [], a.steps))
    f, m = statistics.median(folder), statistics.median(memory)
    print("AlexNet training, batch 32, 2 threads, %d steps, median of %d interleaved runs:" % (a.steps, a.reps))
    print("| data | images/s |\n|---|---|")
    print("| JPEG folder, --workers 1 | %.1f |\n| in memory (IDX) | %.1f |" % (f, m))
    print("folder / memory: %.3f" % (f / m))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/nabla-loader-jpegs")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--alexnet", action="store_true")
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    write_jpegs(a.dir, a.images)
    if a.alexnet:
        return alexnet(a)
    bench = os.path.join(a.build, "bench", "loader_bench")
    print("%d JPEGs of 500x375 to 3x224x224 (rrc, flip, normalise), batch 32, 1 thread; "
          "median of %d interleaved rounds, images/s" % (a.images, a.reps))
    print("| workers | nabla | torchvision | ratio |\n|---|---|---|---|")
    for w in [int(v) for v in a.workers.split(",")]:
        ours, theirs = [], []
        for _ in range(a.reps):
            out = subprocess.run([bench, a.dir, "--workers", str(w), "--threads", "1", "--json"],
                                 check=True, capture_output=True, text=True).stdout
            ours.append(json.loads(out)["images_per_s"])
            out = subprocess.run(["/usr/bin/python3", "-c", TORCH_SIDE, a.dir, str(w)], check=True,
                                 capture_output=True, text=True).stdout
            theirs.append(float(out.split()[-1]))
        n, t = statistics.median(ours), statistics.median(theirs)
        print("| %d | %.0f | %.0f | %.2fx |" % (w, n, t, n / t))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
