"""One-paragraph plain-language summaries of a result, in English, Chinese and Spanish."""

from __future__ import annotations

import math

from model.errors import InspectorError
from model.label_names import UNKNOWN
from reports.numbers import STYLES

TEXT = {
    "en": {
        "pass": "{part} passed inspection: score {score} is below the threshold {threshold}.",
        "fail": "{part} FAILED inspection: score {score} is at or above the threshold {threshold} (by {diff}).",
        "fail_nan": "{part} FAILED inspection: the model gave no valid score (NaN or infinite), so the part is failed to be safe; check the model.",
        "part": "Part {serial}",
        "part_anon": "The part",
        "none": "No localised defect region was found; the part differs from good parts overall.",
        "regions": "{n} defect regions found. The largest is {type} ({severity} severity) at x={x}, y={y}, {w}x{h} px, covering {area} px{mm} ({pct} of the image){conf}.",
        "region": "1 defect region found: {type} ({severity} severity) at x={x}, y={y}, {w}x{h} px, covering {area} px{mm} ({pct} of the image){conf}.",
        "mm": ", {v} mm²",
        "conf": " with {c} confidence",
        "listed": "The {k} most severe are listed.",
        "severity": {"low": "low", "medium": "medium", "high": "high"},
        "anomaly": "an unclassified anomaly",
        "unknown": "a defect of a type not seen before (unknown)",
        "typed": "The defect looks like {type}{conf}.",
        "peak": "No pixel reached the pixel threshold: the region is where the anomaly map peaks, and the part differs from good parts overall.",
    },
    "zh": {
        "pass": "{part}检测合格：得分 {score} 低于阈值 {threshold}。",
        "fail": "{part}检测不合格：得分 {score} 达到或高于阈值 {threshold}（高出 {diff}）。",
        "fail_nan": "{part}检测不合格：模型未给出有效得分（NaN 或无穷大），为安全起见判为不合格；请检查模型。",
        "part": "零件 {serial} ",
        "part_anon": "该零件",
        "none": "未发现局部缺陷区域；零件整体与合格件存在差异。",
        "regions": "发现 {n} 个缺陷区域。最大的区域为{type}（严重程度：{severity}），位于 x={x}, y={y}，尺寸 {w}x{h} 像素，面积 {area} 像素{mm}（占图像 {pct}）{conf}。",
        "region": "发现 1 个缺陷区域：{type}（严重程度：{severity}），位于 x={x}, y={y}，尺寸 {w}x{h} 像素，面积 {area} 像素{mm}（占图像 {pct}）{conf}。",
        "mm": "，合 {v} 平方毫米",
        "conf": "，置信度 {c}",
        "listed": "仅列出其中最严重的 {k} 个。",
        "severity": {"low": "低", "medium": "中", "high": "高"},
        "anomaly": "未分类异常",
        "unknown": "一种未见过的缺陷类型（未知）",
        "typed": "缺陷类型判断为{type}{conf}。",
        "peak": "没有像素达到像素阈值：该区域为异常图的峰值处，零件整体与合格件存在差异。",
    },
    "es": {
        "pass": "{part} superó la inspección: la puntuación {score} está por debajo del umbral {threshold}.",
        "fail": "{part} NO superó la inspección: la puntuación {score} alcanza o supera el umbral {threshold} (lo supera en {diff}).",
        "fail_nan": "{part} NO superó la inspección: el modelo no dio una puntuación válida (NaN o infinita), así que se rechaza por seguridad; revise el modelo.",
        "part": "La pieza {serial}",
        "part_anon": "La pieza",
        "none": "No se encontró ninguna región de defecto localizada; la pieza difiere en conjunto de las piezas buenas.",
        "regions": "Se encontraron {n} regiones con defecto. La mayor es {type} (gravedad {severity}) en x={x}, y={y}, de {w}x{h} px, que cubre {area} px{mm} ({pct} de la imagen){conf}.",
        "region": "Se encontró 1 región con defecto: {type} (gravedad {severity}) en x={x}, y={y}, de {w}x{h} px, que cubre {area} px{mm} ({pct} de la imagen){conf}.",
        "mm": ", {v} mm²",
        "listed": "Se listan las {k} más graves.",
        "conf": ", con una confianza del {c}",  # it read "con 900 px (...) con una confianza" beside "con {area} px"
        "severity": {"low": "baja", "medium": "media", "high": "alta"},
        "anomaly": "una anomalía sin clasificar",
        "unknown": "un defecto de un tipo no visto antes (desconocido)",
        "typed": "El defecto parece ser {type}{conf}.",
        "peak": "Ningún píxel alcanzó el umbral de píxel: la región es donde el mapa de anomalías alcanza su máximo, y la pieza difiere en conjunto de las piezas buenas.",
    },
}
LANGUAGES = tuple(TEXT)


def describe(result, lang: str = "en") -> str:
    """Plain-language summary of an InspectionResult."""
    if not isinstance(lang, str) or lang not in TEXT:  # a list, unhashable, raised TypeError
        raise InspectorError(f"language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    t = TEXT[lang]
    part = t["part"].format(serial=result.serial) if result.serial else t["part_anon"]
    num = STYLES[lang]  # numbers as the language writes them, with the digits that tell the score from the threshold
    score, threshold = num.apart(result.score, result.threshold), num.apart(result.threshold, result.score)
    if result.verdict == "PASS":
        parts = [t["pass"].format(part=part, score=score, threshold=threshold)]
    elif not math.isfinite(result.score):
        parts = [t["fail_nan"].format(part=part)]
    else:
        parts = _failed(result, t, num, part, score, threshold, _type_names(lang))
    return (" " if lang != "zh" else "").join(parts + _warnings(result.warnings, lang))


def _type_names(lang: str):
    """A defect type's name in `lang` where the reports translate it (crack: 裂纹, grieta); others as they are."""
    if lang == "en":
        return lambda name: name
    from reports.i18n import translations
    from reports.render import translate_value

    gettext = translations(lang).gettext
    return lambda name: translate_value(gettext, name)


def _failed(result, t: dict, num, part: str, score: str, threshold: str, type_name) -> list[str]:
    # by how much, not a ratio: "3.3x the margin of a good part" meant nothing beside a threshold near or below 0
    diff = num.significant(result.score - result.threshold, 3)
    parts = [t["fail"].format(part=part, score=score, threshold=threshold, diff=diff)]
    if not result.regions:
        parts.append(t["none"])
        if getattr(result, "defect_type", None):
            kind = t["unknown"] if result.defect_type == UNKNOWN else type_name(result.defect_type)
            conf = t["conf"].format(c=num.percent(100 * result.type_confidence, 0)) if result.type_confidence is not None else ""
            parts.append(t["typed"].format(type=kind, conf=conf))
    else:
        r = result.regions[0]
        x, y, w, h = r.box
        kind = {"anomaly": t["anomaly"], UNKNOWN: t["unknown"]}.get(r.type) or type_name(r.type)
        conf = t["conf"].format(c=num.percent(100 * r.confidence, 0)) if r.confidence is not None else ""
        pct = 100.0 * r.area_px / max(result.image_shape[0] * result.image_shape[1], 1)
        found = result.found
        # the area in mm² where the station knows its scale (DecisionConfig.mm_per_px), as the record and reports give it
        mm = t["mm"].format(v=num.significant(r.area_mm2, 3)) if r.area_mm2 is not None else ""
        parts.append(t["region" if found == 1 else "regions"].format(
            n=found, type=kind, severity=t["severity"][r.severity], x=x, y=y, w=w, h=h, area=num.count(r.area_px), mm=mm,
            pct=_share(num, pct), conf=conf))
        if found > len(result.regions):
            parts.append(t["listed"].format(k=len(result.regions)))
        if r.located_by == "map_peak":
            parts.append(t["peak"])
    return parts


def _share(num, pct: float) -> str:
    """A region's share of the image: two decimals, or two significant digits below 0.01 % (a 16 px pit on a 12 MP
    image read "0.00% of the image", as if it covered nothing)."""
    return num.percent(pct, 2) if pct >= 0.01 or pct <= 0 else num.significant(pct, 2) + num.percent_sign


def _warnings(warnings: list[str], lang: str) -> list[str]:
    """Each of the result's warnings in `lang`, as the reports show them: a FAIL a dark or blurred frame caused reads
    as the camera's fault, not the part's."""
    if not warnings:
        return []
    from reports.i18n import translations
    from reports.warnings import translate_warning

    gettext = translations(lang).gettext
    end, colon = ("。", "：") if lang == "zh" else (".", ": ")  # each a sentence: they ran together ("... like it Warning: ...")
    return [f"{gettext('Warning')}{colon}{text}{'' if text.endswith(('.', '。')) else end}" for text in (translate_warning(gettext, w) for w in warnings)]
