"""Built-in datasets: real data that ships with a package or is generated offline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import write_with
from .cache import cache_dir
from .info import RawData
from .missing import Strategy
from .registry import register_dataset


@register_dataset("digits", modality="image", task="classification")
def digits() -> RawData:
    """8x8 handwritten digits (UCI, bundled with scikit-learn): 1,797 images, 10 classes."""
    pixels, target = _digits_arrays()
    x = pixels.astype(np.float32).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8), pixel values 0..16
    return RawData(
        x=x,
        y=target.astype(np.int64),
        task="classification",
        modality="image",
        preprocess={"kind": "image", "shape": [1, 8, 8], "range": [0.0, 16.0]},
        class_names=[str(i) for i in range(10)],
        target_name="digit",
        source="UCI optical recognition of handwritten digits, via sklearn.datasets.load_digits",
    )


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (N, 64), digit (N,)) from the file scikit-learn ships, read as ``load_digits`` reads
    it, without importing scikit-learn (a second on every command that loads the digits)."""
    import gzip
    from importlib.util import find_spec

    spec = find_spec("sklearn")  # locates the package without importing it
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data, d.target
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


def _register_sklearn_table(name: str, loader: str, target: str, summary: str, source: str) -> None:
    """Register one of scikit-learn's bundled tabular classification sets."""

    def load() -> RawData:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)()
        x = np.asarray(bunch.data, dtype=np.float32)
        names = [str(n) for n in bunch.feature_names]
        return RawData(
            x=x,
            y=np.asarray(bunch.target, dtype=np.int64),
            task="classification",
            modality="tabular",
            preprocess={"kind": "table", "shape": [x.shape[1]], "columns": [{"name": n, "kind": "numeric"} for n in names]},
            class_names=[str(c) for c in bunch.target_names],
            feature_names=names,
            target_name=target,
            source=f"{source}, via sklearn.datasets.{loader}",
        )

    load.__doc__ = summary
    register_dataset(name, modality="tabular", task="classification")(load)


_register_sklearn_table("iris", "load_iris", "species",
                        "Fisher's iris flowers (scikit-learn): 150 rows, 4 features, 3 classes.", "Fisher 1936")
_register_sklearn_table("wine", "load_wine", "cultivar",
                        "Wine recognition (UCI, scikit-learn): 178 rows, 13 features, 3 cultivars.",
                        "UCI wine recognition")
_register_sklearn_table("breast_cancer", "load_breast_cancer", "diagnosis",
                        "Breast cancer Wisconsin diagnostic (UCI, scikit-learn): 569 rows, 30 features, 2 classes.",
                        "UCI breast cancer Wisconsin (diagnostic)")


@register_dataset("diabetes", modality="tabular", task="regression")
def diabetes() -> RawData:
    """Diabetes progression (Efron et al. 2004, scikit-learn): 442 rows, 10 features, regression; sensitive: sex."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    x = np.asarray(d.data, dtype=np.float32)
    names = [str(n) for n in d.feature_names]
    sex = x[:, names.index("sex")].astype(int).astype(str)
    return RawData(
        x=x,
        y=np.asarray(d.target, dtype=np.float32),
        task="regression",
        modality="tabular",
        preprocess={"kind": "table", "shape": [x.shape[1]], "columns": [{"name": n, "kind": "numeric"} for n in names]},
        feature_names=names,
        target_name="progression",
        groups={"sex": sex},
        source="Efron, Hastie, Johnstone, Tibshirani 2004, via sklearn.datasets.load_diabetes(scaled=False)",
    )


def _sklego_csv(archive_name: str, member: str, what: str) -> str:
    """A CSV table that ships inside the scikit-lego wheel (``sklego/data/<archive_name>``)."""
    import zipfile
    from importlib import metadata

    from ..errors import DataError

    try:
        archive = metadata.distribution("scikit-lego").locate_file(f"sklego/data/{archive_name}")
        return zipfile.ZipFile(archive).read(member).decode("utf-8")
    except (metadata.PackageNotFoundError, FileNotFoundError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"the {what} data ships with the scikit-lego package, which is missing or damaged ({e}); "
                        "pip install scikit-lego") from None


@register_dataset("hearts", modality="tabular", task="classification")
def hearts() -> RawData:
    """Cleveland heart disease (UCI, shipped in the scikit-lego wheel): 303 rows, 13 features, 2 classes; sensitive: sex."""
    import io

    from .tabular import csv_file

    text = _sklego_csv("hearts.zip", "heart.csv", "hearts")
    raw = csv_file(io.StringIO(text), target="target", categorical=["thal", "cp", "restecg", "slope"],
                   sensitive=["sex"], sensitive_as_feature=True, task="classification")
    raw.groups["sex"] = np.where(raw.groups["sex"] == "1", "male", "female")
    raw.class_names = ["no disease", "disease"]
    raw.source = "Detrano et al. 1989, UCI heart disease (Cleveland), via the scikit-lego wheel (sklego/data/hearts.zip)"
    return raw


@register_dataset("penguins", modality="tabular", task="classification")
def penguins(missing: Strategy | dict[str, Strategy] = "median", missing_indicator: bool = True) -> RawData:
    """Palmer penguins (Gorman et al. 2014, shipped in the scikit-lego wheel): 344 rows, 6 features
    (2 categorical), 3 species, 19 missing cells; sensitive: sex.

    Args:
        missing: what a missing cell becomes (see the csv loader's ``missing``).
        missing_indicator: add a 0/1 column after each filled column that had missing cells.
    """
    import io

    from .tabular import csv_file

    text = _sklego_csv("penguins.zip", "penguins.csv", "penguins")
    raw = csv_file(io.StringIO(text), target="species", categorical=["island", "sex"], sensitive=["sex"],
                   sensitive_as_feature=True, task="classification", missing=missing,
                   missing_indicator=missing_indicator)
    raw.source = ("Gorman, Williams, Fraser 2014 (Palmer Station LTER), the palmerpenguins table, "
                  "via the scikit-lego wheel (sklego/data/penguins.zip)")
    return raw


@register_dataset("mnist1d", modality="sequence", task="classification")
def mnist1d(num_samples: int = 5000, generator_seed: int = 42) -> RawData:
    """MNIST-1D (Greydanus 2024), generated offline by the mnist1d package: 4,000 train / 1,000 test, length 40.

    Args:
        num_samples: examples generated (the published set: 5000, of which 1,000 are the test split).
        generator_seed: seed of the published generator (42 gives the published set).
    """
    arrays = _mnist1d_arrays(num_samples, generator_seed)
    x, y = arrays["x"][:, None].astype(np.float32), arrays["y"].astype(np.int64)
    xt, yt = arrays["x_test"][:, None].astype(np.float32), arrays["y_test"].astype(np.int64)
    return RawData(
        x=x,
        y=y,
        task="classification",
        modality="sequence",
        preprocess={"kind": "sequence", "shape": [1, x.shape[-1]]},
        class_names=[str(i) for i in range(10)],
        target_name="digit",
        test=(xt, yt, {}),
        source="Greydanus & Kobak, 'Scaling Down Deep Learning with MNIST-1D', ICML 2024; "
        "mnist1d.data.make_dataset(get_dataset_args())",
    )


def cached_arrays(name: str, key: object, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays that a generator makes, cached as ``<cache_dir>/<name>-<hash of key>.npz`` (no pickle);
    a damaged cache entry is made again."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = cache_dir() / f"{name}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except Exception:
            path.unlink(missing_ok=True)
    arrays = make()

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    write_with(path, save)
    return arrays


def _mnist1d_arrays(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed

    def make() -> dict[str, np.ndarray]:
        data = make_dataset(args)
        return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}

    return cached_arrays("mnist1d", sorted((k, str(v)) for k, v in vars(args).items()), make)
