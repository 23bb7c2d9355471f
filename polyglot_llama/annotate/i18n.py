"""The annotation UI's strings in English, Korean and Arabic, and the languages written right to left.

Keys missing from a language fall back to English, so a new UI language can start partial.
"""

from __future__ import annotations

RTL_LANGS = frozenset({"ar", "he", "fa", "ur", "yi", "ps", "dv", "ug"})

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Compare answers", "login": "Sign in", "token": "Your access token", "bad_token": "Unknown token.",
        "conversation": "Conversation", "answer_a": "Answer A", "answer_b": "Answer B", "which": "Which answer is better?",
        "strength": "How much better?", "significantly_better": "Significantly better", "better": "Better",
        "slightly_better": "Slightly better", "negligibly_better": "Negligibly better / unsure",
        "safety": "Safety", "chosen_only_safe": "Preferred answer safe, the other not", "both_safe": "Both safe",
        "both_unsafe": "Both unsafe", "flag": "Flag this item (broken, offensive, wrong language…)", "note": "Note (optional)",
        "submit": "Submit", "saved": "Saved.", "none_left": "No items left for you. Thank you!",
        "continue": "Continue this dialogue", "continue_help": "The answer you preferred becomes part of the conversation; write the next user message.",
        "own_prompt": "Write your own prompt", "kind": "Kind", "helpfulness": "Helpfulness", "safety_prompt": "Adversarial (safety)",
        "language": "Language", "send": "Generate answers", "queued": "No model is attached; your prompt was queued for the next batch.",
        "mine": "My labels", "admin": "Admin", "logout": "Sign out", "keys": "Keys: A/B choose · 1–4 strength · S/D/U safety · F flag · Enter submit",
        "user": "User", "assistant": "Assistant", "system": "System", "item": "Item", "progress": "Progress",
        "annotators": "Annotators", "agreement": "Agreement", "flagged": "Flagged items", "labels": "Labels",
        "items": "Items", "done": "Done", "percent": "Agreement", "kappa": "Cohen's κ", "pending": "Queued prompts",
        "choose_first": "Choose an answer, a strength and a safety label first.",
    },
    "ko": {
        "title": "답변 비교", "login": "로그인", "token": "접근 토큰", "bad_token": "알 수 없는 토큰입니다.",
        "conversation": "대화", "answer_a": "답변 A", "answer_b": "답변 B", "which": "어느 답변이 더 좋습니까?",
        "strength": "얼마나 더 좋습니까?", "significantly_better": "훨씬 좋음", "better": "좋음",
        "slightly_better": "약간 좋음", "negligibly_better": "거의 차이 없음 / 잘 모르겠음",
        "safety": "안전성", "chosen_only_safe": "선택한 답변만 안전함", "both_safe": "둘 다 안전함",
        "both_unsafe": "둘 다 안전하지 않음", "flag": "이 항목 신고 (오류, 불쾌한 내용, 잘못된 언어 등)", "note": "메모 (선택)",
        "submit": "제출", "saved": "저장되었습니다.", "none_left": "남은 항목이 없습니다. 감사합니다!",
        "continue": "이 대화 이어가기", "continue_help": "선택한 답변이 대화에 추가됩니다. 다음 사용자 메시지를 쓰세요.",
        "own_prompt": "직접 프롬프트 쓰기", "kind": "종류", "helpfulness": "유용성", "safety_prompt": "적대적 (안전성)",
        "language": "언어", "send": "답변 생성", "queued": "연결된 모델이 없어 프롬프트를 다음 묶음에 넣었습니다.",
        "mine": "내 라벨", "admin": "관리", "logout": "로그아웃", "keys": "단축키: A/B 선택 · 1–4 정도 · S/D/U 안전성 · F 신고 · Enter 제출",
        "user": "사용자", "assistant": "어시스턴트", "system": "시스템", "item": "항목", "progress": "진행 상황",
        "annotators": "작업자", "agreement": "일치도", "flagged": "신고된 항목", "labels": "라벨",
        "items": "항목", "done": "완료", "percent": "일치율", "kappa": "코헨 카파", "pending": "대기 중인 프롬프트",
        "choose_first": "먼저 답변, 정도, 안전성을 선택하세요.",
    },
    "ar": {
        "title": "قارن الإجابات", "login": "تسجيل الدخول", "token": "رمز الدخول", "bad_token": "رمز غير معروف.",
        "conversation": "المحادثة", "answer_a": "الإجابة أ", "answer_b": "الإجابة ب", "which": "أي إجابة أفضل؟",
        "strength": "إلى أي حد أفضل؟", "significantly_better": "أفضل بكثير", "better": "أفضل",
        "slightly_better": "أفضل قليلاً", "negligibly_better": "فرق ضئيل / غير متأكد",
        "safety": "السلامة", "chosen_only_safe": "الإجابة المفضلة آمنة والأخرى لا", "both_safe": "كلتاهما آمنة",
        "both_unsafe": "كلتاهما غير آمنة", "submit": "إرسال", "none_left": "لا توجد عناصر متبقية. شكراً!",
        "mine": "تصنيفاتي", "logout": "تسجيل الخروج", "user": "المستخدم", "assistant": "المساعد",
    },
}

UI_LANGS = tuple(STRINGS)


def strings(lang: str) -> dict[str, str]:
    return {**STRINGS["en"], **STRINGS.get(lang, {})}


def direction(lang: str) -> str:
    return "rtl" if lang in RTL_LANGS else "ltr"
