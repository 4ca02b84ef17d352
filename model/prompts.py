"""CLIP prompt ensembles: each defect type's name in several phrasings -> one unit text embedding.

Averaging the embeddings of many templates (then renormalising) is the standard zero-shot recipe: it
smooths over the phrasing any single prompt happens to favour. Type folder names are turned into words
(`rolled-in_scale` -> "rolled-in scale").
"""

from __future__ import annotations

import torch

from model.errors import InspectorError

TEMPLATES = (
    "a photo of a {type} on a {part} surface.",
    "a close-up photo of a {type} on a {part}.",
    "a {part} with a {type} defect.",
    "an industrial inspection image of a {part} showing a {type}.",
    "a cropped photo of a {type} defect.",
    "a grayscale photo of a {part} surface with {type}.",
    "a {type} flaw on the surface of a {part}.",
    "a photo of a damaged {part}: {type}.",
)
DEFAULT_PART = "metal part"


def words(type_name: str) -> str:
    """A folder name as words for a prompt."""
    return " ".join(type_name.replace("_", " ").split())


def prompts_for(type_name: str, part: str = DEFAULT_PART, templates: tuple[str, ...] = TEMPLATES) -> list[str]:
    return [t.format(type=words(type_name), part=part) for t in templates]


@torch.no_grad()
def text_weights(backbone, types: list[str], part: str = DEFAULT_PART, templates: tuple[str, ...] = TEMPLATES) -> torch.Tensor:
    """Unit prompt-ensemble embeddings [K, E] for `types`, from a backbone with a text tower (ClipViT)."""
    if not hasattr(backbone, "encode_text"):
        raise InspectorError("naming defects from words needs the clip backbone (clip:<model>:<weights>); "
                             "with this backbone give labelled examples (--labels)")
    if not types:
        raise InspectorError("--types: give at least one defect type name, e.g. --types crack,scratch,stain")
    out = []
    for t in types:
        emb = backbone.encode_text(prompts_for(t, part, templates)).float().mean(dim=0)
        out.append(emb / emb.norm().clamp_min(1e-12))
    return torch.stack(out)
