"""A CSV's bytes as UTF-8 in the encoding its contract declares (GBK read as GB 18030, or
UTF-8 with or without a BOM); a file in the other encoding is refused by that name.

GB 18030 text is converted by the C library's ``iconv`` where the machine has it, reading
the file itself while Python checks the bytes are not UTF-8: about a quarter of the time of
Python's codec and the encoding back to UTF-8 (0.25 s against 0.9 s for a 130 MiB
settlement file; handing iconv the bytes through a pipe cost 0.45-0.75 s). Python's codec
stays the reference: it reads a file ``iconv`` refuses (and names the line of its first
invalid bytes) or where there is no ``iconv``.
Both give the characters of GB 18030-2022, which gave real code points to 25 that the
2005 edition (Python's) kept in the private use area, rare name characters among them
(𠂇, 龴): a register typed in Unicode holds those, not the private ones.
"""

from __future__ import annotations

import codecs
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from guardline.errors import DeliveryError

BOM = b"\xef\xbb\xbf"
PROBE = 65536
# GB 18030-2005's private-use code points that the 2022 edition maps to characters.
GB18030_2022 = {
    0xE78D: 0xFE10, 0xE78E: 0xFE12, 0xE78F: 0xFE11, 0xE790: 0xFE13, 0xE791: 0xFE14,
    0xE792: 0xFE15, 0xE793: 0xFE16, 0xE794: 0xFE17, 0xE795: 0xFE18, 0xE796: 0xFE19,
    0xE7C7: 0x1E3F, 0xE816: 0x20087, 0xE817: 0x20089, 0xE818: 0x200CC, 0xE81E: 0x9FB4,
    0xE826: 0x9FB5, 0xE82B: 0x9FB6, 0xE82C: 0x9FB7, 0xE831: 0x215D7, 0xE832: 0x9FB8,
    0xE83B: 0x2298F, 0xE843: 0x9FB9, 0xE854: 0x9FBA, 0xE855: 0x241FE, 0xE864: 0x9FBB,
}  # fmt: skip
# The first byte of those code points in UTF-8 (U+E000-U+EFFF): absent, nothing to map.
_PRIVATE_LEAD = b"\xee"
_PRIVATE = re.compile("[\ue78d-\ue864]")


def utf8(data: bytes, path: Path, encoding: str, file: str) -> bytes:
    """The text of ``data``, the bytes of ``path``, as UTF-8 (no BOM); a file in another
    encoding is named as such."""
    if _declared(encoding) == "UTF-8":
        decode(data, encoding, file)  # refuses what is not UTF-8, naming the line
        return data[len(BOM) :] if data.startswith(BOM) else data
    if data.isascii():
        return data
    with ThreadPoolExecutor(1) as pool:  # iconv converts while Python reads the bytes as UTF-8
        conversion = pool.submit(_iconv, path)
        _refuse_utf8(data, file)
        converted = conversion.result()
    if converted is None:
        return decode(data, encoding, file).encode("utf-8")
    if _PRIVATE_LEAD in converted:  # an iconv of the 2005 edition: map as Python's path does
        return _gb18030_2022(converted.decode("utf-8")).encode("utf-8")
    return converted


def _gb18030_2022(text: str) -> str:
    """The 2005 edition's private-use characters as the 2022 edition's (one scan when none)."""
    return text.translate(GB18030_2022) if _PRIVATE.search(text) else text


def decode(data: bytes, encoding: str, file: str) -> str:
    """Text in the declared encoding; a file in another encoding is named as such."""
    declared = _declared(encoding)
    if declared == "GBK" and not data.isascii():
        _refuse_utf8(data, file)
    try:
        text = data.decode("gb18030" if declared == "GBK" else "utf-8-sig")
        return _gb18030_2022(text) if declared == "GBK" else text
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        hint = ""
        if declared == "UTF-8":
            try:
                data.decode("gb18030")
                hint = " (it reads as GBK)"
            except UnicodeDecodeError:
                pass
        raise DeliveryError(
            file, f"not {declared} text{hint}: invalid bytes at line {line}", row=line
        ) from None


def _declared(encoding: str) -> str:
    return "GBK" if encoding.lower() in ("gbk", "gb18030", "gb2312") else "UTF-8"


def _refuse_utf8(data: bytes, file: str) -> None:
    """A GBK source's file that is valid UTF-8 (and not plain ASCII) was saved as UTF-8.

    Its first 64 KiB are tried alone first: a GBK file fails there, in its header, and
    Python's decoder sizes its output for the whole input before it finds the first
    invalid byte (0.07 s for 130 MiB, wherever that byte is)."""
    try:
        codecs.utf_8_decode(data[:PROBE], "strict", False)  # not final: a character cut at the end is fine
        data.decode("utf-8")
    except UnicodeDecodeError:
        return
    raise DeliveryError(file, "the file is UTF-8 encoded; the contract says GBK")


def _iconv(path: Path) -> bytes | None:
    """The file in GB 18030 as UTF-8 by the C library, or None where it has no iconv or
    refuses the bytes (Python's codec then names the line). iconv reads the file itself:
    writing it the bytes through a pipe cost Python a poll and a write per 64 KiB."""
    program = shutil.which("iconv")
    if program is None:
        return None
    done = subprocess.run(
        [program, "-f", "GB18030", "-t", "UTF-8", "--", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None
