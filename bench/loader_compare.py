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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/nabla-loader-jpegs")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    write_jpegs(a.dir, a.images)
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
