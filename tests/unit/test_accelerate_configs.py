"""The shipped accelerate launch configs load with accelerate's own config parser."""

from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_accelerate_config_loads(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16"
    assert str(config.distributed_type).split(".")[-1] in ("MULTI_GPU", "FSDP", "DEEPSPEED")


def test_all_three_ship():
    assert {p.stem for p in CONFIGS} == {"ddp", "fsdp", "deepspeed_zero3"}
