"""Finishing the PDF chromium writes for a report: Chinese text that copies and searches as written, and the
document's own title, author and subject instead of kaleido's page name.

Noto Sans CJK draws a radical and the ideograph it equals with one glyph (⺠ U+2EA0 and 民 U+6C11 share a
glyph), and chromium's PDF writer names each glyph by the lowest code point that reaches it — so a PDF of
"民恒社区" would copy, and be found by search, as "⺠恒社区", and 运行 as "运⾏". The fix is in the text layer
only: each font's ToUnicode map has those radicals replaced by their ideographs (Kangxi radicals by Unicode's
compatibility mapping, the supplement's by the table below, read from Noto Sans CJK SC's own character map).
The changes are appended as an incremental update (new versions of the changed objects, a new cross-reference
section pointing back to the old one), the standard way to amend a PDF: the bytes chromium wrote stay as they
were, and a PDF this does not understand is returned unchanged.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import zlib
from datetime import datetime, timezone

log = logging.getLogger(__name__)

# CJK Radicals Supplement → the ideograph Noto Sans CJK SC draws with the same glyph (Unicode's equivalents).
RADICAL_SUPPLEMENT = dict(zip(
    "⺂⺃⺅⺇⺉⺋⺍⺎⺏⺐⺒⺓⺔⺖⺘⺙⺛⺞⺟⺠⺡⺣⺦⺨⺩⺫⺭⺮⺯⺰⺱⺲⺹⺺⺽⺾⻂⻃⻄⻅⻇⻈⻉⻊⻋⻍⻐⻑⻒⻓⻕⻖⻘⻙⻚⻛⻜⻞⻟⻠⻡⻢⻥⻦⻧⻨⻩⻪⻫⻬⻭⻮⻯⻰⻲⻳",
    "乛乚亻𠘨刂㔾𭕄兀尣尢巳幺彑忄扌攵旡歺母民氵灬丬犭𤣩罒礻𥫗糹纟罓罒耂肀𦥑艹衤覀西见𧢲讠贝𧾷车辶钅長镸长𨸏阝青韦页风飞𩙿飠饣"
    "𩠐马鱼鸟卤麦黄黾斉齐歯齿竜龙亀龟"))
KANGXI = range(0x2F00, 0x2FE0)

_TRAILER = re.compile(rb"trailer\s*<<(.*?)>>\s*startxref\s+(\d+)\s+%%EOF\s*$", re.S)
_TO_UNICODE = re.compile(rb"/ToUnicode\s+(\d+)\s+0\s+R")
_HEX_PAIR = re.compile(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_HEX_RANGE = re.compile(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_BLOCKS = re.compile(r"\d+\s+begin(bfchar|bfrange)(.*?)end\1", re.S)


def ideograph_of(char: str) -> str:
    """The ideograph a radical stands for (the character itself for anything else)."""
    if ord(char) in KANGXI:
        return unicodedata.normalize("NFKC", char)
    return RADICAL_SUPPLEMENT.get(char, char)


def _decode(hex_text: str) -> str:
    return bytes.fromhex(hex_text).decode("utf-16-be", errors="surrogatepass")


def _encode(text: str) -> str:
    return text.encode("utf-16-be", errors="surrogatepass").hex().upper()


def repaired_cmap(cmap: str) -> str | None:
    """The ToUnicode CMap with radicals replaced by their ideographs, written as bfchar entries; None when it
    maps no radical."""
    mapping: dict[str, str] = {}
    for kind, body in _BLOCKS.findall(cmap):
        if kind == "bfchar":
            mapping.update((source, _decode(target)) for source, target in _HEX_PAIR.findall(body))
            continue
        for low, high, target in _HEX_RANGE.findall(body):
            width, first, start = len(low), int(low, 16), _decode(target)
            for offset in range(int(high, 16) - first + 1):  # the last UTF-16 unit counts up (PDF 9.10.3)
                mapping[f"{first + offset:0{width}X}"] = start[:-1] + chr(ord(start[-1]) + offset)
    repaired = {source: "".join(ideograph_of(char) for char in text) for source, text in mapping.items()}
    if repaired == mapping:
        return None
    head, tail = cmap.index("endcodespacerange") + len("endcodespacerange"), cmap.rindex("endcmap")
    entries = [f"<{source}> <{_encode(text)}>" for source, text in repaired.items()]
    blocks = ["\n%d beginbfchar\n%s\nendbfchar" % (len(chunk), "\n".join(chunk))
              for chunk in (entries[i:i + 100] for i in range(0, len(entries), 100))]
    return cmap[:head] + "".join(blocks) + "\n" + cmap[tail:]


def _pdf_text(text: str) -> bytes:
    """A PDF text string in UTF-16 (any language), as a hex string."""
    return b"<FEFF" + _encode(text).encode("ascii") + b">"


def _stream_object(pdf: bytes, number: int) -> tuple[bytes, bytes] | None:
    """(dictionary, decoded data) of stream object `number`, or None when it is not a plain stream here."""
    found = re.search(rb"(?<![0-9])%d\s+0\s+obj\s*<<(.*?)>>\s*stream\r?\n" % number, pdf, re.S)
    if found is None:
        return None
    length = re.search(rb"/Length\s+(\d+)(?!\s+\d+\s+R)", found.group(1))
    if length is None:
        return None
    data = pdf[found.end():found.end() + int(length.group(1))]
    if b"/FlateDecode" in found.group(1):
        data = zlib.decompress(data)
    elif b"/Filter" in found.group(1):
        return None
    return found.group(1), data


def finish_pdf(pdf: bytes, *, title: str, author: str, subject: str, created: int) -> bytes:
    """The PDF with its text layer repaired and its document information set (see the module's docstring)."""
    trailer = _TRAILER.search(pdf)
    size = re.search(rb"/Size\s+(\d+)", trailer.group(1)) if trailer else None
    root = re.search(rb"/Root\s+(\d+\s+\d+\s+R)", trailer.group(1)) if trailer else None
    if trailer is None or size is None or root is None:
        log.warning("report PDF left as drawn: no classic trailer to append an update to")
        return pdf
    replaced: dict[int, bytes] = {}
    for number in sorted({int(n) for n in _TO_UNICODE.findall(pdf)}):
        found = _stream_object(pdf, number)
        if found is None:
            continue
        cmap = repaired_cmap(found[1].decode("latin-1"))
        if cmap is not None:
            data = zlib.compress(cmap.encode("latin-1"))
            replaced[number] = b"<</Filter /FlateDecode /Length %d>>\nstream\n%s\nendstream" % (len(data), data)
    info_number = int(size.group(1))
    moment = datetime.fromtimestamp(created, timezone.utc).strftime("D:%Y%m%d%H%M%S+00'00'").encode("ascii")
    replaced[info_number] = (b"<</Title " + _pdf_text(title) + b" /Author " + _pdf_text(author) + b" /Subject "
                             + _pdf_text(subject) + b" /Creator (OneScreen) /Producer (OneScreen, kaleido, Skia/PDF)"
                             + b" /CreationDate (" + moment + b")>>")
    body, offsets = bytearray(pdf if pdf.endswith(b"\n") else pdf + b"\n"), {}
    for number, content in replaced.items():
        offsets[number] = len(body)
        body += b"%d 0 obj\n%s\nendobj\n" % (number, content)
    xref_at = len(body)
    body += b"xref\n"
    for number in sorted(offsets):
        body += b"%d 1\n%010d 00000 n \n" % (number, offsets[number])
    body += b"trailer\n<</Size %d /Root %s /Info %d 0 R /Prev %s>>\nstartxref\n%d\n%%%%EOF\n" % (
        info_number + 1, root.group(1), info_number, trailer.group(2), xref_at)
    return bytes(body)
