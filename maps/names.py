"""English names of counties: Hanyu Pinyin from pypinyin, with the official English where one exists."""

from __future__ import annotations

from pypinyin import Style, lazy_pinyin

# Characters the word-level dictionary reads wrongly in these place names (both readings are in the dictionary).
_READINGS = {
    "新都": "xin du",
    "郫都": "pi du",
    "什邡": "shi fang",
    "长宁": "chang ning",
    "筠连": "jun lian",
    "荥经": "ying jing",
}

# Official English of Tibetan and Qiang place names (Ngawa and Garzê), which follow the local language, not pinyin.
_OFFICIAL = {
    "马尔康": "Barkam",
    "阿坝": "Ngawa",
    "若尔盖": "Zoigê",
    "壤塘": "Zamtang",
    "甘孜": "Garzê",
    "德格": "Dêgê",
    "色达": "Sêrtar",
    "石渠": "Sêrxü",
    "道孚": "Dawu",
    "理塘": "Litang",
    "巴塘": "Batang",
}

# Whole names whose English is a translation, not a transcription (Panzhihua's two districts).
_WHOLE = {"东区": "East District", "西区": "West District"}

_PEOPLES = {"羌族": "Qiang", "彝族": "Yi", "藏族": "Tibetan"}
_KINDS = (("自治县", "Autonomous County"), ("区", "District"), ("县", "County"), ("市", "City"))


def _pinyin(base: str) -> str:
    syllables = (_READINGS.get(base) or " ".join(lazy_pinyin(base, style=Style.NORMAL))).split()
    word = syllables[0]
    for syllable in syllables[1:]:
        # Pinyin's apostrophe: a syllable that starts with a vowel after another one (Da'an, Guang'an).
        word += ("'" if syllable[0] in "aoe" else "") + syllable
    return word.capitalize()


def county_english(name_zh: str) -> str:
    """A county-level division's English name: 青羊区 -> Qingyang District, 荣县 -> Rong County."""
    if name_zh in _WHOLE:
        return _WHOLE[name_zh]
    base, kind = name_zh, ""
    for suffix, english in _KINDS:
        if name_zh.endswith(suffix) and len(name_zh) > len(suffix):
            base, kind = name_zh[: -len(suffix)], english
            break
    people = ""
    for zh, en in _PEOPLES.items():
        if kind == "Autonomous County" and base.endswith(zh):
            base, people = base[: -len(zh)], en
    name = _OFFICIAL.get(base) or _pinyin(base)
    return " ".join(part for part in (name, people, kind) if part)
