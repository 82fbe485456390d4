"""Settings: quick mode (COURSE_QUICK), the precision setting (COURSE_PRECISION) and repository-relative paths."""
import pytest
import torch

import course_utils as cu


def test_pick_reads_course_quick(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert cu.is_quick() and cu.pick(full=100, quick=3) == 3
    for off in ["0", "", "false", "no"]:
        monkeypatch.setenv("COURSE_QUICK", off)
        assert not cu.is_quick() and cu.pick(full=100, quick=3) == 100
    monkeypatch.delenv("COURSE_QUICK")
    assert cu.pick(full=100, quick=3) == 100


def test_course_quick_rejects_a_value_it_does_not_understand(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "maybe")
    with pytest.raises(ValueError, match="COURSE_QUICK='maybe'"):
        cu.is_quick()


@pytest.mark.parametrize("value, dtype", [("fp32", torch.float32), ("FP32", torch.float32), ("bf16", torch.bfloat16)])
def test_course_precision_forces_the_dtype(monkeypatch, value, dtype):
    monkeypatch.setenv("COURSE_PRECISION", value)
    assert cu.compute_dtype("cpu") == dtype
    assert f"COURSE_PRECISION={value.lower()}" in cu.precision_choice("cpu")[1]


@pytest.mark.parametrize("value", ["fp16", "float32", "yes"])
def test_course_precision_rejects_bad_values(monkeypatch, value):
    monkeypatch.setenv("COURSE_PRECISION", value)
    with pytest.raises(ValueError, match=f"COURSE_PRECISION='{value.lower()}' is not one of auto, fp32, bf16"):
        cu.compute_dtype("cpu")


def test_repo_relative_hides_the_machines_folders(tmp_path):
    from course_utils.settings import REPO_ROOT, repo_relative

    assert str(repo_relative(REPO_ROOT / "runs" / "x.pt")) == "runs/x.pt"
    assert repo_relative(tmp_path / "y.pt") == tmp_path / "y.pt"  # outside the repository: unchanged
