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
"""
import sys
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_resnet_check import save_safetensors  # noqa: E402


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


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    net = Net()
    # Affine parameters away from 1 and 0, so their updates show.
    with torch.no_grad():
        for bn in (net.bn, net.bn1):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    save_safetensors(out + "/init.safetensors", net.state_dict())
    x = torch.rand(5, 8, 1, 8, 8)
    labels = torch.randint(0, 3, (5, 8))
    save_safetensors(out + "/data.safetensors", {"x": x.reshape(40, 1, 8, 8), "labels": labels.float()})
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    net.train()
    for step in range(5):
        opt.zero_grad()
        F.cross_entropy(net(x[step]), labels[step]).backward()
        opt.step()
    save_safetensors(out + "/final.safetensors", net.state_dict())


if __name__ == "__main__":
    main()
