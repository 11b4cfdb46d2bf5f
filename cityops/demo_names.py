"""Names for the demo city: bilingual (Chinese and pinyin) place names built from syllable tables, unique
where the app needs them to be, drawn from the city's random generator so they are as deterministic as
the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cityops.hierarchy import Level

if TYPE_CHECKING:
    from cityops.demo_city import _Draft


def _syllables(table: str) -> list[tuple[str, str]]:
    """Parse "华hua 木mu ..." into [("华", "hua"), ("木", "mu"), ...]."""
    return [(entry[0], entry[1:]) for entry in table.split()]


# Characters common in Chinese place names, each read one way only in place names (no polyphones such
# as 长/行/重, no ü syllables), so the pinyin below is the reading.
_PLACE_SYLLABLES = _syllables(
    "华hua 木mu 花hua 园yuan 金jin 桥qiao 新xin 民min 安an 康kang 泰tai 和he 平ping 阳yang 光guang "
    "明ming 东dong 西xi 南nan 北bei 江jiang 海hai 湖hu 山shan 林lin 泉quan 石shi 云yun 龙long 凤feng "
    "春chun 秋qiu 丰feng 宁ning 福fu 兴xing 文wen 德de 嘉jia 瑞rui 祥xiang 永yong 庆qing 荣rong 昌chang "
    "吉ji 润run 清qing 溪xi 湾wan 洲zhou 滨bin 塘tang 浦pu 港gang 泾jing 沙sha 松song 竹zhu 梅mei 兰lan "
    "桂gui 枫feng 柳liu 河he 田tian 青qing 翠cui 白bai 虹hong 锦jin 宝bao 玉yu 珠zhu 汇hui 通tong 高gao "
    "古gu 城cheng 里li 坊fang 庄zhuang 曹cao 鹤he 岳yue 恒heng 益yi 振zhen 鸿hong 耀yao 晨chen 星xing"
)
# Districts: a direction or landmark, then a water or land feature (东港, 临江, 滨湖...).
_DISTRICT_FIRST = _syllables(
    "东dong 西xi 南nan 北bei 临lin 滨bin 江jiang 海hai 金jin 宝bao 嘉jia 松song 青qing 云yun 龙long "
    "凤feng 新xin 华hua 丰feng 瑞rui 安an 永yong 泰tai 鹤he"
)
_DISTRICT_SECOND = _syllables(
    "港gang 江jiang 浦pu 湾wan 山shan 湖hu 洲zhou 川chuan 塘tang 汇hui 桥qiao 宁ning 城cheng 阳yang "
    "林lin 滨bin 泾jing 沙sha 门men 口kou"
)
# Villages in the Yangtze delta are mostly named after a founding family and a feature: 陆家, 沈巷...
_SURNAMES = _syllables(
    "陈chen 王wang 张zhang 李li 刘liu 杨yang 黄huang 周zhou 吴wu 徐xu 孙sun 朱zhu 马ma 胡hu 郭guo "
    "何he 林lin 高gao 罗luo 郑zheng 梁liang 谢xie 宋song 唐tang 韩han 冯feng 邓deng 曹cao 彭peng "
    "萧xiao 田tian 董dong 潘pan 袁yuan 蔡cai 蒋jiang 杜du 叶ye 程cheng 魏wei 沈shen 顾gu 钱qian "
    "陆lu 姚yao 严yan 金jin 倪ni 施shi 范fan"
)
_VILLAGE_FEATURES = _syllables(
    "家jia 宅zhai 巷xiang 浜bang 泾jing 塘tang 桥qiao 湾wan 庄zhuang 港gang 埠bu 渡du 墩dun"
)
# Real Shanghai districts and well-known cities the tables could spell, in either script (溪安 would
# read "Xi'an"): a fictional city avoids them.
_REAL_NAMES = frozenset(
    "浦东 黄浦 徐汇 长宁 静安 普陀 虹口 杨浦 闵行 宝山 嘉定 金山 松江 青浦 奉贤 崇明 海城 "
    "南宁 西宁 西安 南昌 南通 东莞 泰安 福州 龙岩 江门 湖州 金华 丽江 青岛 海口 海门 江阴 海宁 "
    "松原 平阳 东阳 安阳 新安 龙口 "
    "Pudong Huangpu Xuhui Changning Jing'an Putuo Hongkou Yangpu Minhang Baoshan Jiading Jinshan "
    "Songjiang Qingpu Fengxian Chongming Haicheng Nanning Xining Xi'an Nanchang Nantong Dongguan Tai'an "
    "Fuzhou Longyan Jiangmen Huzhou Jinhua Lijiang Qingdao Haikou Haimen Jiangyin Haining Songyuan "
    "Pingyang Dongyang Anyang Xin'an Longkou Shanghai Suzhou Hangzhou Nanjing Ningbo Wuxi".split()
)

_KIND_SUFFIX: dict[tuple[Level, bool], tuple[str, str]] = {
    (Level.DISTRICT, True): ("区", "District"),
    (Level.DISTRICT, False): ("区", "District"),
    (Level.STREET, True): ("街道", "Subdistrict"),
    (Level.STREET, False): ("镇", "Town"),
    (Level.COMMUNITY, True): ("社区", "Community"),
    (Level.COMMUNITY, False): ("村", "Village"),
}


def _pinyin_word(readings: Sequence[str]) -> str:
    """Join syllables into one capitalised word, with the apostrophe pinyin requires before a syllable
    starting with a, o or e (新安 → Xin'an), so the English reads back unambiguously."""
    word = readings[0]
    for reading in readings[1:]:
        word += ("'" if reading[0] in "aoe" else "") + reading
    return word.capitalize()


class _NameBook:
    """Hands out bilingual names, unique where the app needs them to be.

    District and street names are unique city-wide (in Chinese and in pinyin, since 华 and 花 read
    alike); community names are unique within their street. Draws come from the city's generator, so
    names are as deterministic as the map.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._citywide: set[str] = set(_REAL_NAMES)
        self._by_parent: dict[str, set[str]] = {}

    def name_for(self, level: Level, parent: _Draft, urban: bool) -> tuple[str, str]:
        """A fresh ``(name_zh, name_en)`` for a child of ``parent`` of kind urban or rural."""
        if level == Level.COMMUNITY:
            used = self._by_parent.setdefault(parent.code, set())
            first, second = (_PLACE_SYLLABLES, _PLACE_SYLLABLES) if urban else (_SURNAMES, _VILLAGE_FEATURES)
        elif level == Level.DISTRICT:
            used, (first, second) = self._citywide, (_DISTRICT_FIRST, _DISTRICT_SECOND)
        else:
            used, (first, second) = self._citywide, (_PLACE_SYLLABLES, _PLACE_SYLLABLES)
        stem_zh, stem_en = self._fresh_stem(first, second, used)
        suffix_zh, suffix_en = _KIND_SUFFIX[(level, urban)]
        return stem_zh + suffix_zh, f"{stem_en} {suffix_en}"

    def _fresh_stem(
        self, first: list[tuple[str, str]], second: list[tuple[str, str]], used: set[str]
    ) -> tuple[str, str]:
        for _ in range(10_000):
            (zh1, py1), (zh2, py2) = first[self._rng.integers(len(first))], second[self._rng.integers(len(second))]
            stem_zh, stem_en = zh1 + zh2, _pinyin_word([py1, py2])
            if zh1 != zh2 and stem_zh not in used and stem_en not in used:
                used.update((stem_zh, stem_en))
                return stem_zh, stem_en
        raise ValueError("ran out of distinct place names: the syllable tables are too small for this city")
