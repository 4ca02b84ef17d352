"""Translations (gettext catalogs under reports/locales/<lang>/LC_MESSAGES/reports.po) and the CJK font check.

The .po files are the only source: they are compiled to .mo bytes in memory when first used, so an
installed package needs nothing but its package data and a catalog can never be stale.
"""

from __future__ import annotations

import ast
import gettext
import io
import shutil
import struct
import subprocess
from functools import cache
from pathlib import Path

from reports.errors import ReportError

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "reports"
LANGUAGES = ("en", "zh", "es")
# Where Debian's fonts-noto-cjk puts its sans face, for machines without the fontconfig command-line tools.
NOTO_CJK_FILE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ReportError(f"language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    return lang


def parse_po(text: str) -> dict[str, str]:
    """msgid -> msgstr, untranslated entries left out, the header under ''; a plural entry is keyed
    "msgid\\0msgid_plural" with its forms joined by "\\0", as a .mo file stores it."""
    entries: list[dict[str, str]] = []
    entry: dict[str, str] = {}
    key = ""
    for raw in text.splitlines() + [""]:
        line = raw.strip()
        if not line or line.startswith("#"):
            if not line and entry:
                entries.append(entry)
                entry, key = {}, ""
            continue
        if line.startswith('"'):
            entry[key] += ast.literal_eval(line)
            continue
        key, _, value = line.partition(" ")
        if key in entry:  # a new entry without a blank line between
            entries.append(entry)
            entry = {}
        entry[key] = ast.literal_eval(value)
    messages: dict[str, str] = {}
    for e in entries:
        msgid = e.get("msgid")
        if msgid is None:
            continue
        if "msgid_plural" in e:
            forms = {int(k[7:-1]): v for k, v in e.items() if k.startswith("msgstr[")}
            if all(forms.values()):
                messages[msgid + "\0" + e["msgid_plural"]] = "\0".join(forms[i] for i in sorted(forms))
        elif e.get("msgstr"):
            messages[msgid] = e["msgstr"]
    return messages


def compile_mo(messages: dict[str, str]) -> bytes:
    """GNU .mo bytes (the format gettext.GNUTranslations reads), as Python's Tools/i18n/msgfmt.py writes it."""
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    start = 7 * 4 + 16 * len(keys)
    offsets, pos_id, pos_str = [], start, start + len(ids)
    for k in keys:
        n_id, n_str = len(k.encode()), len(messages[k].encode())
        offsets.append((n_id, pos_id, n_str, pos_str))
        pos_id, pos_str = pos_id + n_id + 1, pos_str + n_str + 1
    header = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)
    table_ids = b"".join(struct.pack("ii", n, p) for n, p, _, _ in offsets)
    table_strs = b"".join(struct.pack("ii", n, p) for _, _, n, p in offsets)
    return header + table_ids + table_strs + ids + strs


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog for a language (English is the source language: a missing entry shows the msgid)."""
    check_language(lang)
    po = LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.is_file():
        if lang == "en":
            return gettext.NullTranslations()
        raise ReportError(f"translations {po}: missing; reinstall the inspector package")
    return gettext.GNUTranslations(io.BytesIO(compile_mo(parse_po(po.read_text(encoding="utf-8")))))


@cache
def cjk_font() -> str | None:
    """A font family that can draw Chinese in the PDF (WeasyPrint finds it through fontconfig), or None if there is none."""
    if shutil.which("fc-list"):
        try:
            out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        families = sorted({f.strip() for line in out.splitlines() for f in line.split(",") if f.strip()})
        for preferred in ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Noto Serif CJK SC"):
            if preferred in families:
                return preferred
        if families:
            return families[0]
        return None
    return "Noto Sans CJK SC" if NOTO_CJK_FILE.is_file() else None


def source_messages() -> list[str]:
    """Every msgid the templates, chart, validation and warnings code pass to _() or ngettext(), plus the warnings' catalog
    messages and record values shown translated (for the catalog check)."""
    import re

    from reports.render import TRANSLATED_VALUES
    from reports.warnings import KNOWN

    string = r"""(["'])((?:\\.|(?!\{0}).)*)\{0}"""
    single = re.compile(r"\b_\(\s*" + string.format(1))
    plural = re.compile(r"\bngettext\(\s*" + string.format(1) + r"\s*,\s*" + string.format(3))
    here = Path(__file__).parent
    files = [*sorted((here / "templates").glob("*.j2")), here / "charts.py", here / "validation.py", here / "warnings.py"]
    texts = [f.read_text(encoding="utf-8") for f in files]
    found = [ast.literal_eval(q + m + q) for t in texts for q, m in single.findall(t)]
    # a plural message is keyed as parse_po keys it: singular NUL plural
    found += [ast.literal_eval(q1 + s + q1) + "\0" + ast.literal_eval(q2 + p + q2) for t in texts for q1, s, q2, p in plural.findall(t)]
    # KNOWN's catalog messages too: model.quality's warnings (capitalised) are no _() literal in warnings.py
    return list(dict.fromkeys([*found, *(message for *_, message in KNOWN), *TRANSLATED_VALUES]))
