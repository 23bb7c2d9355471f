import gzip
import json

import pytest

from polyglot_llama.errors import UserError
from polyglot_llama.io import RejectCounter, expand_inputs, iter_records, write_jsonl


def test_iter_records_counts_every_bad_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{bad json\n\xff\xfe\n{"text": 5}\n[1, 2]\n\n{"text": "fine"}\n')
    rejects = RejectCounter()
    texts = [r["text"] for r in iter_records([str(path)], rejects)]
    assert texts == ["ok", "fine"]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejects.rejected] == [
        (2, "malformed JSON"), (3, "invalid UTF-8"), (4, "missing or non-string field 'text'"), (5, "record is not a JSON object"),
    ]


def test_gzip_plain_text_and_atomic_write(tmp_path):
    write_jsonl(tmp_path / "b.jsonl.gz", [{"text": "α"}, {"text": "β"}])
    with gzip.open(tmp_path / "b.jsonl.gz", "rt") as f:
        assert [json.loads(line)["text"] for line in f] == ["α", "β"]
    (tmp_path / "c.txt").write_text("para one\n\npara two\n")
    records = list(iter_records([str(tmp_path / "b.jsonl.gz"), str(tmp_path / "c.txt")], RejectCounter()))
    assert [r["text"] for r in records] == ["α", "β", "para one", "para two"]
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_expand_inputs_errors(tmp_path):
    with pytest.raises(UserError, match="matches no file"):
        expand_inputs(str(tmp_path / "*.jsonl"))
