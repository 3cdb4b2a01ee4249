"""CIFAR-10 recipes for keras-basis: ResNet-56, VGG-16, DenseNet-12-40 (see README.md)."""
