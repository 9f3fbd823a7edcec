"""A CSV's bytes as text in the encoding its contract declares (GBK read as GB 18030, or
UTF-8 with or without a BOM); a file in the other encoding is refused by that name.
"""

from __future__ import annotations

from guardline.errors import DeliveryError


def decode(data: bytes, encoding: str, file: str) -> str:
    """Text in the declared encoding; a file in another encoding is named as such."""
    declared = "GBK" if encoding.lower() in ("gbk", "gb18030", "gb2312") else "UTF-8"
    if declared == "GBK" and not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raise DeliveryError(file, "the file is UTF-8 encoded; the contract says GBK")
    try:
        return data.decode("gb18030" if declared == "GBK" else "utf-8-sig")
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
