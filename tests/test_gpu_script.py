"""benchmarks/gpu.py's table: the share of the GPU's measured matmul rate, and failures said."""
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"


def _gpu_script():
    spec = importlib.util.spec_from_file_location("kbench_gpu_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_gives_each_backend_its_share_of_the_measured_matmul_rate():
    summary = {
        "device": {"gpu": "Test GPU", "fp32_tflops": 10.0, "tf32_tflops": 100.0},
        "profile": {"name": "full-9ep", "epochs": 9, "n_train": None, "batch_size": 32},
        "full_epochs": 50,
        "backends": {"jax": {"train": {"images_per_s": 1000.0, "flops_per_image": 1e8, "train_accuracy": 0.5,
                                       "test_accuracy": 0.25},
                             "predict": {"images_per_s": 5000.0, "p50_ms": 1.5}},
                     "torch": {"error": "train: exit 1: boom"}},
    }
    text = _gpu_script().table(summary)
    assert "9 of 50 epochs, 50000 training images" in text
    jax_row = next(line for line in text.splitlines() if line.startswith("| jax"))
    assert "| 1.00% | 0.10% |" in jax_row  # 1000 img/s x 0.1 GFLOP = 0.1 TFLOP/s of 10 and of 100
    assert "| 0.500 | 0.250 |" in jax_row
    torch_row = next(line for line in text.splitlines() if line.startswith("| torch"))
    assert torch_row.endswith("train: exit 1: boom")
