"""concise_jax: JAX/Flax RL fine-tuning of language models toward concise reasoning."""
import setuptools

setuptools.setup(
    name="concise_jax",
    version="0.1.0",
    description="RL fine-tuning of LMs for concise reasoning, as jitted pure functions over a Mesh.",
    packages=setuptools.find_packages(include=["concise_jax", "concise_jax.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "transformers>=4.50",
        "ml-collections>=1.0",
        "tensorflow-datasets>=4.9.8",
        "gguf>=0.16",
        "tokenizers>=0.21",
        "numpy>=2.0",
        "absl-py>=2.1",
        "tqdm>=4.66",
        "grain>=0.2.10",
        "math-verify>=0.7",
        "safetensors>=0.5",
        "jinja2>=3.1",
        "tensorboardX>=2.6",
        "matplotlib>=3.8",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "chex>=0.1.89", "hypothesis>=6.100",
                 "submitit>=1.5"],
        # Sweeps as Slurm job arrays (`python -m concise_jax.sweep --executor=slurm`).
        "cluster": ["submitit>=1.5"],
        # Side-by-side baselines for the benchmarks (PyTorch CPU, transformers generate, TRL).
        "peers": ["torch>=2.5", "trl>=0.20", "accelerate>=1.0"],
    },
)
