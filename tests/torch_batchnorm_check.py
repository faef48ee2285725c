#!/usr/bin/python3
"""Reference for tests/test_batchnorm.c: torch.nn.BatchNorm2d and BatchNorm1d
in train mode for three batches, then in eval mode.

    /usr/bin/python3 tests/torch_batchnorm_check.py OUTDIR

writes OUTDIR/bn.safetensors (F32). For each case P in "bn2d" (x [4, 3, 5, 6])
and "bn1d" (x [8, 5]):
  P.x0, P.x1, P.x2       the three training batches
  P.weight, P.bias       the affine parameters (random, not 1 and 0)
  P.r                    R: the loss of each step is sum(y * R)
  P.y0                   the output of the first step
  P.dx0, P.dweight0, P.dbias0   its gradients
  P.running_mean, P.running_var the buffers after the three steps
  P.eval_y               eval mode on x0 after them
"""
import sys
import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_safetensors import save_safetensors  # noqa: E402


def case(prefix, bn, shape, out):
    channels = shape[1]
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels) + 0.5)
        bn.bias.copy_(torch.rand(channels) - 0.5)
    out[prefix + ".weight"] = bn.weight.clone()
    out[prefix + ".bias"] = bn.bias.clone()
    r = torch.randn(shape)
    out[prefix + ".r"] = r
    bn.train()
    for step in range(3):
        # An offset and a scale per channel, so the statistics are not 0 and 1.
        x = torch.randn(shape) * 2.0 + 0.7
        x.requires_grad_(True)
        out[f"{prefix}.x{step}"] = x.detach().clone()
        bn.zero_grad()
        y = bn(x)
        (y * r).sum().backward()
        if step == 0:
            out[prefix + ".y0"] = y.detach().clone()
            out[prefix + ".dx0"] = x.grad.clone()
            out[prefix + ".dweight0"] = bn.weight.grad.clone()
            out[prefix + ".dbias0"] = bn.bias.grad.clone()
    assert int(bn.num_batches_tracked) == 3
    out[prefix + ".running_mean"] = bn.running_mean.clone()
    out[prefix + ".running_var"] = bn.running_var.clone()
    bn.eval()
    with torch.no_grad():
        out[prefix + ".eval_y"] = bn(out[prefix + ".x0"])


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: torch_batchnorm_check.py OUTDIR")
    torch.manual_seed(0)
    out = {}
    case("bn2d", torch.nn.BatchNorm2d(3), (4, 3, 5, 6), out)
    case("bn1d", torch.nn.BatchNorm1d(5), (8, 5), out)
    save_safetensors(sys.argv[1] + "/bn.safetensors", out)


if __name__ == "__main__":
    main()
