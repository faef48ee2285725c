#!/usr/bin/python3
"""Write Fashion-MNIST (or any MNIST-format IDX pair) as torchvision ImageFolder
trees: OUT/train/<class>/00001.png ... and OUT/val/<class>/...

Class folders are named "<label>_<name>" so that their sorted order is the
label order, and an image folder gives the same labels as the IDX files.

  scripts/fashion_mnist_folders.py OUT [--data DIR] [--limit N] [--format png|jpg]
                                   [--size S] [--quality Q] [--splits train,val]

--size S writes the images resized to SxS (Pillow bilinear), --limit N only
the first N images of each split. Needs python3-pil.
"""
import argparse
import gzip
import os
import struct

from PIL import Image

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
         "Sneaker", "Bag", "Ankle boot"]


def folder_name(label):
    return "%d_%s" % (label, NAMES[label].replace("/", "-").replace(" ", "_"))


def read_idx(path):
    if not os.path.exists(path) and os.path.exists(path[:-3]):
        path = path[:-3]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--format", choices=["png", "jpg"], default="png")
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--splits", default="train,val")
    a = ap.parse_args()
    for split in a.splits.split(","):
        prefix = "train" if split == "train" else "t10k"
        (n, h, w), pixels = read_idx(os.path.join(a.data, prefix + "-images-idx3-ubyte.gz"))
        _, labels = read_idx(os.path.join(a.data, prefix + "-labels-idx1-ubyte.gz"))
        if a.limit:
            n = min(n, a.limit)
        for label in range(10):
            os.makedirs(os.path.join(a.out, split, folder_name(label)), exist_ok=True)
        for i in range(n):
            im = Image.frombytes("L", (w, h), pixels[i * h * w:(i + 1) * h * w])
            if a.size:
                im = im.resize((a.size, a.size), Image.BILINEAR)
            path = os.path.join(a.out, split, folder_name(labels[i]), "%05d.%s" % (i + 1, a.format))
            if a.format == "jpg":
                im.save(path, quality=a.quality)
            else:
                im.save(path)
        print("%s: %d images in %s" % (split, n, os.path.join(a.out, split)))


if __name__ == "__main__":
    main()
