"""The training data stream: a seeded, endless sequence of batches that any rank can index by position.

``Trainer`` is iteration-based (the paper trains for a number of iterations, not epochs: paper §4), so the data
order is one stream of epoch permutations. Its whole state is one number, the stream position (samples consumed,
``iter x batch_size``), which is what a checkpoint stores and what a resume starts from. ``EpochIndexed`` passes
the epoch along with each index so that augmentation is a pure function of ``(seed, epoch, index)``.

    >>> s = InfiniteBatchSampler(num_samples=10, batch_size=4, seed=0, rank=1, world_size=2)
    >>> batch = next(iter(s))  # rank 1's 4 samples of the first global batch of 8: [(index, epoch), ...]
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler


class InfiniteBatchSampler(Sampler):
    """An endless, seeded stream of batches of ``(index, epoch)`` pairs, sharded across ranks.

    The stream is the concatenation of epoch permutations ``randperm(num_samples, seed=(seed, epoch))``. Global
    batch ``m`` covers stream positions ``[m * world_size * batch_size, (m + 1) * world_size * batch_size)`` and rank
    ``r`` takes the ``r``-th ``batch_size`` slice of it, so N ranks together see exactly what one process with an
    N-times larger batch (or N accumulation steps) sees. ``start`` is a stream position (samples consumed).
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start: int = 0, shuffle: bool = True):
        if num_samples < 1:
            raise ValueError("the training set is empty")
        self.n, self.batch_size, self.seed, self.shuffle = num_samples, batch_size, seed, shuffle
        self.rank, self.world_size, self.start = rank, world_size, start
        self._perms: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.clear()
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        return self._perms[epoch]

    def sample_at(self, position: int) -> tuple[int, int]:
        """``(dataset index, epoch)`` at a stream position."""
        epoch, offset = divmod(position, self.n)
        return int(self.permutation(epoch)[offset]), epoch

    def __iter__(self):
        global_batch = self.world_size * self.batch_size
        m = self.start // global_batch
        while True:
            lo = m * global_batch + self.rank * self.batch_size
            yield [self.sample_at(p) for p in range(lo, lo + self.batch_size)]
            m += 1

    def __len__(self) -> int:  # DataLoader asks; the stream is endless
        return 2 ** 62


class EpochIndexed(Dataset):
    """Lets the sampler pass ``(index, epoch)``: calls ``dataset.set_epoch(epoch)`` (if it has one) in whichever
    process loads the sample, so augmentation is a pure function of ``(seed, epoch, index)``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, epoch = item
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]
