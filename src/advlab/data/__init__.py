"""Dataset sources: MNIST, CIFAR-10, image folders and the bundled MNIST sample, all as uint8 tensors."""
from advlab.data.dataset import ImageDataset

__all__ = ["ImageDataset"]
