"""safetensors files for the PyTorch reference scripts (tests/torch_*.py),
written and read by hand so that they need only torch and numpy: an 8-byte
little-endian header length, the JSON header, then the raw little-endian
data. F32 tensors, and I64 ones (batch norm's num_batches_tracked)."""
import json, struct
import numpy as np
import torch


def save_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, t in tensors.items():
        t = t.detach().contiguous()
        if t.dtype == torch.int64:
            blob, dtype = t.numpy().astype("<i8").tobytes(), "I64"
        else:
            blob, dtype = t.float().numpy().astype("<f4").tobytes(), "F32"
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        lo, hi = e["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[lo:hi], dtype=dt).copy()).reshape(e["shape"])
    return out
