"""One-paragraph plain-language summaries of a result, in English, Chinese and Spanish."""

from __future__ import annotations

from model.errors import InspectorError
from model.label_names import UNKNOWN

TEXT = {
    "en": {
        "pass": "{part} passed inspection: score {score:.2f} is below the threshold {threshold:.2f}.",
        "fail": "{part} FAILED inspection: score {score:.2f} is above the threshold {threshold:.2f} ({ratio:.1f}x the margin of a good part).",
        "part": "Part {serial}",
        "part_anon": "The part",
        "none": "No localised defect region was found; the part differs from good parts overall.",
        "regions": "{n} defect region(s) found. The largest is {type} ({severity} severity) at x={x}, y={y}, {w}x{h} px, covering {area} px ({pct:.2f}% of the image){conf}.",
        "conf": " with {c:.0%} confidence",
        "severity": {"low": "low", "medium": "medium", "high": "high"},
        "anomaly": "an unclassified anomaly",
        "unknown": "a defect of a type not seen before (unknown)",
        "typed": "The defect looks like {type}{conf}.",
    },
    "zh": {
        "pass": "{part}检测合格：得分 {score:.2f} 低于阈值 {threshold:.2f}。",
        "fail": "{part}检测不合格：得分 {score:.2f} 高于阈值 {threshold:.2f}（为合格件裕度的 {ratio:.1f} 倍）。",
        "part": "零件 {serial} ",
        "part_anon": "该零件",
        "none": "未发现局部缺陷区域；零件整体与合格件存在差异。",
        "regions": "发现 {n} 个缺陷区域。最大的区域为{type}（严重程度：{severity}），位于 x={x}, y={y}，尺寸 {w}x{h} 像素，面积 {area} 像素（占图像 {pct:.2f}%）{conf}。",
        "conf": "，置信度 {c:.0%}",
        "severity": {"low": "低", "medium": "中", "high": "高"},
        "anomaly": "未分类异常",
        "unknown": "一种未见过的缺陷类型（未知）",
        "typed": "缺陷类型判断为{type}{conf}。",
    },
    "es": {
        "pass": "{part} superó la inspección: la puntuación {score:.2f} está por debajo del umbral {threshold:.2f}.",
        "fail": "{part} NO superó la inspección: la puntuación {score:.2f} supera el umbral {threshold:.2f} ({ratio:.1f} veces el margen de una pieza buena).",
        "part": "La pieza {serial}",
        "part_anon": "La pieza",
        "none": "No se encontró ninguna región de defecto localizada; la pieza difiere en conjunto de las piezas buenas.",
        "regions": "Se encontraron {n} región(es) con defecto. La mayor es {type} (gravedad {severity}) en x={x}, y={y}, de {w}x{h} px, con {area} px ({pct:.2f}% de la imagen){conf}.",
        "conf": " con una confianza del {c:.0%}",
        "severity": {"low": "baja", "medium": "media", "high": "alta"},
        "anomaly": "una anomalía sin clasificar",
        "unknown": "un defecto de un tipo no visto antes (desconocido)",
        "typed": "El defecto parece ser {type}{conf}.",
    },
}
LANGUAGES = tuple(TEXT)


def describe(result, lang: str = "en") -> str:
    """Plain-language summary of an InspectionResult."""
    if lang not in TEXT:
        raise InspectorError(f"language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    t = TEXT[lang]
    part = t["part"].format(serial=result.serial) if result.serial else t["part_anon"]
    if result.verdict == "PASS":
        return t["pass"].format(part=part, score=result.score, threshold=result.threshold)
    margin = abs(result.threshold) if result.threshold else 1.0
    ratio = 1.0 + (result.score - result.threshold) / margin
    parts = [t["fail"].format(part=part, score=result.score, threshold=result.threshold, ratio=ratio)]
    if not result.regions:
        parts.append(t["none"])
        if getattr(result, "defect_type", None):
            kind = t["unknown"] if result.defect_type == UNKNOWN else result.defect_type
            conf = t["conf"].format(c=result.type_confidence) if result.type_confidence is not None else ""
            parts.append(t["typed"].format(type=kind, conf=conf))
    else:
        r = result.regions[0]
        x, y, w, h = r.box
        kind = {"anomaly": t["anomaly"], UNKNOWN: t["unknown"]}.get(r.type, r.type)
        conf = t["conf"].format(c=r.confidence) if r.confidence is not None else ""
        pct = 100.0 * r.area_px / max(result.image_shape[0] * result.image_shape[1], 1)
        parts.append(t["regions"].format(n=len(result.regions), type=kind, severity=t["severity"][r.severity],
                                         x=x, y=y, w=w, h=h, area=r.area_px, pct=pct, conf=conf))
    return (" " if lang != "zh" else "").join(parts)
