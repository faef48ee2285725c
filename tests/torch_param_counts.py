#!/usr/bin/python3
"""Reference for tests/test_summary.c: PyTorch's parameter counts of
torchvision's AlexNet (1000 classes; defined inline with torchvision's
layers, so no torchvision is needed) and of nabla's LeNet-5 (conv 6@5x5 pad
2, conv 16@5x5, fc 120, 84, 10). Prints "alexnet N" and "lenet5 N"."""
import torch.nn as nn

alexnet = nn.Sequential(
    nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
    nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
    nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
    nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
    nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(),
    nn.Dropout(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
    nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))
lenet5 = nn.Sequential(
    nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
for name, model in (("alexnet", alexnet), ("lenet5", lenet5)):
    print(name, sum(p.numel() for p in model.parameters()))
