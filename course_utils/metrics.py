"""Sample quality without the internet: a Fréchet distance on a Fashion-MNIST classifier's features (notebook 05).

Inception-based FID needs downloaded weights, and ImageNet features mean little for 28x28 grey
clothes. As in the fast.ai course (course22p2, notebook 18_fid), we use instead the features of a
small classifier that this project trains itself (``benchmarks/train_classifier.py``) on the
Fashion-MNIST training split at 16x16; its weights, config and test accuracy are in
``checkpoints/classifier16.pt`` / ``.json``.

The Fréchet distance between the Gaussian fits N(mu1, S1) and N(mu2, S2) of two feature sets is

    d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

(Dowson & Landau 1982; Heusel et al. 2017 call it FID on Inception features). We report d^2, as FID does.

Protocol (the same in notebooks, tests and benchmarks): N samples against a fixed reference,
the first ``N_REFERENCE`` = 2,000 images of the Fashion-MNIST *test* split at 16x16. FID is biased
upwards for small N, so compare numbers only at the same N, and read them against the floor:
N real test images from outside the reference (indices 2,000 onwards) scored the same way.
"""
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import fashion_mnist
from .jupyter import tqdm
from .settings import REPO_ROOT

__all__ = [
    "CLASSIFIER_PATH", "N_REFERENCE", "FashionClassifier", "load_classifier", "classifier_features",
    "classifier_probs", "feature_stats", "frechet_distance", "fid", "confident_share", "class_histogram",
    "reference_images", "sample_quality", "nfe_sweep",
]

CLASSIFIER_PATH = REPO_ROOT / "checkpoints" / "classifier16.pt"
N_REFERENCE = 2000  # reference = the first 2,000 test images; samples and the real floor are scored against it


class FashionClassifier(nn.Module):
    """A small CNN for [B, 1, S, S] images in [-1, 1]; ``features`` gives its penultimate layer [B, n_features].

    conv-conv-pool (S -> S/2) twice, then Linear -> n_features -> ReLU -> Linear -> 10 logits.
    The features are the pre-activation of the penultimate layer (before its ReLU): no unit is
    stuck at 0, so their covariance is well conditioned.
    """

    def __init__(self, image_size=16, width=24, n_features=128, n_classes=10):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        self.image_size = image_size

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, width), *block(width, width), nn.MaxPool2d(2),
            *block(width, 2 * width), *block(2 * width, 2 * width), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, n_features),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.3), nn.Linear(n_features, n_classes))

    def features(self, x):
        """Penultimate features [B, n_features] of images x [B, 1, S, S]."""
        return self.body(x)

    def forward(self, x):
        """Class logits [B, 10]."""
        return self.head(self.body(x))


@lru_cache(maxsize=2)
def _load(path):
    """Read a classifier once per path (every metric call uses it; the weights never change)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no classifier checkpoint at {path}; train one with benchmarks/train_classifier.py")
    config = json.loads(path.with_suffix(".json").read_text())["model"]
    model = FashionClassifier(**config)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def load_classifier(path=CLASSIFIER_PATH):
    """The committed classifier (eval mode, CPU), its architecture read from the ``.json`` next to the weights."""
    return _load(str(path))


def _to_classifier_input(images, image_size):
    """Check [N, 1, H, W] images, clamp them to [-1, 1], resize to the classifier's size (bilinear, antialiased)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor [N, 1, H, W] in [-1, 1], got {shape}")
    x = images.detach().float().cpu().clamp(-1.0, 1.0)
    if x.shape[-2:] != (image_size, image_size):
        # the same resize as data.to_minus_one_one, so a 28x28 sample looks like a 16x16 training image
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return x


@torch.inference_mode()
def _run(images, classifier, fn, batch_size):
    classifier = load_classifier() if classifier is None else classifier
    x = _to_classifier_input(images, classifier.image_size)
    device = next(classifier.parameters()).device
    return torch.cat([fn(classifier, chunk.to(device)).float().cpu() for chunk in x.split(batch_size)])


def classifier_features(images, classifier=None, batch_size=1000):
    """Penultimate features [N, 128] of images [N, 1, H, W] in [-1, 1] (any H = W; resized to 16x16)."""
    return _run(images, classifier, lambda m, x: m.features(x), batch_size)


def classifier_probs(images, classifier=None, batch_size=1000):
    """Class probabilities softmax(logits) [N, 10] of images [N, 1, H, W] in [-1, 1]."""
    return _run(images, classifier, lambda m, x: m(x).softmax(dim=1), batch_size)


def feature_stats(features):
    """Gaussian fit of features [N, D]: mean [D] and unbiased covariance [D, D], in float64 NumPy."""
    f = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be an array [N, D] with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(matrix):
    """Square root of a symmetric positive semi-definite matrix by eigh; round-off negatives clipped to 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) for means [D] and covariances [D, D], in float64.

    S1 S2 is not symmetric, and scipy.linalg.sqrtm of it can return small imaginary parts or fail
    when the covariances are singular (pytorch-fid then adds eps to the diagonal). We use instead
    Tr((S1 S2)^{1/2}) = Tr((A S2 A)^{1/2}) with A = S1^{1/2}: A S2 A is symmetric PSD, so its
    eigenvalues are real and >= 0 up to round-off (clipped to 0), singular or not. No eps is needed.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"expected means [D] and covariances [D, D], got {mu1.shape}, {sigma1.shape}, "
                         f"{mu2.shape}, {sigma2.shape}")
    a = _sqrt_psd(sigma1)
    middle = a @ sigma2 @ a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def _as_features(x, classifier):
    """Images [N, 1, H, W] -> classifier features; a 2-D [N, D] input is taken as features already."""
    if isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim == 2:
        return x
    return classifier_features(x, classifier)


def fid(samples, reference, classifier=None):
    """Fréchet distance between the classifier-feature Gaussians of two sets.

    Each of ``samples`` and ``reference`` is either images [N, 1, H, W] in [-1, 1] or features [N, D].
    """
    return frechet_distance(*feature_stats(_as_features(samples, classifier)),
                            *feature_stats(_as_features(reference, classifier)))


def confident_share(samples, threshold=0.9, classifier=None):
    """Share of samples whose top class probability is above ``threshold`` (images or probs [N, 10])."""
    probs = samples if samples.ndim == 2 else classifier_probs(samples, classifier)
    return float((probs.max(dim=1).values > threshold).float().mean())


def class_histogram(samples, classifier=None, n_classes=10):
    """Mode coverage: the share of samples the classifier puts in each class (argmax), shape [10].

    Also returned: the entropy H = -sum p log p in nats (log 10 = 2.303 for ten equal classes) and
    KL(p || uniform) = log 10 - H (0 when every class gets a tenth).
    """
    probs = samples if samples.ndim == 2 else classifier_probs(samples, classifier)
    share = torch.bincount(probs.argmax(dim=1), minlength=n_classes).double() / probs.shape[0]
    entropy = float(-(share[share > 0] * share[share > 0].log()).sum())
    return share, entropy, float(np.log(n_classes) - entropy)


@lru_cache(maxsize=1)
def reference_images():
    """The whole Fashion-MNIST test split at 16x16, [10000, 1, 16, 16] in [-1, 1]; the first N_REFERENCE are the reference."""
    return fashion_mnist(train=False, image_size=16).tensors[0]


@lru_cache(maxsize=1)
def _reference_features():
    return classifier_features(reference_images()[:N_REFERENCE])


@lru_cache(maxsize=8)
def _real_floor(n):
    return fid(classifier_features(reference_images()[N_REFERENCE:N_REFERENCE + n]), _reference_features())


def sample_quality(samples, reference=None, threshold=0.9):
    """One-line summary of samples [N, 1, H, W] in [-1, 1]: a dict of FID, its real floor, confidence and modes.

    ``reference`` defaults to the protocol's 2,000 test images; ``fid_floor`` is the FID of N real test
    images outside the reference (same N, so the same small-sample bias), computed only for the default
    reference and N <= 8,000. ``min_class_share`` is the rarest class's share (0.1 when balanced).
    """
    features = classifier_features(samples)
    with torch.inference_mode():  # the classifier's head on the same features: one pass over the samples
        probs = load_classifier().head(features).softmax(dim=1)
    share, entropy, kl = class_histogram(probs)
    n = samples.shape[0]
    floor = _real_floor(n) if reference is None and n <= 10000 - N_REFERENCE else float("nan")
    ref = _reference_features() if reference is None else _as_features(reference, None)
    return {
        "n": n, "fid": fid(features, ref), "fid_floor": floor,
        "confident_share": confident_share(probs, threshold), "class_entropy": entropy,
        "kl_to_uniform": kl, "min_class_share": float(share.min()), "class_share": share.tolist(),
    }


def nfe_sweep(samplers, nfes, n_samples, batch_size=500, seed=0, progress=True):
    """Quality against network evaluations: for every sampler and NFE budget, ``n_samples`` samples scored by
    ``sample_quality``. ``samplers`` maps a name to ``fn(n, nfe, generator) -> (n samples, nfe_used)``;
    every (sampler, nfe) pair starts from the same seed. Returns one dict per pair: sampler, nfe (the budget),
    nfe_used, fid, fid_ratio (FID / real floor at this N), min_class_share, seconds."""
    rows = []
    jobs = [(name, nfe) for name in samplers for nfe in nfes]
    for name, nfe in tqdm(jobs, desc="samplers x NFE", disable=not progress):
        generator, parts, used, start = torch.Generator().manual_seed(seed), [], nfe, time.perf_counter()
        for first in range(0, n_samples, batch_size):
            x, used = samplers[name](min(batch_size, n_samples - first), nfe, generator)
            parts.append(x.cpu())
        q = sample_quality(torch.cat(parts))
        rows.append({"sampler": name, "nfe": nfe, "nfe_used": used, "fid": q["fid"], "fid_ratio": q["fid"] / q["fid_floor"],
                     "min_class_share": q["min_class_share"], "seconds": time.perf_counter() - start})
    return rows
