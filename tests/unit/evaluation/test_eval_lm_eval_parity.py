"""Parity with lm-evaluation-harness's HF backend: the same log-likelihoods and accuracies on the same model
and items, with a tokenizer that adds BOS and one that does not; and a harness task run through our suite."""

import json
import shutil
from pathlib import Path

import pytest
from eval_helpers import write_jsonl

from polyglot_llama.evaluation.checkpoints import Checkpoint
from polyglot_llama.evaluation.data import DataSpec
from polyglot_llama.evaluation.lm import Runtime
from polyglot_llama.evaluation.multiple_choice import MultipleChoiceTask
from polyglot_llama.io import RejectCounter

pytest.importorskip("lm_eval")

ITEMS = [
    {"lang": "en", "q": "Which of these is a fruit?", "choices": ["apple", "chair", "car"], "answer": 0},
    {"lang": "en", "q": "Which of these is an animal? ", "choices": ["table", "dog"], "answer": 1},
    {"lang": "en", "q": "The library opens at nine, and the children", "choices": ["read", "sleep", "run"], "answer": 0},
    {"lang": "ko", "q": "다음 중 과일은 무엇입니까?", "choices": ["의자", "사과", "자동차", "신발"], "answer": 1},
    {"lang": "ko", "q": "서울은 한국의", "choices": ["수도입니다", "강입니다"], "answer": 0},
    {"lang": "de", "q": "Welches davon ist ein Tier?", "choices": ["Hund", "Tisch"], "answer": 0},
]


@pytest.fixture(scope="module", params=["bos", "no_bos"])
def checkpoint(request, tmp_path_factory, multi_model_dir) -> Checkpoint:
    path = multi_model_dir
    if request.param == "no_bos":  # a tokenizer that adds nothing by default, like GPT-2's or SmolLM2's
        path = tmp_path_factory.mktemp("no_bos") / "model"
        shutil.copytree(multi_model_dir, path)
        spec = json.loads((path / "tokenizer.json").read_text())
        spec["post_processor"] = None
        (path / "tokenizer.json").write_text(json.dumps(spec))
    return Checkpoint(str(path), request.param, Runtime(device="cpu", dtype="float32", batch_size=3))


def _harness_loglikelihoods(lm, prompts_and_choices):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=3)
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(prompt, " " + choice), idx=j)
                for prompt, choices in prompts_and_choices for j, choice in enumerate(choices)]
    return [ll for ll, _ in harness.loglikelihood(requests, disable_tqdm=True)]


def test_choice_loglikelihoods_and_accuracy_equal_lm_eval(tmp_path, checkpoint):
    lm = checkpoint.language_model()
    prompts = [(f"{item['q']}\nAnswer:", item["choices"]) for item in ITEMS]
    theirs = iter(_harness_loglikelihoods(lm, prompts))
    items = []
    for prompt, choices in prompts:
        pairs = [lm.split_continuation(prompt, " " + c) for c in choices]
        items.append((pairs[0][0], [cont for _, cont in pairs]))
    tallies = {}
    for item, ours in zip(ITEMS, lm.choice_loglikelihoods(items)):
        reference = [next(theirs) for _ in ours]
        assert ours == pytest.approx(reference, abs=1e-4)
        tally = tallies.setdefault(item["lang"], [0, 0])
        tally[0] += max(range(len(reference)), key=reference.__getitem__) == item["answer"]
        tally[1] += 1
    task = MultipleChoiceTask(name="mc", data=DataSpec(files=[str(write_jsonl(tmp_path / "mc.jsonl", ITEMS))]),
                              prompt="{q}\nAnswer:")
    result = task.evaluate(checkpoint, RejectCounter())["languages"]
    assert {lang: (r["accuracy"], r["n"]) for lang, r in result.items()} == {
        lang: (right / n, n) for lang, (right, n) in tallies.items()}


def test_harness_task_runs_through_the_suite_and_report(tmp_path, multi_model_dir):
    from polyglot_llama.evaluation.suite import EvalConfig, run

    rows = [{"q": item["q"], "choices": item["choices"], "answer": item["answer"]} for item in ITEMS if item["lang"] == "en"]
    data = write_jsonl(tmp_path / "mc_en.jsonl", rows)
    harness_dir = tmp_path / "harness_tasks"
    harness_dir.mkdir()
    (harness_dir / "tiny_mc_en.yaml").write_text(
        "task: tiny_mc_en\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: \"{{q}}\\nAnswer:\"\ndoc_to_choice: \"{{choices}}\"\ndoc_to_target: answer\n"
        "metric_list:\n  - metric: acc\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: harness\ntasks:\n  - {kind: lm_eval_harness, name: harness_mc, tasks: [tiny_mc_en], "
                     "include_path: harness_tasks, languages: {tiny_mc_en: en}}\n"
                     f"  - {{kind: multiple_choice, name: ours_mc, data: {{files: [{data}], default_lang: en}}, "
                     "prompt: \"{q}\\nAnswer:\"}\n")
    summary = run(EvalConfig(suite=str(suite), model=[str(multi_model_dir)], output=str(tmp_path / "out"),
                             device="cpu", dtype="float32", batch_size=3))
    assert summary["errors"] == []
    results = json.loads(Path(tmp_path / "out" / "results.json").read_text())
    by_task = {t["name"]: t["results"]["model"]["languages"]["en"] for t in results["tasks"]}
    assert by_task["harness_mc"]["n"] == 3
    assert by_task["harness_mc"]["acc"] == pytest.approx(by_task["ours_mc"]["accuracy"])
    assert "harness_mc" in (tmp_path / "out" / "results.md").read_text()
