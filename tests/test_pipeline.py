import torch

from deepdive.data.pipeline import Normalizer, Split, balanced_subset, channel_mean_std, iterate_batches


def make_split(n=1000, classes=10):
    labels = torch.arange(n) % classes
    images = torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return Split(images, labels)


def test_balanced_subset_is_balanced_and_seeded():
    split = make_split()
    a = balanced_subset(split, 95, seed=3)
    b = balanced_subset(split, 95, seed=3)
    c = balanced_subset(split, 95, seed=4)
    counts = a.labels.bincount(minlength=10)
    assert len(a) == 95 and counts.max() - counts.min() <= 1
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels) or not torch.equal(a.images, c.images)


def test_balanced_subset_with_a_short_class():
    labels = torch.tensor([0] * 100 + [1] * 3)
    split = Split(torch.zeros(103, 1, 2, 2, dtype=torch.uint8), labels)
    sub = balanced_subset(split, 20, seed=0)
    assert sub.labels.bincount().tolist() == [17, 3]


def test_batches_cover_every_example_once():
    split = make_split(103)
    gen = torch.Generator().manual_seed(0)
    seen = torch.cat([y for _, y in iterate_batches(split, 10, shuffle=True, generator=gen)])
    assert len(seen) == 103 and sorted(seen.tolist()) == sorted(split.labels.tolist())


def test_normalizer_and_stats():
    split = make_split()
    mean, std = channel_mean_std(split.images)
    x = Normalizer(mean, std, 3)(split.images)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    article = Normalizer((0.1307,), (0.3081,), 3)(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8))
    assert torch.allclose(article, torch.full((1, 3, 1, 1), (1 - 0.1307) / 0.3081))
