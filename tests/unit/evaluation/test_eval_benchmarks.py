"""The bundled benchmark task files (eval/benchmarks) on a few records written in each published layout."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eval_helpers import ScriptedCheckpoint, ScriptedLM, write_jsonl

from polyglot_llama.errors import UserError
from polyglot_llama.evaluation.suite import load_suite
from polyglot_llama.io import RejectCounter

SUITE = Path(__file__).resolve().parents[3] / "eval" / "multilingual.yaml"


def _parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, rows)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("benchmarks")
    for dialect, passage in (("kor_Hang", "고양이는 하루에 열여섯 시간을 잔다."), ("eng_Latn", "Cats sleep sixteen hours a day.")):
        _jsonl(root / "belebele" / f"{dialect}.jsonl", [
            {"link": "x", "question_number": 1, "flores_passage": passage, "question": " How long do cats sleep? ",
             "mc_answer1": "16 hours", "mc_answer2": "2 hours", "mc_answer3": "1 hour", "mc_answer4": "0 hours",
             "correct_answer_num": "1", "dialect": dialect, "ds": "2023"}])
    _parquet(root / "xnli" / "de" / "test-00000-of-00001.parquet", [
        {"premise": "Der Hund schläft.", "hypothesis": "Ein Tier ruht.", "label": 0},
        {"premise": "Es regnet.", "hypothesis": "Die Sonne scheint.", "label": 2}])
    _parquet(root / "xnli" / "all_languages" / "test-00000-of-00001.parquet", [{"premise": "x", "hypothesis": "y", "label": 1}])
    _jsonl(root / "xcopa" / "et" / "test.et.jsonl", [
        {"premise": "Mees jäi haigeks.", "choice1": "Ta läks arsti juurde.", "choice2": "Ta läks tantsima.",
         "question": "effect", "label": 0, "idx": 1}])
    _parquet(root / "xstory_cloze" / "ru" / "eval-00000-of-00001.parquet", [
        {"story_id": "a", "input_sentence_1": "Я проснулся.", "input_sentence_2": "Я оделся.", "input_sentence_3": "Я вышел.",
         "input_sentence_4": "Шёл дождь.", "sentence_quiz1": "Я промок.", "sentence_quiz2": "Я полетел.", "answer_right_ending": 1}])
    _parquet(root / "paws-x" / "ko" / "test-00000-of-00001.parquet", [
        {"id": 1, "sentence1": "그는 학교에 갔다.", "sentence2": "그는 학교로 갔다.", "label": 1}])
    _parquet(root / "kobest" / "boolq" / "test-00000-of-00001.parquet", [
        {"paragraph": "서울은 한국의 수도이다.", "question": "서울은 수도인가?", "label": 1}])
    _parquet(root / "kobest" / "copa" / "test-00000-of-00001.parquet", [
        {"premise": "비가 왔다.", "question": "결과", "alternative_1": "땅이 젖었다.", "alternative_2": "해가 떴다.", "label": 0}])
    _parquet(root / "kobest" / "sentineg" / "test-00000-of-00001.parquet", [{"sentence": "정말 좋지 않다.", "label": 0}])
    (root / "kmmlu").mkdir()
    (root / "kmmlu" / "Law-test.csv").write_text(
        "question,answer,A,B,C,D,Category,Human Accuracy\n\"헌법은, 무엇인가?\",2,법률,최고법,관습,조례,Law,0.5\n", encoding="utf-8")
    _parquet(root / "global_mmlu" / "ko" / "test-00000-of-00001.parquet", [
        {"sample_id": "a", "subject": "geo", "question": "한국의 수도는? ", "option_a": "부산", "option_b": "서울",
         "option_c": "대구", "option_d": "인천", "answer": "B"}])
    (root / "mgsm").mkdir()
    (root / "mgsm" / "mgsm_de.tsv").write_text("Anna hat 3 Äpfel und kauft 4. Wie viele?\t7\n"
                                               "Ein Haus kostet 1.200 mal 1000 Euro?\t1200000\n", encoding="utf-8")
    flores = root / "flores200_dataset" / "devtest"
    flores.mkdir(parents=True)
    (flores / "eng_Latn.devtest").write_text("The cat sleeps.\nIt rains.\n", encoding="utf-8")
    (flores / "kor_Hang.devtest").write_text("고양이가 잔다.\n비가 온다.\n", encoding="utf-8")
    (flores / "deu_Latn.devtest").write_text("Die Katze schläft.\n", encoding="utf-8")  # one line short: rejected
    return root


class SpyLM:
    """The real tiny LM, recording each (context, choice) the task asks it to score."""

    def __init__(self, lm):
        self.lm, self.pairs = lm, []

    def split_continuation(self, context, continuation):
        self.pairs.append((context, continuation))
        return self.lm.split_continuation(context, continuation)

    def choice_loglikelihoods(self, items, desc=""):
        return self.lm.choice_loglikelihoods(items, desc)


# (task, {language: n}, the first (context, choice) scored: the published prompt, literally)
MULTIPLE_CHOICE = [
    ("belebele", {"en": 1, "ko": 1},
     ("P: Cats sleep sixteen hours a day.\nQ: How long do cats sleep?\nA: 16 hours\nB: 2 hours\nC: 1 hour\nD: 0 hours\nAnswer:", " A")),
    ("xnli", {"de": 2}, ("", "Der Hund schläft., richtig? Ja, Ein Tier ruht.")),
    ("xcopa", {"et": 1}, ("Mees jäi haigeks seetõttu", " ta läks arsti juurde.")),
    ("xstorycloze", {"ru": 1}, ("Я проснулся. Я оделся. Я вышел. Шёл дождь.", " Я промок.")),
    ("pawsx", {"ko": 1}, ("", "그는 학교에 갔다., 맞죠? 아니요, 그는 학교로 갔다.")),
    ("kobest_boolq", {"ko": 1}, ("서울은 한국의 수도이다. 질문: 서울은 수도인가?\n답변: ", " 아니오")),
    ("kobest_copa", {"ko": 1}, ("비가 왔다. 그래서", " 땅이 젖었다.")),
    ("kobest_sentineg", {"ko": 1}, ("문장: 정말 좋지 않다. 긍부정:", " 부정")),
    ("kmmlu", {"ko": 1}, ("헌법은, 무엇인가?\nA. 법률\nB. 최고법\nC. 관습\nD. 조례\n정답：", " A")),
    ("global_mmlu", {"ko": 1}, ("한국의 수도는?\nA. 부산\nB. 서울\nC. 대구\nD. 인천\nAnswer:", " A")),
]


@pytest.fixture(scope="module")
def tasks(data_root):
    _, loaded = load_suite(SUITE, data_root=str(data_root))
    return {t.name: t for t in loaded}


@pytest.mark.parametrize("name,counts,first", MULTIPLE_CHOICE, ids=[m[0] for m in MULTIPLE_CHOICE])
def test_multiple_choice_benchmark_layouts_and_prompts(name, counts, first, tasks, tiny_checkpoint):
    spy = SpyLM(tiny_checkpoint.language_model())
    rejects = RejectCounter()
    result = tasks[name].evaluate(ScriptedCheckpoint(spy), rejects)["languages"]
    assert {lang: r["n"] for lang, r in result.items()} == counts
    assert spy.pairs[0] == first
    assert rejects.by_reason() == {}  # XNLI's all_languages/ folder is not read: the same items again


def test_target_expressions_pick_the_published_answer(tasks, data_root):
    from polyglot_llama.evaluation import jinja_prompts as jinja

    kmmlu, belebele, gmmlu = tasks["kmmlu"], tasks["belebele"], tasks["global_mmlu"]
    assert jinja.evaluate(kmmlu.target, {"answer": "2"}) == 1  # KMMLU counts from 1
    assert jinja.evaluate(belebele.target, {"correct_answer_num": "4"}) == 3
    assert gmmlu._answer_index({"answer": "B"}, ["A", "B", "C", "D"], "ko") == 1


def test_mgsm_scores_the_final_number(tasks):
    lm = ScriptedLM({"Äpfel": "Sie hat 3 + 4 = 7 Äpfel.", "Haus": "1,200,000"})
    result = tasks["mgsm"].evaluate(ScriptedCheckpoint(lm), RejectCounter())
    assert result["languages"]["de"]["exact_match"] == 1.0 and result["languages"]["de"]["outcomes"] == [1, 1]
    assert lm.prompts[0] == "Frage: Anna hat 3 Äpfel und kauft 4. Wie viele?\nAntwort:"
    lm = ScriptedLM({"Äpfel": "7 oder 8", "Haus": "unbekannt"})
    assert tasks["mgsm"].evaluate(ScriptedCheckpoint(lm), RejectCounter())["languages"]["de"]["exact_match"] == 0.0


def test_flores_pairs_english_with_each_language_by_line(tasks):
    lm = ScriptedLM({"The cat": "고양이가 잔다.", "It rains": "눈이 온다."})
    rejects = RejectCounter()
    result = tasks["flores200"].evaluate(ScriptedCheckpoint(lm), rejects)
    assert lm.prompts[0] == "English phrase: The cat sleeps.\nKorean phrase:"
    ko = result["languages"]["ko"]
    assert ko["n"] == 2 and 0 < ko["chrf"] < 100
    assert list(result["languages"]) == ["ko"]
    assert rejects.by_reason() == {"1 lines where eng_Latn has 2: not aligned": 1}


def test_language_from_path_rejects_paths_without_one(tmp_path):
    from polyglot_llama.evaluation.data import DataSpec, load_by_language

    _parquet(tmp_path / "de" / "test-0.parquet", [{"premise": "a"}])
    _parquet(tmp_path / "all_languages" / "test-0.parquet", [{"premise": "b"}])
    rejects = RejectCounter()
    spec = DataSpec(files=[str(tmp_path / "*" / "test-*.parquet")], lang_from_path="/([a-z]{2})/test-")
    assert load_by_language(spec, ["premise"], rejects) == {"de": [{"premise": "a"}]}
    assert rejects.by_reason() == {"no language in the path (lang_from_path '/([a-z]{2})/test-')": 1}


def test_suite_languages_and_data_root(data_root):
    _, tasks = load_suite(SUITE, ["xnli", "kmmlu"], data_root=str(data_root), languages=["kor_Hang"])
    assert [t.data.languages for t in tasks] == [["ko"], ["ko"]]
    assert tasks[0].data.files == [f"{data_root}/xnli/??/test-*.parquet"]
    with pytest.raises(UserError, match="give --data-root DIR"):
        load_suite(SUITE, ["xnli"])
