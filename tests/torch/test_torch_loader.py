"""runlock.torch.loader_kwargs: seeded order, and dataset-held RNGs reseeded per worker."""

from __future__ import annotations

import numpy as np
import pytest

import torch

from runlock.torch import WorkerSeeder, loader_kwargs  # noqa: E402


class NoisyDataset(torch.utils.data.Dataset):
    """The trap: an RNG built in __init__ is copied, state and all, into every worker."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.tensor([float(i), float(self.rng.random())])


def _epochs(n_epochs=2, **kwargs):
    loader = torch.utils.data.DataLoader(NoisyDataset(), batch_size=2, num_workers=2, **kwargs)
    return [torch.cat(list(loader)) for _ in range(n_epochs)]


def _noise_by_worker(batch):
    # batch_size=2 and 2 workers: batches alternate between worker 0 and worker 1.
    return batch[:, 1].reshape(-1, 2)


def test_order_is_seeded_by_epoch():
    ds = list(range(20))

    def order(seed, epoch):
        return list(torch.utils.data.DataLoader(ds, shuffle=True, batch_size=20, **loader_kwargs(seed, epoch))
                    )[0].tolist()

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)
    assert order(1, 0) != list(range(20))


def test_without_reseeding_workers_repeat_each_other_and_every_epoch():
    first, second = _epochs()
    noise = _noise_by_worker(first)
    assert torch.equal(noise[0], noise[1])  # worker 0 and worker 1 drew the same numbers
    assert torch.equal(first, second)  # and the next epoch repeats them


def test_worker_seeder_reseeds_dataset_rngs_reproducibly():
    first, second = _epochs(**loader_kwargs(3))
    noise = _noise_by_worker(first)
    assert not torch.equal(noise[0], noise[1])
    assert not torch.equal(first[:, 1], second[:, 1])  # a reused loader moves on each epoch
    again_first, again_second = _epochs(**loader_kwargs(3))
    assert torch.equal(first, again_first) and torch.equal(second, again_second)


def test_worker_seeder_pickles_for_spawned_workers():
    import pickle

    assert pickle.loads(pickle.dumps(WorkerSeeder(1, 2, 3))) == WorkerSeeder(1, 2, 3)
