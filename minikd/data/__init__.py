"""Data, split by concern:

    idx.py       the IDX file format and its checks (DataError)
    mnist.py     MNIST's files: checksums, mirrors, the download (pooch, verified) and its cache
    datasets.py  Dataset, load_dataset (mnist / idx / digits), to_float, splits
    augment.py   the teacher's jitter (random translations)
"""
from .datasets import DATASETS, Dataset, load_dataset, to_float, train_val_split  # noqa: F401
from .idx import DataError, read_idx  # noqa: F401
