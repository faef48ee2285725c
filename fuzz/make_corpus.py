#!/usr/bin/env python3
"""Write the fuzzers' seed corpus: small valid files of every format the
readers take (standard library only). Run from the repository root."""
import gzip, json, os, struct, zlib

def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

# IDX: unsigned bytes, 1-D labels and a 3-D image stack, plain and gzipped.
labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + bytes([9, 0, 0, 3, 0])
images = bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 4, 4) + bytes(range(32))
put("fuzz/corpus/idx/labels.idx", labels)
put("fuzz/corpus/idx/images.idx", images)
put("fuzz/corpus/idx/images.idx.gz", gzip.compress(images, mtime=0))

# safetensors: the tensors the fuzz target asks for, with metadata.
def safetensors(tensors, meta):
    header, blob = {"__metadata__": meta}, b""
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        data = struct.pack("<%df" % n, *[0.5 * i for i in range(n)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob

put("fuzz/corpus/safetensors/lenet_part.safetensors",
    safetensors([("conv1.weight", [6, 1, 5, 5]), ("conv1.bias", [6]), ("x", [2, 2])], {"format": "pt"}))
put("fuzz/corpus/safetensors/small.safetensors", safetensors([("x", [2, 2])], {}))

# Images: an 8x8 gray PNG, an 8x8 RGB PNG, 28x28 binary and ASCII PGMs.
def png(width, height, color_type, channels):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + bytes((x * 31 + y * 7 + c) % 256 for x in range(width) for c in range(channels))
                    for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")

put("fuzz/corpus/image/gray8.png", png(8, 8, 0, 1))
put("fuzz/corpus/image/rgb8.png", png(8, 8, 2, 3))
put("fuzz/corpus/image/digit.pgm", b"P5\n# a comment\n28 28\n255\n" + bytes(i % 256 for i in range(28 * 28)))
put("fuzz/corpus/image/small.pgm", b"P2\n2 2\n15\n0 5\n10 15\n")

# CIFAR: two CIFAR-10 records and one CIFAR-100 record (fuzz_cifar tries
# every input as both).
put("fuzz/corpus/cifar/cifar10.bin", bytes([3]) + bytes(range(256)) * 12 + bytes([9]) + bytes(3072))
put("fuzz/corpus/cifar/cifar100.bin", bytes([7, 42]) + bytes((i * 7) % 256 for i in range(3072)))

# JPEGs need an encoder: written with Pillow when it is installed
# (python3-pil), else the committed ones stay.
try:
    from PIL import Image
    gradient = Image.frombytes("RGB", (16, 12), bytes((x * 16 + c * 60 + y * 5) % 256
                                                      for y in range(12) for x in range(16) for c in range(3)))
    os.makedirs("fuzz/corpus/image", exist_ok=True)
    gradient.save("fuzz/corpus/image/rgb.jpg", quality=80)
    gradient.save("fuzz/corpus/image/progressive.jpg", quality=60, progressive=True)
    gradient.convert("L").resize((28, 28)).save("fuzz/corpus/image/gray28.jpg", quality=90)
except ImportError:
    pass

# Image folders: images joined by "\n--\n" (fuzz_folder.c splits there;
# each file's first byte places it in train/ or val/ and in class a or b).
def corpus(name):
    with open("fuzz/corpus/image/" + name, "rb") as f:
        return f.read()
if os.path.exists("fuzz/corpus/image/rgb.jpg"):
    put("fuzz/corpus/folder/mixed", b"\n--\n".join(corpus(n) for n in
        ["gray8.png", "rgb.jpg", "small.pgm", "progressive.jpg"]))
put("fuzz/corpus/folder/pgms", b"\n--\n".join(corpus(n) for n in ["digit.pgm", "small.pgm"]))
