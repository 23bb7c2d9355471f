"""`model extend`: old rows bit-identical, new rows initialised as documented, padding, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from polyglot_llama.errors import UserError
from polyglot_llama.model.checkpoint import load_causal_lm
from polyglot_llama.model.extend import ModelExtendConfig, run
from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend_tokenizer

KO = Path(__file__).resolve().parents[3] / "polyglot_llama" / "resources" / "sample_text" / "ko.jsonl"


@pytest.fixture(scope="module")
def ko_tokenizer_dir(en_tokenizer_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ko_tok") / "tok"
    extend_tokenizer(TokenizerExtendConfig(base=str(en_tokenizer_dir), input=[str(KO)], new_tokens=300, output=str(out)))
    return out


@pytest.fixture(scope="module")
def tied_model_dir(en_tokenizer_dir, tmp_path_factory) -> Path:
    from polyglot_llama.model.init import ModelInitConfig, run as init

    out = tmp_path_factory.mktemp("tied") / "model"
    init(ModelInitConfig(tokenizer=str(en_tokenizer_dir), output=str(out), overrides={"tie_word_embeddings": True}))
    return out


def hand_subword_ids(piece: str, old_vocab: dict[str, int]) -> list[int] | None:
    """The old ids of a piece, by hand, when no old merge can apply inside it: the English base knows no
    Hangul, so each Hangul character falls back to its UTF-8 bytes (<0x..> ids) and each known character
    stays itself. Returns None when two known characters are adjacent (an old merge might join them)."""
    ids, previous_known = [], False
    for char in piece:
        known = char in old_vocab
        if known and previous_known:
            return None
        ids += [old_vocab[char]] if known else [old_vocab[f"<0x{b:02X}>"] for b in char.encode()]
        previous_known = known
    return ids


@pytest.mark.parametrize("tied", [False, True])
def test_old_rows_identical_and_new_rows_are_subword_means(en_model_dir, tied_model_dir, en_tokenizer_dir,
                                                          ko_tokenizer_dir, tmp_path, tied):
    model_dir = tied_model_dir if tied else en_model_dir
    result = run(ModelExtendConfig(model=str(model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "out"),
                                   init="subword-mean"))
    before, after = load_causal_lm(model_dir), load_causal_lm(tmp_path / "out")
    assert result["tied_embeddings"] is tied and result["embedding_rows"] == 812
    old_in, new_in = before.get_input_embeddings().weight, after.get_input_embeddings().weight
    old_out, new_out = before.get_output_embeddings().weight, after.get_output_embeddings().weight
    assert new_in.shape == (812, 64) and new_out.shape == (812, 64) and after.config.vocab_size == 812
    assert torch.equal(new_in[:512], old_in) and torch.equal(new_out[:512], old_out)
    assert (new_out.data_ptr() == new_in.data_ptr()) is tied

    old_vocab = Tokenizer.from_file(str(en_tokenizer_dir / "tokenizer.json")).get_vocab()
    new_vocab = Tokenizer.from_file(str(ko_tokenizer_dir / "tokenizer.json")).get_vocab()
    checked = 0
    for piece, i in new_vocab.items():
        ids = hand_subword_ids(piece, old_vocab) if i >= 512 else None
        if ids:
            assert torch.allclose(new_in[i], old_in[ids].mean(0), atol=1e-6), piece
            assert torch.allclose(new_out[i], old_out[ids].mean(0), atol=1e-6), piece
            checked += 1
    assert checked > 250


def test_untie_head_gives_a_tied_model_its_own_head_explicitly(tied_model_dir, en_model_dir, ko_tokenizer_dir, tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    result = run(ModelExtendConfig(model=str(tied_model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "out"),
                                   init="distill", init_steps=2, untie_head=True))
    assert result["untied_head"] is True and result["tied_embeddings"] is False and result["model_type"] == "llama"
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["model_type"] == "llama"
    assert json.loads((tmp_path / "out" / "new_tokens.json").read_text())["untied_head"] is True
    with safe_open(tmp_path / "out" / "model.safetensors", "pt") as f:
        head, embed = f.get_tensor("lm_head.weight"), f.get_tensor("model.embed_tokens.weight")
    old = load_causal_lm(tied_model_dir).get_input_embeddings().weight
    assert torch.equal(head[:512], old) and torch.equal(embed[:512], old)  # both copies keep the old rows
    assert not torch.equal(head[512:], embed[512:])  # the fit moved input and output rows apart
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert loaded.get_output_embeddings().weight.data_ptr() != loaded.get_input_embeddings().weight.data_ptr()
    assert torch.equal(loaded.get_output_embeddings().weight, head)
    # Already untied: nothing to untie, and the flag says so.
    untied = run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "u"),
                                   init="subword-mean", untie_head=True))
    assert untied["untied_head"] is False and untied["tied_embeddings"] is False


def test_mean_and_random_inits_and_padding(en_model_dir, ko_tokenizer_dir, tmp_path):
    run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "mean"),
                          init="mean", pad_to_multiple_of=64))
    before, after = load_causal_lm(en_model_dir), load_causal_lm(tmp_path / "mean")
    rows = after.get_input_embeddings().weight
    assert rows.shape[0] == 832  # 812 tokens rounded up to 13 x 64
    expected = before.get_input_embeddings().weight.mean(0)
    assert torch.allclose(rows[512:], expected.expand(320, -1), atol=1e-6)  # new and padding rows
    assert torch.allclose(after.lm_head.weight[700], before.lm_head.weight.mean(0), atol=1e-6)

    for name, seed in (("r1", 1), ("r2", 1), ("r3", 2)):
        run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / name),
                              init="random", seed=seed))
    r1, r2, r3 = (load_causal_lm(tmp_path / n).get_input_embeddings().weight[512:] for n in ("r1", "r2", "r3"))
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)
    assert 0.015 < r1.std().item() < 0.025  # initializer_range 0.02


def test_output_loads_runs_and_records_new_ids(en_model_dir, ko_tokenizer_dir, tmp_path):
    run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "out"),
                          pad_to_multiple_of=64, init_steps=1))
    record = json.loads((tmp_path / "out" / "new_tokens.json").read_text())
    assert record["old_vocab_size"] == 512 and record["new_token_ids"] == list(range(512, 812))
    assert record["init"] == "distill" and record["distill"]["steps"] == 1 and record["tokenizer"] == str(ko_tokenizer_dir)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    batch = tokenizer(["바닷가 마을에서는 해가 뜨기 전에"], return_tensors="pt")
    assert batch["input_ids"].max() >= 512
    out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape[-1] == 832 and torch.isfinite(out.loss)


def test_untie_head_on_a_model_without_an_output_module_is_a_one_line_error(tied_model_dir, ko_tokenizer_dir,
                                                                              tmp_path, monkeypatch):
    from transformers import LlamaForCausalLM

    monkeypatch.setattr(LlamaForCausalLM, "get_output_embeddings", lambda self: None)  # e.g. a head computed in forward
    with pytest.raises(UserError, match="has no output-embedding module .* run without --untie-head") as e:
        run(ModelExtendConfig(model=str(tied_model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "x"),
                              init="subword-mean", untie_head=True))
    assert "\n" not in str(e.value) and str(tied_model_dir) in str(e.value)


def test_mismatched_model_and_tokenizer_are_one_line_errors(en_model_dir, multi_tokenizer_dir, ko_tokenizer_dir, tmp_path):
    with pytest.raises(UserError, match="does not extend the model's tokenizer") as e:
        run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(multi_tokenizer_dir), output=str(tmp_path / "x")))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="adds no tokens"):
        run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(en_model_dir), output=str(tmp_path / "x")))
    # A model whose embedding matrix is smaller than its own tokenizer.
    small = tmp_path / "small"
    shutil.copytree(en_model_dir, small)
    config = json.loads((small / "config.json").read_text())
    config["vocab_size"] = 400
    (small / "config.json").write_text(json.dumps(config))
    from safetensors.torch import load_file, save_file  # the weights must match config.json (a damaged pair is refused)

    weights = load_file(small / "model.safetensors")
    save_file({k: v[:400] if v.shape[0] == 512 else v for k, v in weights.items()}, small / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserError, match="400 embedding rows but its tokenizer .* has 512 tokens"):
        run(ModelExtendConfig(model=str(small), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "x")))


def test_logit_offset_moves_new_token_logits_by_that_many_nats(en_model_dir, en_tokenizer_dir, ko_tokenizer_dir, tmp_path):
    for name, offset in (("plain", 0.0), ("offset", -5.0)):
        run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / name), logit_offset=offset,
                              init="subword-mean"))
    plain, shifted = load_causal_lm(tmp_path / "plain"), load_causal_lm(tmp_path / "offset")
    old = Tokenizer.from_file(str(en_tokenizer_dir / "tokenizer.json"))
    new_vocab = Tokenizer.from_file(str(ko_tokenizer_dir / "tokenizer.json")).get_vocab()
    pieces = [p for p, i in sorted(new_vocab.items(), key=lambda kv: kv[1]) if i >= 512]
    ids = torch.tensor([[t.id for p in pieces for t in old.model.tokenize(p)][:512]])  # the text the offset is fitted on
    with torch.no_grad():
        diff = shifted(ids).logits[0, :, 512:] - plain(ids).logits[0, :, 512:]  # [T, new]
        old_diff = shifted(ids).logits[0, :, :512] - plain(ids).logits[0, :, :512]
    assert diff.mean().item() == pytest.approx(-5.0, rel=0.05)  # fitted on all windows, checked on the first
    assert torch.equal(old_diff, torch.zeros_like(old_diff))  # old tokens' logits untouched (untied head)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("init_steps", -1, "key 'init_steps' is -1; give 0 (subword-mean rows, no fitting) or more"),
    ("init_lr", 0.0, "key 'init_lr' is 0.0; it must be positive"),
    ("init_max_tokens", 0, "key 'init_max_tokens' is 0; it must be positive"),
    ("init_chunk_chars", -5, "key 'init_chunk_chars' is -5; it must be positive"),
    ("init_hidden_weight", -0.5, "key 'init_hidden_weight' is -0.5; give 0 (output distributions only) or more"),
    ("init_average_last", 1.5, "key 'init_average_last' is 1.5; give a share of the fit's steps from 0 (the last "
                               "step's rows) to 1 (the mean over every step)"),
])
def test_distill_settings_out_of_range_name_their_key(key, value, message):
    with pytest.raises(UserError) as error:
        ModelExtendConfig(model="m", tokenizer="t", output="o", **{key: value})
    assert str(error.value) == message


@pytest.mark.parametrize(("steps", "share", "first"), [(480, 0.75, 121), (48, 0.5, 25), (10, 0.7, 4), (5, 1.0, 1),
                                                     (5, 0.0, 0), (0, 0.75, 0), (3, 0.1, 3)])
def test_the_rows_kept_average_the_last_share_of_the_fit_steps(steps, share, first):
    from polyglot_llama.model.extend import average_from

    assert average_from(ModelExtendConfig(model="m", tokenizer="t", output="o", init_steps=steps, init_average_last=share)) == first


def test_distill_counts_the_init_text_records_it_could_not_read(en_model_dir, ko_tokenizer_dir, tmp_path):
    from polyglot_test_utils import sample_texts

    text = tmp_path / "ko_init.jsonl"
    text.write_text(json.dumps({"text": sample_texts("ko")[0]}, ensure_ascii=False) + "\n{not json\n", encoding="utf-8")
    result = run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "out"),
                                   init_text=[str(text)], init_steps=1))
    assert result["distill"]["text"] == str(text) and result["distill"]["rejected_records"] == 1


def test_advice_names_each_language_more_than_two_percent_worse_and_the_fix():
    from polyglot_llama.model.extend import extension_advice

    report = {"ko": {"before": 2.436, "after": 2.769, "change": "+13.7%"},
              "ja": {"before": 2.000, "after": 2.039, "change": "+1.9%"},  # within 2 %: not named
              "en": {"before": 1.036, "after": 1.042, "change": "+0.6%"}}
    advice = extension_advice(report, "distill")
    assert advice.startswith("bits per byte rose more than 2 % (ko +13.7%): give --init-text more text")
    assert "ja +" not in advice and "en +" not in advice
    assert "use --init distill" in extension_advice(report, "subword-mean")
    assert extension_advice({"ko": {"before": 2.0, "after": 2.039, "change": "+1.9%"}}, "distill") is None
    assert extension_advice({}, "distill") is None
