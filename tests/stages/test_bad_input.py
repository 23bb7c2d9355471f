"""The audit's classes of bad input, fed to the stages through the CLI: one-line error and exit 2, or
counted rejects with nothing lost. Every failing case must fail before a model is loaded (fast)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from polyglot_llama import cli
from polyglot_llama.errors import UserError
from polyglot_llama.io import RejectCounter
from polyglot_test_utils import SAMPLE_DIR

REPO = Path(__file__).resolve().parents[2]


def _gz(path: Path, lines: list[str]) -> Path:
    path.write_bytes(gzip.compress("".join(line + "\n" for line in lines).encode()))
    return path


def _chat_file(path: Path, n: int = 4) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory, en_model_dir, en_tokenizer_dir):
    """One folder of damaged inputs, built once: each case points a stage at one of them."""
    root = tmp_path_factory.mktemp("bad")
    paths = {"root": root, "model": en_model_dir, "tokenizer": en_tokenizer_dir}
    weights = (en_model_dir / "model.safetensors").read_bytes()

    def model_copy(name: str) -> Path:
        d = root / name
        shutil.copytree(en_model_dir, d)
        return d

    paths["truncated_weights"] = model_copy("truncated_weights")
    (paths["truncated_weights"] / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    paths["garbage_weights"] = model_copy("garbage_weights")
    (paths["garbage_weights"] / "model.safetensors").write_bytes(os.urandom(4096))
    paths["empty_weights"] = model_copy("empty_weights")
    (paths["empty_weights"] / "model.safetensors").write_bytes(b"")
    paths["broken_config"] = model_copy("broken_config")
    (paths["broken_config"] / "config.json").write_text('{"model_type": "llama", "hidden_size": 64,', encoding="utf-8")
    paths["other_shape"] = model_copy("other_shape")
    config = json.loads((en_model_dir / "config.json").read_text())
    (paths["other_shape"] / "config.json").write_text(json.dumps({**config, "hidden_size": 128}), encoding="utf-8")
    paths["other_ffn"] = model_copy("other_ffn")
    (paths["other_ffn"] / "config.json").write_text(json.dumps({**config, "intermediate_size": 96}), encoding="utf-8")
    paths["other_kv"] = model_copy("other_kv")
    (paths["other_kv"] / "config.json").write_text(json.dumps({**config, "num_key_value_heads": 4}), encoding="utf-8")
    paths["other_layers"] = model_copy("other_layers")
    (paths["other_layers"] / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}), encoding="utf-8")
    paths["garbage_tokenizer_model"] = model_copy("garbage_tokenizer_model")
    (paths["garbage_tokenizer_model"] / "tokenizer.json").write_bytes(b"\x00\x01 this is not json")
    paths["garbage_tokenizer"] = root / "garbage_tokenizer"
    shutil.copytree(en_tokenizer_dir, paths["garbage_tokenizer"])
    (paths["garbage_tokenizer"] / "tokenizer.json").write_text('{"version": "1.0", "model": "nonsense"}', encoding="utf-8")
    paths["weights"] = en_model_dir / "model.safetensors"
    paths["empty_dir"] = root / "empty_dir"
    paths["empty_dir"].mkdir()
    paths["a_file"] = root / "a_file.txt"
    paths["a_file"].write_text("hello", encoding="utf-8")
    paths["chat"] = _chat_file(root / "chat.jsonl")
    paths["empty_jsonl"] = root / "empty.jsonl"
    paths["empty_jsonl"].write_text("", encoding="utf-8")
    paths["not_gzip"] = root / "not_gzip.jsonl.gz"
    paths["not_gzip"].write_text('{"text": "plain text under a .gz name"}\n', encoding="utf-8")
    good = gzip.compress(b"".join(b'{"text": "line %d"}\n' % i for i in range(2000)))
    paths["truncated_gz"] = root / "truncated.jsonl.gz"
    paths["truncated_gz"].write_bytes(good[: len(good) // 2])
    paths["en_gz"] = _gz(root / "en.jsonl.gz", (SAMPLE_DIR / "en.jsonl").read_text(encoding="utf-8").splitlines())
    return paths


def _sft(model, data, output):
    return ["sft", "--model", str(model), "--data.train", str(data), "--output", str(output), "--loop.max-steps", "1", "--data.seq-len", "128"]


# (case id, argv builder, text the one-line error must contain). Classes: missing, empty, directory,
# not-a-directory, corrupt gzip, truncated/garbage/empty safetensors, broken config.json, weights of another
# shape, garbage tokenizer.json, out-of-range values, bad language codes, unknown keys.
CASES = [
    ("missing model", lambda p, o: _sft(p["root"] / "nope", p["chat"], o), "model directory not found"),
    ("empty model dir", lambda p, o: _sft(p["empty_dir"], p["chat"], o), "no config.json"),
    ("model is a file", lambda p, o: _sft(p["a_file"], p["chat"], o), "model directory not found"),
    ("truncated safetensors", lambda p, o: _sft(p["truncated_weights"], p["chat"], o), "truncated"),
    ("garbage safetensors", lambda p, o: _sft(p["garbage_weights"], p["chat"], o), "not a safetensors file"),
    ("empty safetensors", lambda p, o: _sft(p["empty_weights"], p["chat"], o), "too short to be a safetensors file"),
    ("broken config.json", lambda p, o: _sft(p["broken_config"], p["chat"], o), "config.json is not valid JSON"),
    ("weights of another width", lambda p, o: _sft(p["other_shape"], p["chat"], o), "weights do not match config.json"),
    ("weights of another FFN width", lambda p, o: _sft(p["other_ffn"], p["chat"], o), "mlp.gate_proj.weight has shape"),
    ("weights of other KV heads", lambda p, o: _sft(p["other_kv"], p["chat"], o), "self_attn.k_proj.weight has shape"),
    ("weights of another depth", lambda p, o: _sft(p["other_layers"], p["chat"], o), "the weights hold 2 layers but num_hidden_layers is 3"),
    ("garbage tokenizer in model", lambda p, o: _sft(p["garbage_tokenizer_model"], p["chat"], o), "tokenizer.json is not valid JSON"),
    ("garbage tokenizer", lambda p, o: ["model", "init", "--tokenizer", str(p["garbage_tokenizer"]), "--output", str(o)],
     "not a Hugging Face tokenizer"),
    ("missing data", lambda p, o: _sft(p["model"], p["root"] / "nope.jsonl", o), "matches no file"),
    ("data is a directory", lambda p, o: _sft(p["model"], p["empty_dir"], o), "matches only directories"),
    ("empty data", lambda p, o: _sft(p["model"], p["empty_jsonl"], o), "no usable"),
    ("only shard is not gzip", lambda p, o: ["pretrain", "--model", str(p["model"]), "--data.train", str(p["not_gzip"]),
                                             "--output", str(o), "--loop.max-steps", "1", "--data.seq-len", "128"], "no usable text"),
    ("binary config file", lambda p, o: ["sft", "--config", str(p["weights"])], "not UTF-8 text"),
    ("config is a directory", lambda p, o: ["sft", "--config", str(p["empty_dir"])], "config file not found"),
    ("output is a file", lambda p, o: ["model", "init", "--tokenizer", str(p["tokenizer"]), "--output", str(p["a_file"])],
     "is a file, not a folder"),
    ("fertility on a non-gzip .gz", lambda p, o: ["tokenizer", "fertility", "--tokenizer", str(p["tokenizer"]),
                                                  "--input", str(p["not_gzip"]), "--output", str(o)], "no text to measure"),
    ("tokenizer on a non-gzip .gz", lambda p, o: ["tokenizer", "train", "--input", str(p["not_gzip"]), "--output", str(o),
                                                  "--vocab-size", "300"], "Not a gzipped file"),
    ("lid threshold -5", lambda p, o: ["corpus", "build", "--input", str(p["en_gz"]), "--output", str(o), "--languages", "en",
                                       "--lid.threshold", "-5"], "key 'lid.threshold' is -5.0"),
    ("language xx in build", lambda p, o: ["corpus", "build", "--input", str(p["en_gz"]), "--output", str(o), "--languages", "xx"],
     "'xx', which is not an ISO 639-1"),
    ("language xx in sft", lambda p, o: _sft(p["model"], p["chat"], o) + ["--data.default-lang", "xx"], "not an ISO 639-1"),
    ("language xx in mix", lambda p, o: ["corpus", "mix", "--tokenizer", str(p["tokenizer"]), "--output", str(o),
                                         "--set", f"sources=[{{lang: xx, paths: ['{p['en_gz']}']}}]"], "'sources[0].lang' is 'xx'"),
    ("lr nan", lambda p, o: _sft(p["model"], p["chat"], o) + ["--optim.lr", "nan"], "key 'optim.lr' is nan"),
    ("vocab 10M", lambda p, o: ["tokenizer", "train", "--input", str(p["en_gz"]), "--output", str(o), "--vocab-size", "10000000"],
     "use at most 1,048,576"),
    ("hidden_size -4", lambda p, o: ["model", "init", "--tokenizer", str(p["tokenizer"]), "--output", str(o),
                                     "--set", "overrides.hidden_size=-4"], "'hidden_size' is -4"),
    ("3 heads", lambda p, o: ["model", "init", "--tokenizer", str(p["tokenizer"]), "--output", str(o),
                              "--set", "overrides.num_attention_heads=3"], "not divisible by num_attention_heads 3"),
    ("GQA kv heads", lambda p, o: ["model", "init", "--tokenizer", str(p["tokenizer"]), "--output", str(o),
                                   "--set", "overrides.num_key_value_heads=3"], "not a multiple of num_key_value_heads 3"),
    ("unknown override", lambda p, o: ["model", "init", "--tokenizer", str(p["tokenizer"]), "--output", str(o),
                                       "--set", "overrides.hiden_size=32"], "'overrides.hiden_size' is not a LlamaConfig attribute"),
    ("auto_map override", lambda p, o: ["model", "init", "--tokenizer", str(p["tokenizer"]), "--output", str(o),
                                        "--set", "overrides.auto_map={AutoModel: evil.Model}"], "'overrides.auto_map'"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(case, bad, tmp_path, capsys):
    _, argv, expected = case
    code = cli.main(argv(bad, tmp_path / "out"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    # One error line, last; before it at most the warning that counts rejected records (a corrupt shard).
    assert err[-1].startswith("polyglot-llama ") and ": error: " in err[-1], err
    assert all(" WARNING " in line and "skipped" in line for line in err[:-1]) and "Traceback" not in "".join(err), err
    assert expected in err[-1], err[-1]


def test_unreadable_file_is_one_line(bad, tmp_path, capsys, monkeypatch):
    """Permission denied on config.json (simulated: the tests may run as root, who reads anything)."""
    real_read_bytes = Path.read_bytes

    def denied(self):
        if self.name == "config.json":
            raise PermissionError(13, "Permission denied")
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert cli.main(_sft(bad["model"], bad["chat"], tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json: cannot read config.json (permission denied)" in err[0]


def test_corrupt_shards_are_quarantined_and_counted(bad, tmp_path):
    """Corrupt and truncated .gz shards beside good ones: the good records are read, the damaged shards are
    counted with their reason and size, and the records before a truncation are kept (nothing lost silently)."""
    from polyglot_llama.train.data import read_documents
    from polyglot_llama.train.sft_data import load_conversations

    rejects = RejectCounter()
    docs = read_documents([str(bad["not_gzip"]), str(bad["truncated_gz"]), str(bad["en_gz"])], "text", "lang", "en", rejects)
    en_lines = (SAMPLE_DIR / "en.jsonl").read_text(encoding="utf-8").splitlines()
    lost = {Path(f["file"]).name: f for f in rejects.lost_files}
    assert set(lost) == {"not_gzip.jsonl.gz", "truncated.jsonl.gz"}
    assert lost["not_gzip.jsonl.gz"]["after_line"] == 0 and "Not a gzipped file" in lost["not_gzip.jsonl.gz"]["reason"]
    assert "truncated compressed file" in lost["truncated.jsonl.gz"]["reason"]
    kept_before_damage = lost["truncated.jsonl.gz"]["after_line"]
    assert 0 < kept_before_damage < 2000
    assert len(docs["en"]) == len(en_lines) + kept_before_damage
    assert rejects.lost_bytes == bad["not_gzip"].stat().st_size + bad["truncated_gz"].stat().st_size
    assert rejects.count == 2 and all("quarantined" in reason for reason in rejects.by_reason())

    chats = _gz(tmp_path / "chat.jsonl.gz", bad["chat"].read_text().splitlines())
    rejects = RejectCounter()
    conversations = load_conversations([str(bad["not_gzip"]), str(chats)], rejects)
    assert len(conversations) == 4 and rejects.count == 1 and len(rejects.lost_files) == 1


def test_mix_with_a_corrupt_shard_reports_it(bad, tmp_path, capsys):
    out = tmp_path / "mix"
    assert cli.main(["corpus", "mix", "--tokenizer", str(bad["tokenizer"]), "--output", str(out), "--write-shards", "false",
                     "--set", f"sources=[{{lang: en, paths: ['{bad['en_gz']}', '{bad['not_gzip']}']}}]"]) == 0
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [Path(r["file"]).name for r in rejected] == ["not_gzip.jsonl.gz"] and "quarantined" in rejected[0]["reason"]


def test_a_different_runs_folder_is_refused_then_overwritten(bad, tmp_path, capsys):
    out = tmp_path / "model"
    argv = ["model", "init", "--tokenizer", str(bad["tokenizer"]), "--output", str(out)]
    assert cli.main(argv + ["--seed", "1"]) == 0
    assert cli.main(argv + ["--seed", "1"]) == 0  # the same run again: allowed (resume / redo)
    first = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert cli.main(argv + ["--seed", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds the output of a different `model init` run (seed 1 -> 2)" in err[0] and "--overwrite" in err[0]
    assert (out / "model.safetensors").read_bytes() == first  # refused before anything was written
    assert cli.main(argv + ["--seed", "2", "--overwrite"]) == 0
    assert (out / "model.safetensors").read_bytes() != first
    # --overwrite never deletes a folder polyglot-llama did not write
    assert cli.main(["model", "init", "--tokenizer", str(bad["tokenizer"]), "--output", str(bad["root"]), "--overwrite"]) == 2
    assert "was not written by polyglot-llama" in capsys.readouterr().err
    assert bad["a_file"].is_file()


def test_changed_input_content_is_a_different_run(bad, tmp_path, capsys):
    tokenizer = tmp_path / "tok"
    shutil.copytree(bad["tokenizer"], tokenizer)
    argv = ["model", "init", "--tokenizer", str(tokenizer), "--output", str(tmp_path / "m")]
    assert cli.main(argv) == 0
    capsys.readouterr()
    config = json.loads((tokenizer / "tokenizer_config.json").read_text())
    (tokenizer / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 77}))
    assert cli.main(argv) == 2
    assert f"input {tokenizer.resolve()} changed" in capsys.readouterr().err


def test_unexpected_error_is_one_line_with_the_traceback_in_the_log(bad, tmp_path, capsys, monkeypatch):
    import polyglot_llama.model.init as init

    def broken(cfg):
        raise RuntimeError("simulated bug\nsecond line")

    monkeypatch.setattr(init, "run", broken)
    out = tmp_path / "m"
    assert cli.main(["model", "init", "--tokenizer", str(bad["tokenizer"]), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: RuntimeError: simulated bug" in err[0] and str(out / "model_init.log") in err[0]
    assert "Traceback" in (out / "model_init.log").read_text() and "def broken" not in err[0]


def test_console_is_quiet_and_the_log_file_has_the_detail(bad, tmp_path, capsys):
    out = tmp_path / "m"
    assert cli.main(["model", "init", "--tokenizer", str(bad["tokenizer"]), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and len(captured.out.strip().splitlines()) == 1
    assert json.loads(captured.out)["output"] == str(out)
    assert "INFO transformers" in (out / "model_init.log").read_text()
    assert cli.main(["model", "init", "--tokenizer", str(bad["tokenizer"]), "--output", str(out), "--verbose"]) == 0
    assert "INFO transformers" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["model", "init", "--tokenizer", "{tok}", "--output", "{out}", "--set", "overrides.num_attention_heads=3"], "num_attention_heads 3"),
    (["sft", "--model", "{truncated}", "--data.train", "{chat}", "--output", "{out}"], "truncated"),
])
def test_subprocess_exit_2_and_no_traceback(argv, expected, bad, tmp_path):
    values = {"tok": bad["tokenizer"], "out": tmp_path / "out", "truncated": bad["truncated_weights"], "chat": bad["chat"]}
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "polyglot_llama.cli", *[a.format(**values) for a in argv]],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr


def test_auto_map_is_not_copied_into_outputs(bad, tmp_path):
    from polyglot_llama.model.checkpoint import load_causal_lm, save_checkpoint

    source = tmp_path / "remote"
    shutil.copytree(bad["model"], source)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModelForCausalLM": "evil.Model"}}))
    with pytest.raises(UserError, match="ships its own model code .auto_map.*trust_remote_code"):
        load_causal_lm(source)  # remote code runs only when asked for
    model = load_causal_lm(bad["model"])
    model.config.auto_map = {"AutoModelForCausalLM": "evil.Model"}  # e.g. a trusted model's code reference
    save_checkpoint(model, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "auto_map" not in written and written["hidden_size"] == config["hidden_size"]


def test_pretrain_refuses_another_runs_folder(bad, tmp_path, capsys):
    """The audit's case: pretrain into a finished run's folder with another lr "resumed" at its last step."""
    out = tmp_path / "run"
    argv = ["pretrain", "--model", str(bad["model"]), "--output", str(out), "--data.train", str(SAMPLE_DIR / "en.jsonl"),
            "--data.seq-len", "64", "--loop.micro-batch-size", "4", "--loop.max-steps", "2", "--schedule.warmup-steps", "1"]
    assert cli.main(argv + ["--optim.lr", "0.003"]) == 0
    capsys.readouterr()
    assert cli.main(argv + ["--optim.lr", "0.001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different `pretrain` run (optim.lr 0.003 -> 0.001)" in err[0]


def test_demo_into_another_languages_folder_is_refused(tmp_path, capsys):
    from polyglot_llama import fingerprint
    from polyglot_llama.config import to_dict
    from polyglot_llama.demo.pipeline import DemoConfig

    out = tmp_path / "demo"
    fingerprint.claim(to_dict(DemoConfig(lang="ko", quick=True, output=str(out))), out, "demo")  # a Korean demo's folder
    assert cli.main(["demo", "--lang", "ja", "--quick", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'lang "ko" -> "ja"' in err[0] and "--overwrite" in err[0]


def test_demo_step_reruns_when_its_inputs_change(tmp_path, capsys):
    """Each demo step is keyed on its config and input bytes: unchanged -> reused; changed -> its folder is
    cleared and the step runs again (a stale artefact is never reused because its folder exists)."""
    from polyglot_llama.demo.pipeline import Demo, DemoConfig

    text = tmp_path / "text.jsonl"
    shutil.copy(SAMPLE_DIR / "en.jsonl", text)
    out = tmp_path / "demo"

    def step() -> str:
        demo = Demo(DemoConfig(output=str(out)))
        demo.stage("tokenizer train", {"input": [str(text)], "output": str(out / "tok"), "vocab_size": 300},
                   str(out / "tok" / "tokenizer.json"), lambda r: "")
        return demo.summary[-1]["status"]

    assert step() == "ran"
    (out / "tok" / "stale.txt").write_text("left by the previous run")
    assert step() == "reused"
    shutil.copy(SAMPLE_DIR / "de.jsonl", text)  # same path, other content
    assert step() == "ran"
    assert not (out / "tok" / "stale.txt").exists()
    assert step() == "reused"


def test_datatrove_detail_goes_to_the_log_file(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert cli.main(["corpus", "build", "--input", str(SAMPLE_DIR / "en.jsonl"), "--output", str(out),
                     "--languages", "en", "--steps", "gopher_quality"]) == 0
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "INFO" not in err and "Stats" not in err  # datatrove's per-task lines and statistics blocks
    log = (out / "corpus_build.log").read_text()
    assert "Launching pipeline" in log and "Stats" in log
