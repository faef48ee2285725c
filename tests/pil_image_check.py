#!/usr/bin/python3
"""Fixtures for tests/test_jpeg.c, written into DIR with Pillow and
torchvision: images in several encodings, and what Pillow decodes them to,
what Image.resize(BILINEAR) makes of them, and what torchvision's
Resize(S) + CenterCrop(size) gives. Raw files are the bytes of
numpy.asarray(image): height x width (x 3) uint8."""
import sys

import numpy as np
from PIL import Image
import torchvision.transforms as T

out = sys.argv[1]
h, w = 45, 61
y, x = np.mgrid[0:h, 0:w]
rng = np.random.default_rng(11)
rgb = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + rng.integers(0, 40, (h, w, 3))
rgb = np.clip(rgb, 0, 255).astype(np.uint8)
img = Image.fromarray(rgb, "RGB")
img.save(out + "/base.jpg", quality=90)
img.save(out + "/prog.jpg", quality=85, progressive=True)
img.save(out + "/s444.jpg", quality=95, subsampling=0)
img.convert("L").save(out + "/gray.jpg", quality=90)
img.save(out + "/rgb.png")
img.rotate(90, expand=True).save(out + "/tall.jpg", quality=90)

for name in ["base.jpg", "prog.jpg", "s444.jpg", "gray.jpg", "rgb.png", "tall.jpg"]:
    im = Image.open(out + "/" + name)
    im.load()
    np.asarray(im).tofile("%s/%s.raw" % (out, name))
    for (rw, rh) in [(20, 15), (100, 80), (7, 90), (1, 1), (61, 45), (33, 33)]:
        np.asarray(im.resize((rw, rh), Image.BILINEAR)).tofile("%s/%s.%dx%d.raw" % (out, name, rw, rh))
    for (channels, size, resize) in [(3, 28, 0), (1, 28, 0), (3, 40, 50), (3, 24, 24), (1, 16, 20)]:
        s = resize or round(size / 0.875)
        src = im.convert("RGB" if channels == 3 else "L")
        t = T.Compose([T.Resize(s), T.CenterCrop(size)])
        np.asarray(t(src)).tofile("%s/%s.eval%d_%d_%d.raw" % (out, name, channels, size, resize))
    # RandomResizedCrop's output for given boxes: F.resized_crop, as
    # RandomResizedCrop applies it after drawing (top, left, height, width).
    for (channels, top, left, ch, cw, size) in [(3, 3, 5, 30, 40, 24), (1, 0, 0, 45, 61, 28),
                                                (3, 10, 2, 12, 9, 32), (3, 1, 1, 20, 20, 20)]:
        # The box clamped into the image (tall.jpg is 45 wide).
        h0, w0 = min(ch, im.size[1]), min(cw, im.size[0])
        t0, l0 = min(top, im.size[1] - h0), min(left, im.size[0] - w0)
        src = im.convert("RGB" if channels == 3 else "L")
        crop = T.functional.resized_crop(src, t0, l0, h0, w0, [size, size],
                                         interpolation=T.InterpolationMode.BILINEAR)
        np.asarray(crop).tofile("%s/%s.rrc%d_%d_%d_%d_%d_%d.raw" % (out, name, channels, top, left,
                                                                   ch, cw, size))
