import pytest

from polyglot_llama.errors import UserError
from polyglot_llama.languages import normalize_language, normalize_lid_label


@pytest.mark.parametrize("code", ["ko", "KO", "ko-KR", "ko_Hang", "kor", "kor_Hang", "__label__kor_Hang", "__label__ko"])
def test_korean_spellings(code):
    assert normalize_language(code) == "ko"


def test_macrolanguages_and_rare_codes():
    assert normalize_language("cmn_Hani") == "zh"
    assert normalize_language("arb_Arab") == "ar"
    assert normalize_language("swh") == "sw"
    assert normalize_language("yue") == "yue"  # no ISO 639-1 code: passes through


def test_lid176_als_is_alemannic_but_glotlid_als_is_albanian():
    assert normalize_lid_label("__label__als") == "gsw"
    assert normalize_lid_label("__label__als_Latn") == "sq"


@pytest.mark.parametrize("bad", ["", "k", "korean!", "1234"])
def test_bad_codes_raise(bad):
    with pytest.raises(UserError):
        normalize_language(bad)
