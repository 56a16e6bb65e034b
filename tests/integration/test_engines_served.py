"""Every family built with each engine and served by a real TorchServe through the same
handlers: the answers name the engine and precision that scored them."""

from __future__ import annotations

import dataclasses
import json

import pytest

from modelzoo.build import BuildOptions, build_all
from scripts import clips, posts
from scripts.services.process import free_port
from scripts.services.torchserve import TorchServe

pytestmark = pytest.mark.integration


def bodies() -> dict[str, bytes]:
    return {"audio_nsfw_hi": clips.clip("wav", seconds=2), "clip_visual": posts.image(3),
            "xlmr_text": json.dumps({"text": "नमस्ते video"}).encode(),
            "vggish_audio": posts.video(2, seed=4)}


@pytest.mark.parametrize("engine, precision", [("openvino", "fp32"), ("onnxruntime", "fp32"),
                                               ("openvino", "int8")])
def test_every_family_serves_from_this_engine(manifest, tmp_path, trained_hi, engine, precision):
    wanted = {"audio_nsfw_hi", "clip_visual", "xlmr_text", "vggish_audio", "vrt_fusion"}
    if precision == "int8":
        # The trained keyword spotter's int8 graph reorders its scores (correlation with
        # fp32 about 0.1 here), and the guard refuses it, as it should: int8 is for the
        # extractors and the fusion head, and for wav2vec2-size classifiers that pass it.
        wanted.discard("audio_nsfw_hi")
    specs = [dataclasses.replace(s, engine=engine, precision=precision, workers=1)
             for s in manifest if s.name in wanted]
    store = tmp_path / "store"
    # The audio classifier is the trained one, which answers like a model that learned
    # something: a random-weight one scores every clip within a hair of 0.5.
    audio = [dataclasses.replace(s, checkpoint=str(trained_hi.work / "model" / "checkpoint"))
             for s in specs if s.family == "audio_nsfw"]
    built = build_all(audio, BuildOptions(export_dir=store), manifest=specs)
    built += build_all([s for s in specs if s.family != "audio_nsfw"],
                       BuildOptions(export_dir=store, size="tiny"), manifest=specs)
    assert {(b.spec.engine, b.spec.precision) for b in built} == {(engine, precision)}
    server = TorchServe(workdir=tmp_path / "ts", model_store=store,
                        ports=(free_port(), free_port(), free_port()))
    try:
        server.start(models=sorted(wanted))
        answers = {name: server.predict(name, body).json() for name, body in bodies().items()
                   if name in wanted}
        dims = {"visual": len(answers["clip_visual"]["embedding"]),
                "text": len(answers["xlmr_text"]["embedding"]),
                "audio": len(answers["vggish_audio"]["embedding"])}
        fused = server.predict("vrt_fusion", json.dumps(
            {m: [0.1] * n for m, n in dims.items()}).encode()).json()
    finally:
        server.stop()
    if "audio_nsfw_hi" in wanted:
        assert 0 <= answers["audio_nsfw_hi"]["score"] <= 1
    assert abs(sum(fused["categories"].values()) - 1) < 1e-3
    for answer in (*answers.values(), fused):
        assert (answer["engine"], answer["precision"]) == (engine, precision), answer
