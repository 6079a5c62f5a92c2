"""`benchmarks/gpu_check.sh`: what it would run on a GPU machine, printed without running it."""

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def test_the_dry_run_lists_each_step_and_a_bad_argument_is_one_line() -> None:
    dry = subprocess.run([str(SCRIPT), "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0
    steps = dry.stdout.splitlines()
    scripts = ["benchmarks/bench_hf.py", "benchmarks/bench_mirage.py", "benchmarks/bench_train_mirage.py", "-m"]
    assert [s.split()[1] for s in steps] == scripts
    assert "--config llava-1.5-7b --dtype bfloat16" in steps[0] and "--config mirage-official" in steps[1]
    assert all((SCRIPT.parents[1] / script).is_file() for script in scripts[:3])
    bad = subprocess.run([str(SCRIPT), "--fast"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
