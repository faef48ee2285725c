#!/usr/bin/python3
"""Reference for tests/test_resnet.c: torchvision's ResNet-18 (10 classes), or
examples/resnet20.net written in PyTorch with torchvision's BasicBlock.

    /usr/bin/python3 tests/torch_resnet_check.py export resnet18|resnet20 OUTDIR
writes to OUTDIR:
  weights.safetensors  the state_dict (torch.manual_seed(0)) after three
                       train-mode forwards, so the running statistics are not 0 and 1
                       (num_batches_tracked as I64, 0-dim, as torch stores it)
  batch.safetensors    input (resnet18: [2,3,224,224]; resnet20: [8,1,28,28]),
                       labels (floats), eval_logits (eval mode), train_logits and
                       loss [1] (train mode), then the running statistics after
                       that train-mode step under "after.<name>"
  grads.safetensors    d loss / d parameter of that train-mode step, computed in
                       float64 from the same weights and batch

    /usr/bin/python3 tests/torch_resnet_check.py check resnet18|resnet20 OUTDIR
loads OUTDIR/nabla.safetensors (saved by nabla) into the PyTorch model with
strict=True, and checks its eval-mode logits on batch.safetensors' input against
the logits nabla wrote to OUTDIR/nabla_logits.safetensors; exits 1 on a mismatch.
"""
import copy, sys
import torch
import torch.nn.functional as F
import torchvision

import torch.nn as nn
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_safetensors import load_safetensors, save_safetensors  # noqa: E402

CLASSES = 10
# nabla's resnet18 takes 3x224x224 as torchvision's does; a batch of two
# keeps the test to seconds.
SHAPES = {"resnet18": (2, 3, 224, 224), "resnet20": (8, 1, 28, 28)}


class ResNet20(nn.Module):
    """examples/resnet20.net: He et al.'s CIFAR ResNet-20 on 1x28x28, with
    projection shortcuts (1x1 conv + batch norm) where the shape changes."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        inplanes, stages = 16, []
        for i, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(3):
                stride = 2 if i > 0 and b == 0 else 1
                down = None
                if stride != 1 or inplanes != planes:
                    down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                         nn.BatchNorm2d(planes))
                blocks.append(BasicBlock(inplanes, planes, stride, down))
                inplanes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def make(name):
    if name == "resnet18":
        return torchvision.models.resnet18(num_classes=CLASSES)
    return ResNet20(CLASSES)


def export(name, out):
    torch.manual_seed(0)
    model = make(name)
    SHAPE = SHAPES[name]
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(SHAPE) * 1.5 + 0.2)
    save_safetensors(out + "/weights.safetensors", model.state_dict())
    x = torch.randn(SHAPE)
    labels = torch.arange(SHAPE[0]) * 3 % CLASSES
    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    # The gradients in float64: a few of them (layer4.0.conv1.weight, whose
    # batch norm sees only 2x7x7 values per channel) are sums that cancel,
    # where float32 PyTorch is itself some 4% off the exact value.
    exact = copy.deepcopy(model).double()
    exact.train()
    F.cross_entropy(exact(x.double()), labels).backward()
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    batch = {"input": x, "labels": labels.float(), "eval_logits": eval_logits,
             "train_logits": logits, "loss": loss.reshape(1)}
    for name, t in model.state_dict().items():
        if "running" in name:
            batch["after." + name] = t
    save_safetensors(out + "/batch.safetensors", batch)
    save_safetensors(out + "/grads.safetensors",
                     {name: p.grad for name, p in exact.named_parameters()})


def check(name, out):
    model = make(name)
    state = load_safetensors(out + "/nabla.safetensors")
    model.load_state_dict(state, strict=True)
    model.eval()
    x = load_safetensors(out + "/batch.safetensors")["input"]
    with torch.no_grad():
        logits = model(x)
    want = load_safetensors(out + "/nabla_logits.safetensors")["logits"]
    diff = (logits - want).abs().max().item()
    ref = want.abs().max().item()
    print(f"PyTorch with nabla's weights: logits differ by {diff:.3g} (largest {ref:.3g})")
    sys.exit(0 if diff <= 1e-4 * max(ref, 1.0) else 1)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("export", "check") or sys.argv[2] not in SHAPES:
        sys.exit("usage: torch_resnet_check.py export|check resnet18|resnet20 OUTDIR")
    (export if sys.argv[1] == "export" else check)(sys.argv[2], sys.argv[3])
