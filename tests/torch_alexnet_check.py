#!/usr/bin/python3
"""Reference for tests/test_torch_match.c: torchvision's AlexNet (defined
inline, with torchvision's module indices, so no torchvision is needed), one
forward and backward pass on a small random batch, dropout off (eval mode)
and gradients on.

    /usr/bin/python3 tests/torch_alexnet_check.py OUTDIR

writes to OUTDIR (safetensors, F32):
  weights.safetensors  the initial parameters (torch.manual_seed(0)), torchvision names
  batch.safetensors    input [2,3,224,224], labels [2] (as floats), logits [2,10], loss [1]
  grads.safetensors    d loss / d parameter, under the parameters' names
"""
import os, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_safetensors import save_safetensors  # noqa: E402

CLASSES = 10


class AlexNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: torch_alexnet_check.py OUTDIR")
    out = sys.argv[1]
    torch.manual_seed(0)
    model = AlexNet(CLASSES)
    model.eval()  # dropout is the identity; autograd still runs
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 224, 224)
    labels = torch.tensor([3, 7])
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    save_safetensors(os.path.join(out, "weights.safetensors"), weights)
    save_safetensors(os.path.join(out, "batch.safetensors"),
                     {"input": x, "labels": labels.float(), "logits": logits, "loss": loss.reshape(1)})
    save_safetensors(os.path.join(out, "grads.safetensors"),
                     {k: p.grad for k, p in model.named_parameters()})


if __name__ == "__main__":
    main()
