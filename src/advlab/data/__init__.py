"""Dataset sources: MNIST, CIFAR-10, image folders and the bundled MNIST sample, all as uint8 tensors.

Start with :func:`load_dataset` (names in ``DATASETS.names()``); :func:`verify_data_dir` checks the files against
their official checksums; :func:`resolve_data_dir` says where data is looked for.
"""
from advlab.data.bundled import load_mnist_sample
from advlab.data.cifar10 import load_cifar10
from advlab.data.dataset import ImageDataset
from advlab.data.download import FileCheck, download_file, resolve_data_dir
from advlab.data.folders import load_image_folder, load_labelled_folder
from advlab.data.mnist import load_mnist
from advlab.data.sources import DATASETS, DatasetInfo, dataset_info, load_dataset, verify_data_dir

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "FileCheck",
    "ImageDataset",
    "dataset_info",
    "download_file",
    "load_cifar10",
    "load_dataset",
    "load_image_folder",
    "load_labelled_folder",
    "load_mnist",
    "load_mnist_sample",
    "resolve_data_dir",
    "verify_data_dir",
]
