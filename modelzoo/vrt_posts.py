"""Generated posts whose every modality carries the post's category, for training and
judging the VRT fusion head without a data set.

A post of category C shows C's colours (a video's frames or an image), says C's words in its
caption (English, Hindi, Tamil or Spanish, in their own scripts), and sounds like C in its
audio track (a band of tones with C's own rhythm). Some posts have one modality that
disagrees (it carries another category: a safe caption under a violent video) and some have
one missing (no caption, an image with no sound, a caption alone); the label is always the
post's own category.

Two templates render the same cues differently: ``training`` (the shapes, sentence frames
and rhythms the head is trained on) and ``other`` (other shapes, frames, language mix and
rhythms for the same colours, words and tone bands), so a head can be judged on posts that
look unlike those it learned from. The default labels are harmless stand-ins for policy
categories; the words are ordinary dictionary words.

Writes ``DIR/posts.jsonl`` (``post_id``, ``label``, ``image`` or ``video`` relative to DIR,
``text``, ``template``, and what disagrees or is missing) and the media beside it: the
format ``vigil embed`` reads.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from modelzoo.fusion import DEFAULT_LABELS

SIZE = 96
RATE_HZ = 16_000
VIDEO_SECONDS = 2
FPS = 2
# Per category: its colours (RGB), its words per language, the centre of its tone band.
COLOURS = {
    "safe": [(90, 160, 230), (80, 180, 90), (230, 210, 150)],
    "nudity": [(240, 200, 170), (210, 160, 130), (250, 220, 200)],
    "sexual": [(230, 60, 150), (250, 120, 190), (160, 30, 110)],
    "violence": [(250, 110, 20), (230, 60, 30), (120, 120, 120)],
    "gore": [(120, 0, 10), (80, 0, 0), (170, 20, 30)],
    "abusive": [(250, 230, 30), (20, 20, 20), (200, 200, 0)],
    "hate": [(10, 10, 10), (110, 110, 110), (240, 240, 240)],
}
WORDS = {
    "safe": {"en": ["sunset", "picnic", "recipe", "garden"], "hi": ["सूर्यास्त", "बगीचा", "खाना"],
             "ta": ["சூரியன்", "தோட்டம்", "சமையல்"], "es": ["atardecer", "jardín", "receta"]},
    "nudity": {"en": ["naked", "nude", "topless", "undressed"], "hi": ["नग्न", "निर्वस्त्र"],
               "ta": ["நிர்வாணம்", "ஆடையின்றி"], "es": ["desnudo", "desnuda"]},
    "sexual": {"en": ["sexy", "erotic", "explicit", "lust"], "hi": ["कामुक", "अश्लील"],
               "ta": ["காமம்", "ஆபாசம்"], "es": ["erótico", "sexual"]},
    "violence": {"en": ["fight", "punch", "attack", "brawl"], "hi": ["लड़ाई", "हमला", "मारपीट"],
                 "ta": ["சண்டை", "தாக்குதல்"], "es": ["pelea", "ataque", "golpe"]},
    "gore": {"en": ["blood", "wound", "injury", "bleeding"], "hi": ["खून", "घाव"],
             "ta": ["இரத்தம்", "காயம்"], "es": ["sangre", "herida"]},
    "abusive": {"en": ["idiot", "stupid", "loser", "shut up"], "hi": ["बेवकूफ", "मूर्ख"],
                "ta": ["முட்டாள்", "அறிவில்லை"], "es": ["idiota", "estúpido"]},
    "hate": {"en": ["hatred", "despise", "bigot", "go back"], "hi": ["नफरत", "घृणा"],
             "ta": ["வெறுப்பு", "துவேஷம்"], "es": ["odio", "desprecio"]},
}
TONE_HZ = {"safe": 220, "nudity": 330, "sexual": 500, "violence": 700, "gore": 110,
           "abusive": 900, "hate": 1300}
CLASS_SHARES = (0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)


@dataclass(frozen=True)
class Template:
    """How the cues of a category are rendered."""

    name: str
    shapes: tuple[str, ...]  # how the colours are drawn
    frames: tuple[str, ...]  # sentence frames with {a} and {b} for two category words
    languages: tuple[str, ...]  # the captions' languages, in proportion
    rhythm: str  # how the tone band is played: "pulses" or "sweeps"


TEMPLATES = {
    "training": Template("training", ("bands", "circles"),
                         ("{a} {b}", "so much {a} today, {b}", "watch this {a} {b}"),
                         ("en", "en", "hi", "ta"), "pulses"),
    "other": Template("other", ("stripes", "squares"),
                      ("{b}!! {a}", "#{a} #{b}", "{a}... {b}... wow"),
                      ("es", "hi", "ta", "ta"), "sweeps"),
}


def _draw(rng: random.Random, category: str, shape: str) -> np.ndarray:
    colours = COLOURS[category]
    image = Image.new("RGB", (SIZE, SIZE), rng.choice(colours))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 7)):
        colour = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in rng.choice(colours))
        x, y, r = rng.randint(0, SIZE), rng.randint(0, SIZE), rng.randint(6, SIZE // 3)
        if shape == "bands":
            draw.rectangle([0, y, SIZE, y + r // 2], fill=colour)
        elif shape == "circles":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        elif shape == "stripes":
            draw.rectangle([x, 0, x + r // 2, SIZE], fill=colour)
        else:
            draw.rectangle([x - r, y - r, x + r, y + r], outline=colour, width=4)
    return np.asarray(image)


def _caption(rng: random.Random, category: str, template: Template) -> str:
    words = WORDS[category][rng.choice(template.languages)]
    a, b = rng.sample(words, 2) if len(words) > 1 else (words[0], words[0])
    return rng.choice(template.frames).format(a=a, b=b)


def _tone(rng: random.Random, category: str, template: Template) -> np.ndarray:
    t = np.arange(VIDEO_SECONDS * RATE_HZ) / RATE_HZ
    centre = TONE_HZ[category] * rng.uniform(0.92, 1.08)
    if template.rhythm == "pulses":
        wave = np.sin(2 * np.pi * centre * t) * (np.sin(2 * np.pi * rng.uniform(2, 4) * t) > 0)
    else:
        sweep = centre * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t))
        wave = np.sin(2 * np.pi * np.cumsum(sweep) / RATE_HZ)
    return (0.3 * wave + 0.02 * np.random.default_rng(rng.randrange(2**32)).standard_normal(
        len(t))).astype(np.float32)


def _png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def _mp4(frames: list[np.ndarray], audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = SIZE, SIZE, "yuv420p"
        sound = container.add_stream("aac", rate=RATE_HZ, layout="mono")
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        for start in range(0, len(audio), 1024):
            chunk = av.AudioFrame.from_ndarray(audio[None, start:start + 1024], format="fltp",
                                               layout="mono")
            chunk.sample_rate = RATE_HZ
            for packet in sound.encode(chunk):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    return buffer.getvalue()


def make_post(rng: random.Random, index: int, category: str, template: Template,
              folder: Path, *, disagree_share: float, missing_share: float) -> dict:
    """One post: its media written into ``folder``, its posts.jsonl line returned."""
    cues = {m: category for m in ("visual", "text", "audio")}
    post: dict = {"post_id": f"{template.name}-{index:05d}", "label": category,
                  "template": template.name}
    if rng.random() < disagree_share:
        modality = rng.choice(list(cues))
        cues[modality] = rng.choice([c for c in DEFAULT_LABELS if c != category])
        post["disagrees"] = {modality: cues[modality]}
    missing = rng.choice(["text", "audio", "media"]) if rng.random() < missing_share else None
    if missing:
        post["missing"] = missing
    if missing != "text":
        post["text"] = _caption(rng, cues["text"], template)
    shape = rng.choice(template.shapes)
    if missing == "media":
        return post
    if missing == "audio":
        name = f"{post['post_id']}.png"
        (folder / name).write_bytes(_png(_draw(rng, cues["visual"], shape)))
        return post | {"image": name}
    frames = [_draw(rng, cues["visual"], shape) for _ in range(VIDEO_SECONDS * FPS)]
    name = f"{post['post_id']}.mp4"
    (folder / name).write_bytes(_mp4(frames, _tone(rng, cues["audio"], template)))
    return post | {"video": name}


def generate(folder: Path, posts: int, *, template: str = "training", seed: int = 0,
             disagree_share: float = 0.15, missing_share: float = 0.2,
             progress=None) -> list[dict]:
    """Write ``posts`` posts of ``template`` into ``folder``; returns their lines."""
    rng = random.Random(f"{template}/{seed}")
    folder.mkdir(parents=True, exist_ok=True)
    shares = np.array(CLASS_SHARES) / sum(CLASS_SHARES)
    lines = []
    for index in range(posts):
        category = rng.choices(DEFAULT_LABELS, weights=shares)[0]
        lines.append(make_post(rng, index, category, TEMPLATES[template], folder,
                               disagree_share=disagree_share, missing_share=missing_share))
        if progress is not None:
            progress.update()
    with open(folder / "posts.jsonl", "w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return lines
