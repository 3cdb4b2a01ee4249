"""keras-basis: compress Keras 3 CNNs by learning filter bases (Li et al., ICCV 2019)."""

from setuptools import find_packages, setup

EXTRAS = {
    "tflite": ["ai-edge-litert>=1.2", "pillow>=9"],
    "tfmot": ["tensorflow-model-optimization>=0.8", "tf_keras>=2.16"],
    "demo": ["ai-edge-litert>=1.2", "scikit-learn>=1.3", "matplotlib>=3.7", "tqdm>=4.60"],
    "examples": [
        "ai-edge-litert>=1.2",
        "pillow>=9",
        "scikit-image>=0.21",
        "matplotlib>=3.7",
        "tqdm>=4.60",
    ],
    # Keras 3 on JAX: examples/paper_scale_gpu.py (GPU machines without TensorFlow)
    "jax": ["jax>=0.4.30", "pillow>=9"],
    # Keras 3 on PyTorch: the backend tests (PyPI's torch is the CUDA build; it runs on CPU)
    "torch": ["torch>=2.4"],
}
# torch (a multi-GB CUDA wheel) only serves the slow PyTorch-backend test: not in "test"
# (pip install -e ".[test,torch]" for it). pytest-xdist: README's test command runs the
# suite on two processes.
EXTRAS["test"] = sorted(
    set(EXTRAS["tflite"] + EXTRAS["tfmot"] + EXTRAS["demo"] + EXTRAS["examples"]
        + EXTRAS["jax"])
    | {"pytest>=7", "pytest-timeout>=2", "pytest-xdist>=3", "keras-hub>=0.32"}
)
EXTRAS["all"] = sorted(set().union(*EXTRAS.values()))

setup(
    name="keras-basis",
    version="0.1.0",
    description=(
        "Split-basis filter decomposition (Li et al., ICCV 2019) for Keras 3 CNNs, "
        "with TFLite (LiteRT) export"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_basis", "keras_basis.*"]),
    install_requires=["tensorflow>=2.16", "keras>=3", "numpy>=1.23"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["keras-basis=keras_basis.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
