import json
import os

import pytest

from polyglot_llama import fingerprint
from polyglot_llama.errors import UserError


def test_big_files_are_digested_by_spread_blocks_and_size(tmp_path):
    big = tmp_path / "shard.bin"
    data = bytearray(os.urandom(6 << 20))  # over the 4 MiB whole-file limit
    big.write_bytes(data)
    first = fingerprint.file_digest(big)
    assert first.startswith(f"{6 << 20}:")
    data[0] ^= 1  # the first block is always sampled
    big.write_bytes(data)
    os.utime(big, ns=(1, 1))  # a different mtime: the digest cache must not hide the change
    assert fingerprint.file_digest(big) != first
    big.write_bytes(data + b"x")
    assert fingerprint.file_digest(big).startswith(f"{(6 << 20) + 1}:")


def test_same_bytes_rewritten_is_the_same_input(tmp_path):
    data = tmp_path / "a.jsonl"
    data.write_text('{"text": "x"}\n')
    config = {"input": [str(tmp_path / "*.jsonl")], "output": str(tmp_path / "out"), "log_every": 1}
    before = fingerprint.compute(config, "s", tmp_path / "out")
    data.write_text('{"text": "x"}\n')
    os.utime(data, ns=(5, 5))
    after = fingerprint.compute({**config, "log_every": 50, "output": "elsewhere"}, "s", tmp_path / "out")
    assert before == after and list(before["inputs"]) == [str(data.resolve())]


def test_claim_refuses_other_runs_but_lets_a_run_grow(tmp_path):
    out = tmp_path / "out"
    fingerprint.claim({"lr": 0.1, "steps": 2, "optim": {"betas": [0.9, 0.95]}}, out, "ppo")
    fingerprint.claim({"lr": 0.1, "steps": 3, "optim": {"betas": [0.9, 0.95]}}, out, "ppo")  # longer: same run
    assert json.loads((out / "ppo.fingerprint.json").read_text())["config"]["steps"] == 3
    with pytest.raises(UserError, match=r"different `ppo` run \(lr 0.1 -> 0.2; optim.betas \[0.9, 0.95\] -> \[0.9, 0.99\]\)"):
        fingerprint.claim({"lr": 0.2, "steps": 3, "optim": {"betas": [0.9, 0.99]}}, out, "ppo")
    fingerprint.claim({"model": ["a"]}, out, "eval")
    fingerprint.claim({"model": ["a", "b"]}, out, "eval")  # eval keys its own cache: never refused


def test_clear_output_only_deletes_run_folders(tmp_path):
    mine = tmp_path / "run"
    fingerprint.claim({"x": 1}, mine, "s")
    assert fingerprint.clear_output(mine) and not mine.exists()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("x")
    with pytest.raises(UserError, match="not written by polyglot-llama"):
        fingerprint.clear_output(theirs)
    assert (theirs / "thesis.tex").is_file()
