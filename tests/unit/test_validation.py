import pytest

from polyglot_llama.errors import UserError
from polyglot_llama.languages import check_language
from polyglot_llama.validation import check_fields


@pytest.mark.parametrize("values, message", [
    ({"threshold": -5.0}, "between 0 and 1"),
    ({"min_script_ratio": {"ko": 0.5, "ja": 1.5}}, "between 0 and 1"),
    ({"lr": float("nan")}, "finite"),
    ({"weight_decay": float("inf")}, "finite"),
    ({"max_new_tokens": -1}, "must not be negative"),
    ({"seed": -3}, "must not be negative"),
    ({"vocab_size": 10_000_000}, "at most 1,048,576"),
    ({"languages": ["ko", "xx"]}, r"languages\[1\]"),
    ({"default_lang": "qq"}, "not an ISO 639-1"),
])
def test_bad_values_name_the_key(values, message):
    with pytest.raises(UserError, match=message):
        check_fields(values, "section.")


def test_good_values_pass_and_languages_are_normalised():
    values = {"threshold": {"ko": 0.0, "default": 1.0}, "lr": 3e-4, "workers": -1, "margin": -0.5,
              "languages": ["kor_Hang", "ZH", "yue"], "lang": "iw", "default_lang": "und", "vocab_size": 256_000}
    checked = check_fields(values)
    assert checked["languages"] == ["ko", "zh", "yue"] and checked["lang"] == "he" and checked["default_lang"] == "und"
    assert checked["threshold"] == values["threshold"] and checked["workers"] == -1


def test_check_language_message():
    with pytest.raises(UserError, match="key 'replay.lang' is 'xx', which is not an ISO 639-1 language code"):
        check_language("xx", "replay.lang")
