"""tokenmill: raw text corpora -> sharded pre-training examples (TFRecord + Parquet) with Apache Beam."""

from setuptools import find_packages, setup

PACKAGES = ("pipelines", "transforms", "schemas", "runners", "readers", "deploy")

EXTRAS = {
    "gcp": ["apache-beam[gcp]>=2.77,<2.78", "build>=1"],
    "tf": ["tensorflow-cpu>=2.16,<3"],
    # Trainer-side extras: none of them is needed by the pipeline or its workers.
    "torch": ["torch>=2.4", "torchdata>=0.10", "transformers>=4.45", "fsspec>=2024.6", "gcsfs>=2024.6"],
    "jax": ["jax>=0.4.30", "flax>=0.12", "optax>=0.2", "grain>=0.2.10", "array-record>=0.5"],
    "array_record": ["array-record>=0.5"],
    "dask": ["apache-beam[dask]>=2.77,<2.78", "dask[distributed]>=2024.4.2"],
    "report": ["matplotlib>=3.8"],
    "docs": ["mkdocs-material>=9.5"],
    "hf": ["datasets>=3"],
    "bench": ["psutil>=5.9"],
    "test": [
        "apache-beam[gcp,dask]>=2.77,<2.78",
        "build>=1",
        "tensorflow-cpu>=2.16,<3",
        "datasets>=3",
        "gcp-storage-emulator>=2026.7",
        "pytest>=8",
        "tfrecord>=1.14,<2",
        "psutil>=5.9",
        "torchdata>=0.10",
        "transformers>=4.45",
        "fsspec>=2024.6",
        "gcsfs>=2024.6",
        "jax>=0.4.30",
        "flax>=0.12",
        "optax>=0.2",
        "grain>=0.2.10",
        "array-record>=0.5",
        "dask[distributed]>=2024.4.2",
        "matplotlib>=3.8",
        "mkdocs-material>=9.5",
    ],
}
# What the documentation's pages use, for `pip install -e '.[all]'` (the README's install line).
ALL = ("gcp", "tf", "torch", "jax", "array_record", "dask", "report", "hf")

setup(
    name="tokenmill",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else __doc__,
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=[p for name in PACKAGES for p in (name, f"{name}.*")]),
    package_data={"deploy": ["flex_template/*"]},
    install_requires=[
        "apache-beam>=2.77,<2.78",
        "sentencepiece>=0.2.1,<0.3",
        "tokenizers>=0.20,<1",
        "pyarrow>=15,<27",
        "numpy>=1.26,<3",
        "crc32c>=2.4,<3",
        "zstandard>=0.22,<1",
    ],
    extras_require={**EXTRAS, "all": sorted({r for name in ALL for r in EXTRAS[name]})},
    entry_points={"console_scripts": ["tokenmill=pipelines.cli:main"]},
)
