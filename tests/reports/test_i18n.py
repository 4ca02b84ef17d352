"""Catalogs: complete for zh and es, placeholders intact, compiled the way GNU msgfmt compiles them."""

from __future__ import annotations

import gettext
import re
import subprocess

import pytest

from reports.errors import ReportError
from reports.i18n import LANGUAGES, LOCALES, compile_mo, parse_po, source_messages, translations

from .conftest import need

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize("lang", ["zh", "es"])
def test_every_message_is_translated_with_its_placeholders(lang):
    catalog = parse_po((LOCALES / lang / "LC_MESSAGES" / "reports.po").read_text(encoding="utf-8"))
    messages = source_messages()
    nplurals = int(re.search(r"nplurals=(\d+)", catalog[""]).group(1))
    assert len(messages) > 80 and sum("\0" in m for m in messages) >= 5
    missing = [m for m in messages if not catalog.get(m)]
    assert not missing, f"untranslated in {lang}: {missing[:5]}"
    for m in messages:  # a plural's forms together (a singular may say "the part" where the plural says "the %(n)s parts")
        assert set(PLACEHOLDER.findall(m)) == set(PLACEHOLDER.findall(catalog[m])), m
        if "\0" in m:
            assert len(catalog[m].split("\0")) == nplurals, m
    stale = [k for k in catalog if k and k not in messages]
    assert not stale, f"{lang} catalog has entries nothing uses: {stale[:5]}"


def test_translations_load_and_english_is_the_source():
    assert translations("zh").gettext("Shift report") == "班次报告"
    assert translations("es").gettext("Inspection report") == "Informe de inspección"
    assert translations("en").gettext("Shift report") == "Shift report"
    assert set(LANGUAGES) == {p.name for p in LOCALES.iterdir() if p.is_dir()}
    with pytest.raises(ReportError, match="language 'fr'"):
        translations("fr")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_in_memory_catalog_matches_gnu_msgfmt(lang, tmp_path):
    import io

    msgfmt = need("msgfmt")
    po = LOCALES / lang / "LC_MESSAGES" / "reports.po"
    mo = tmp_path / "reports.mo"
    subprocess.run([msgfmt, "--check-format", "-o", str(mo), str(po)], check=True, capture_output=True)
    gnu = gettext.GNUTranslations(mo.open("rb"))
    ours = gettext.GNUTranslations(io.BytesIO(compile_mo(parse_po(po.read_text(encoding="utf-8")))))
    for m in source_messages():
        if "\0" in m:
            assert all(ours.ngettext(*m.split("\0"), n) == gnu.ngettext(*m.split("\0"), n) for n in (0, 1, 2, 5))
        else:
            assert ours.gettext(m) == gnu.gettext(m)
    assert ours.info().get("language") == lang
    assert ours.ngettext("part", "parts", 2) == gnu.ngettext("part", "parts", 2)


def test_parse_po_multiline_plural_and_fuzzy_free():
    po = 'msgid ""\nmsgstr "Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n' \
         'msgid "a"\n"b"\nmsgstr "x"\n"y"\n\nmsgid "one"\nmsgid_plural "many"\nmsgstr[0] "uno"\nmsgstr[1] "muchos"\n\nmsgid "empty"\nmsgstr ""\n'
    catalog = parse_po(po)
    assert catalog["ab"] == "xy" and "empty" not in catalog
    t = gettext.GNUTranslations(__import__("io").BytesIO(compile_mo(catalog)))
    assert t.gettext("ab") == "xy" and t.ngettext("one", "many", 1) == "uno" and t.ngettext("one", "many", 5) == "muchos"


def test_spanish_text_writes_a_percentage_as_its_numbers_do():
    """'intervalo del 95%' stood beside '0,0 %' (Spanish sets a space, not to be broken, before the sign)."""
    messages = parse_po((LOCALES / "es" / "LC_MESSAGES" / "reports.po").read_text(encoding="utf-8"))
    from reports.numbers import STYLES

    assert STYLES["es"].percent_sign == "\u00a0%"
    assert not [m for m in messages.values() if re.search(r"\d%", m)]


def test_the_real_data_sets_defect_types_are_translated():
    """A Chinese validation report of magnetic tiles said 气孔, 裂纹, 毛边 and then "break" and "uneven" in English."""
    from reports.render import translate_value

    zh, es = translations("zh").gettext, translations("es").gettext
    tile = ["blowhole", "break", "crack", "fray", "uneven"]
    steel = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
    assert [translate_value(zh, t) for t in tile] == ["气孔", "断裂", "裂纹", "毛边", "不均匀"]
    assert all(translate_value(es, t) != t for t in tile + steel) and translate_value(zh, "my_own_type") == "my_own_type"
