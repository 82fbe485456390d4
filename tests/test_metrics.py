"""The offline FID metric: the Fréchet distance, the committed classifier, confidence and mode coverage."""
import json

import numpy as np
import pytest
import scipy.linalg
import torch

import course_utils as cu
from course_utils.metrics import CLASSIFIER_PATH, FashionClassifier


def _random_features(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing * scale + shift


def test_frechet_distance_matches_direct_numpy_formula():
    a, b = _random_features(300, 8, 1), _random_features(200, 8, 2, shift=0.5, scale=1.5)
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    # d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), with scipy's general matrix square root
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert cu.fid(a, b) == pytest.approx(direct, rel=1e-9)
    assert cu.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-9)


def test_frechet_distance_of_two_known_gaussians():
    # diagonal covariances: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 3.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert cu.frechet_distance(np.zeros(3), np.diag(s1), np.ones(3), np.diag(s2)) == pytest.approx(expected)


def test_frechet_distance_self_zero_symmetric_and_singular_safe():
    a, b = _random_features(400, 16, 3), _random_features(400, 16, 4, shift=0.3)
    assert abs(cu.fid(a, a)) < 1e-8
    assert cu.fid(a, b) == pytest.approx(cu.fid(b, a), rel=1e-9)
    # rank-deficient covariances (a constant feature, fewer samples than dimensions): still finite and >= 0
    low_rank = np.concatenate([a[:10], np.zeros((10, 1))], axis=1)
    other = np.concatenate([b[:10], np.ones((10, 1))], axis=1)
    value = cu.fid(low_rank, other)
    assert np.isfinite(value) and value >= 1.0 - 1e-9  # the constant feature alone contributes (0 - 1)^2


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        cu.feature_stats(np.zeros(5))
    with pytest.raises(ValueError, match="covariances"):
        cu.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        cu.classifier_features(torch.zeros(4, 3, 16, 16))


def test_committed_classifier_config_and_accuracy():
    info = json.loads(CLASSIFIER_PATH.with_suffix(".json").read_text())
    assert info["test_accuracy"] >= 0.90
    assert CLASSIFIER_PATH.stat().st_size < 3_000_000
    model = cu.load_classifier()
    assert isinstance(model, FashionClassifier) and not model.training
    images, labels = cu.fashion_mnist(train=False, image_size=16).tensors
    probs = cu.classifier_probs(images[:1000])
    assert probs.shape == (1000, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(1000))
    assert (probs.argmax(1) == labels[:1000]).float().mean() > 0.88
    assert cu.classifier_features(images[:5]).shape == (5, 128)


def test_other_resolutions_are_resized_like_the_data():
    images_28 = cu.fashion_mnist(train=False, image_size=28).tensors[0][:200]
    images_16 = cu.fashion_mnist(train=False, image_size=16).tensors[0][:200]
    # the metric's antialiased resize of 28x28 images reproduces the 16x16 data (up to uint8 rounding)
    torch.testing.assert_close(cu.classifier_features(images_28), cu.classifier_features(images_16), atol=0.1, rtol=0.05)


def test_fid_grows_as_real_images_are_perturbed():
    reference = cu.reference_images()[: cu.N_REFERENCE]
    real = cu.reference_images()[cu.N_REFERENCE:cu.N_REFERENCE + 500]
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(real.shape, generator=generator)
    values = [cu.fid(real + level * noise, reference) for level in (0.0, 0.1, 0.3, 0.6, 1.0)]
    assert all(later > earlier for earlier, later in zip(values, values[1:])), values
    assert values[0] < 15 and values[-1] > 10 * values[0]


def test_confident_share_and_class_histogram():
    probs = torch.tensor([[0.95] + [0.05 / 9] * 9, [0.5, 0.5] + [0.0] * 8, [0.0] * 9 + [1.0], [0.0] * 9 + [1.0]])
    assert cu.confident_share(probs) == pytest.approx(0.75)
    assert cu.confident_share(probs, threshold=0.99) == pytest.approx(0.5)
    share, entropy, kl = cu.class_histogram(probs)
    torch.testing.assert_close(share, torch.tensor([0.5] + [0.0] * 8 + [0.5], dtype=torch.float64))
    assert entropy == pytest.approx(np.log(2)) and kl == pytest.approx(np.log(10) - np.log(2))
    uniform = torch.eye(10).repeat(3, 1)
    assert cu.class_histogram(uniform)[1] == pytest.approx(np.log(10)) and abs(cu.class_histogram(uniform)[2]) < 1e-12


def test_sample_quality_on_real_images_and_noise():
    real = cu.reference_images()[cu.N_REFERENCE:cu.N_REFERENCE + 300]
    quality = cu.sample_quality(real)
    assert quality["n"] == 300 and quality["fid"] == pytest.approx(quality["fid_floor"])  # same images as the floor
    assert quality["confident_share"] > 0.7 and quality["min_class_share"] > 0.05
    noise = cu.sample_quality(torch.randn(300, 1, 16, 16).clamp(-1, 1))
    assert noise["fid"] > 20 * quality["fid"]
    assert noise["kl_to_uniform"] > quality["kl_to_uniform"]


def test_sample_quality_probabilities_equal_the_classifiers():
    """sample_quality reuses the features for the class probabilities; they must equal a direct pass."""
    images = cu.reference_images()[:200]
    probs = cu.classifier_probs(images)
    quality = cu.sample_quality(images, reference=cu.reference_images()[2000:2400])
    share, entropy, _ = cu.class_histogram(probs)
    assert quality["class_share"] == pytest.approx(share.tolist()) and quality["class_entropy"] == pytest.approx(entropy)
    assert quality["confident_share"] == pytest.approx(cu.confident_share(probs))
