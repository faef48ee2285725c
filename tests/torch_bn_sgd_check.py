#!/usr/bin/python3
"""Reference for tests/test_bn_training.c: five SGD-with-momentum steps on a
small batch-normalised network, in PyTorch.

    /usr/bin/python3 tests/torch_bn_sgd_check.py OUTDIR

The network is tests/test_bn_training.c's BN_NET:
    conv (4@3x3, pad 1, no bias) -> bn (BatchNorm2d) -> relu -> flatten
    -> fc1 (256 -> 16, no bias) -> bn1 (BatchNorm1d) -> relu -> fc (16 -> 3)
on 1x8x8 inputs. Writes to OUTDIR:
  init.safetensors   the state_dict before training (torch.manual_seed(0))
  data.safetensors   x [40, 1, 8, 8] (five batches of eight, in order), labels [5, 8]
                     (floats)
  final.safetensors  the state_dict after five steps of
                     SGD(lr=0.1, momentum=0.9, weight_decay=1e-3), train mode
  final_smooth.safetensors   the same with F.cross_entropy(label_smoothing=0.1)
  final_nodecay.safetensors  weight_decay=0.05 with biases and batch norm
                     parameters in a group of their own with weight_decay 0
  final_decay.safetensors    weight_decay=0.05 on everything (the contrast)
and in data.safetensors "lrs" [10]: SGD(lr=0.1)'s learning rate at each of ten
steps under SequentialLR(LinearLR(start_factor=1/4, total_iters=4),
CosineAnnealingLR(T_max=6), milestones=[4]): nabla's --warmup 4 over 10 steps
"""
import copy, sys, warnings
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_safetensors import save_safetensors  # noqa: E402


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(256, 16, bias=False)
        self.bn1 = nn.BatchNorm1d(16)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = torch.flatten(F.relu(self.bn(self.conv(x))), 1)
        return self.fc(F.relu(self.bn1(self.fc1(x))))


def train(net, x, labels, weight_decay=1e-3, label_smoothing=0.0, no_decay_norm_bias=False):
    params = net.parameters()
    if no_decay_norm_bias:
        # The recipe's two groups: biases and batch norm parameters undecayed.
        norm_bias = [p for n, p in net.named_parameters() if n.endswith(".bias") or n.startswith("bn")]
        rest = [p for n, p in net.named_parameters() if not (n.endswith(".bias") or n.startswith("bn"))]
        params = [{"params": rest}, {"params": norm_bias, "weight_decay": 0.0}]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=weight_decay)
    net.train()
    for step in range(5):
        opt.zero_grad()
        F.cross_entropy(net(x[step]), labels[step], label_smoothing=label_smoothing).backward()
        opt.step()
    return net.state_dict()


def warmup_lrs():
    """--warmup 4 before a cosine over the 6 steps after it."""
    warnings.simplefilter("ignore", UserWarning)  # SequentialLR's own deprecated call
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / 4, total_iters=4),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)], milestones=[4])
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return torch.tensor(lrs, dtype=torch.float64)


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    net = Net()
    # Affine parameters away from 1 and 0, so their updates show.
    with torch.no_grad():
        for bn in (net.bn, net.bn1):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    init = copy.deepcopy(net.state_dict())
    save_safetensors(out + "/init.safetensors", init)
    x = torch.rand(5, 8, 1, 8, 8)
    labels = torch.randint(0, 3, (5, 8))
    save_safetensors(out + "/data.safetensors", {"x": x.reshape(40, 1, 8, 8),
                                                 "labels": labels.float(), "lrs": warmup_lrs()})
    save_safetensors(out + "/final.safetensors", train(net, x, labels))
    net.load_state_dict(init)
    save_safetensors(out + "/final_smooth.safetensors", train(net, x, labels, label_smoothing=0.1))
    net.load_state_dict(init)
    save_safetensors(out + "/final_nodecay.safetensors",
                     train(net, x, labels, weight_decay=0.05, no_decay_norm_bias=True))
    net.load_state_dict(init)
    save_safetensors(out + "/final_decay.safetensors", train(net, x, labels, weight_decay=0.05))


if __name__ == "__main__":
    main()
