"""One language-code normaliser used everywhere.

Language-ID models label languages differently: lid.176 says ``__label__ko``, GlotLID and OpenLID say
``__label__kor_Hang``, configs say ``kor`` or ``ko-KR``. The project's one scheme is ISO 639-1 where a
two-letter code exists and ISO 639-3 otherwise, with no script suffix (``ko``, ``ja``, ``zh``, ``yue``).
"""

from __future__ import annotations

from .errors import UserError

# ISO 639-3 (and 639-2/B) → ISO 639-1 for the languages a multilingual LLM project meets most.
_ISO3_TO_ISO1 = {
    "afr": "af", "amh": "am", "ara": "ar", "arb": "ar", "asm": "as", "aze": "az", "azj": "az", "bel": "be",
    "ben": "bn", "bod": "bo", "bos": "bs", "bul": "bg", "cat": "ca", "ces": "cs", "cze": "cs", "cym": "cy",
    "wel": "cy", "dan": "da", "deu": "de", "ger": "de", "ell": "el", "gre": "el", "eng": "en", "epo": "eo",
    "est": "et", "ekk": "et", "eus": "eu", "baq": "eu", "fas": "fa", "pes": "fa", "per": "fa", "fin": "fi",
    "fra": "fr", "fre": "fr", "gle": "ga", "glg": "gl", "guj": "gu", "heb": "he", "hin": "hi", "hrv": "hr",
    "hun": "hu", "hye": "hy", "arm": "hy", "ind": "id", "isl": "is", "ice": "is", "ita": "it", "jpn": "ja",
    "jav": "jv", "kat": "ka", "geo": "ka", "kaz": "kk", "khm": "km", "kan": "kn", "kor": "ko", "kir": "ky",
    "lat": "la", "lao": "lo", "lit": "lt", "lav": "lv", "lvs": "lv", "mkd": "mk", "mac": "mk", "mal": "ml",
    "mon": "mn", "khk": "mn", "mar": "mr", "msa": "ms", "zsm": "ms", "may": "ms", "mya": "my", "bur": "my",
    "nep": "ne", "npi": "ne", "nld": "nl", "dut": "nl", "nor": "no", "nob": "nb", "nno": "nn", "ori": "or",
    "ory": "or", "pan": "pa", "pol": "pl", "por": "pt", "pus": "ps", "pbt": "ps", "ron": "ro", "rum": "ro",
    "rus": "ru", "sin": "si", "slk": "sk", "slo": "sk", "slv": "sl", "som": "so", "sqi": "sq", "alb": "sq",
    "als": "sq", "srp": "sr", "swe": "sv", "swa": "sw", "swh": "sw", "tam": "ta", "tel": "te", "tgk": "tg",
    "tha": "th", "tgl": "tl", "fil": "tl", "tur": "tr", "tat": "tt", "uig": "ug", "ukr": "uk", "urd": "ur",
    "uzb": "uz", "uzn": "uz", "vie": "vi", "yid": "yi", "ydd": "yi", "yor": "yo", "zho": "zh", "chi": "zh",
    "cmn": "zh", "zul": "zu", "xho": "xh", "hau": "ha", "ibo": "ig",
}
# Every ISO 639-1 code (and the withdrawn `sh` that lid.176 still emits), so that a typo such as `xx` or `kr` is caught where a config is read.
ISO639_1 = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee
el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is
it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms
mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk
sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi
yo za zh zu sh
""".split())
# Withdrawn two-letter codes that older data still carries.
_ISO1_WITHDRAWN = {"iw": "he", "in": "id", "ji": "yi", "mo": "ro"}
# ISO 639-2/3 codes for "no particular language" that configs use as a default.
SPECIAL_CODES = frozenset({"und", "mul", "zxx", "mis"})

# lid.176 (fastText) uses a few codes that are not ISO 639-1: `als` is Alemannic (ISO 639-3 `gsw`), not the
# ISO 639-3 `als` (Tosk Albanian) that GlotLID means. Only fastText's labels go through this table.
_LID176_SPECIAL = {"als": "gsw", "eml": "egl", "bh": "bho"}

LANGUAGE_NAMES = {
    "en": "English", "ko": "Korean", "ja": "Japanese", "zh": "Chinese", "de": "German", "fr": "French",
    "es": "Spanish", "ru": "Russian", "ar": "Arabic", "hi": "Hindi", "sw": "Swahili", "th": "Thai",
    "vi": "Vietnamese", "id": "Indonesian", "pt": "Portuguese", "it": "Italian", "tr": "Turkish",
}


def normalize_language(code: str) -> str:
    """Map ``ko``, ``KO``, ``ko-KR``, ``ko_Hang``, ``kor``, ``kor_Hang`` or ``__label__kor_Hang`` to ``ko``.

    Unknown but well-formed codes (2–3 letters) pass through lower-cased, so rare languages still work.
    """
    if not isinstance(code, str) or not code.strip():
        raise UserError(f"language code {code!r} is empty; use an ISO 639-1/639-3 code such as 'ko' or 'kor'")
    text = code.strip()
    if text.startswith("__label__"):
        text = text[len("__label__"):]
    base = text.replace("-", "_").split("_")[0].lower()
    if not base.isalpha() or not 2 <= len(base) <= 3:
        raise UserError(f"language code {code!r} is not an ISO 639 code; use e.g. 'ko', 'kor' or 'kor_Hang'")
    if len(base) == 3:
        return _ISO3_TO_ISO1.get(base, base)
    return _ISO1_WITHDRAWN.get(base, base)


def normalize_lid_label(label: str, scheme: str = "auto") -> str:
    """Normalise a fastText language-ID label.

    ``scheme`` is ``lid176`` for Meta's lid.176 models (whose ``als`` means Alemannic), ``glotlid`` for
    GlotLID/OpenLID (``xxx_Scrp`` labels) or ``auto``: labels with a script suffix are GlotLID-style,
    two-letter ones lid.176-style.
    """
    text = label[len("__label__"):] if label.startswith("__label__") else label
    lid176_style = scheme == "lid176" or (scheme == "auto" and "_" not in text)
    if lid176_style and text in _LID176_SPECIAL:
        return _LID176_SPECIAL[text]
    return normalize_language(text)


def check_language(code: str, key: str = "lang") -> str:
    """Normalise a language code read from a config, rejecting two-letter codes that are not ISO 639-1.

    Data records go through the lenient `normalize_language`; a config value is a promise about the whole
    run, so `xx` must fail when the config loads, not after a model was loaded and 0 records matched.
    Three-letter codes are not checked against the full ISO 639-3 table (7,900 codes), only their shape.
    """
    try:
        normalized = normalize_language(code)
    except UserError as e:
        raise UserError(f"key '{key}': {e}") from None
    if len(normalized) == 2 and normalized not in ISO639_1:
        raise UserError(f"key '{key}' is {code!r}, which is not an ISO 639-1 language code; "
                        "use e.g. 'ko', 'ja', 'de' (or a three-letter ISO 639-3 code such as 'yue')")
    return normalized


def language_name(code: str) -> str:
    """A readable name for reports; falls back to the code."""
    return LANGUAGE_NAMES.get(code, code)
