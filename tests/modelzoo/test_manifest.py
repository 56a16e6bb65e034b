import pytest

from modelzoo.manifest import ManifestError, load_manifest


def _write(tmp_path, text):
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return path


def test_defaults_merge_under_each_entry(tmp_path):
    specs = load_manifest(_write(tmp_path, """
defaults: {workers: 3, threshold: 0.4}
archives:
  - {name: audio_nsfw_xx, family: audio_nsfw, languages: [xx]}
  - {name: audio_nsfw_yy, family: audio_nsfw, languages: [yy], threshold: 0.7}
"""))
    assert [s.workers for s in specs] == [3, 3]
    assert [s.threshold for s in specs] == [0.4, 0.7]
    config = specs[1].model_config()
    assert config["batchSize"] == 8 and config["handler"]["threshold"] == 0.7
    assert config["handler"]["max_decode_s"] == specs[1].decode_limit_s


@pytest.mark.parametrize("entry, message", [
    ("{name: a, family: audio_nsfw, languages: [x], colour: red}", "unknown keys"),
    ("{name: a, family: video, languages: [x]}", "unknown family"),
    ("{name: a, family: audio_nsfw, languages: [x], threshold: 1.5}", "outside"),
    ("{name: a, family: audio_nsfw, languages: [x], engine: onnx}", "unknown engine"),
    ("{name: a, family: audio_nsfw}", "languages"),
    # 8 inputs at 20 s each outlast TorchServe's 120 s: the worker would be killed.
    ("{name: a, family: audio_nsfw, languages: [x], decode_limit_s: 20}", "response_timeout"),
    ("{name: a, family: audio_nsfw, languages: [x], decode_limit_s: 0}", "positive"),
    ("{name: a, family: audio_nsfw, languages: [x], options: {energy_gate_dbfs: 3}}",
     "between -120 and 0 dBFS"),
    ("{name: a, family: audio_nsfw, languages: [x], options: {energy_gate_dbfs: loud}}",
     "could not convert"),
    ("{name: a, family: xlmr_text, options: {energy_gate_dbfs: -50}}", "for audio_nsfw"),
    ("{name: a, family: audio_nsfw, languages: [x], options: {screen: {checkpoint: s}}}",
     "exactly"),
    ("{name: a, family: audio_nsfw, languages: [x], options: {screen: {checkpoint: s, "
     "threshold: 0.1, keep: 0.99}}}", "exactly"),
    ("{name: a, family: audio_nsfw, languages: [x], options: {screen: {checkpoint: s, "
     "threshold: 1.5}}}", r"in \[0, 1\]"),
    ("{name: a, family: audio_nsfw, languages: [x], options: {screen: {checkpoint: s, "
     "threshold: .nan}}}", r"in \[0, 1\]"),
    ("{name: a, family: audio_nsfw, languages: [x], options: {screen: {checkpoint: s, "
     "threshold: low}}}", "a number"),
    ("{name: a, family: audio_nsfw, languages: [x], options: {screen: {checkpoint: '', "
     "threshold: 0.1}}}", "folder"),
    ("{name: a, family: xlmr_text, options: {screen: {checkpoint: s, threshold: 0.1}}}",
     "for audio_nsfw"),
])
def test_bad_entries_are_refused_with_a_reason(tmp_path, entry, message):
    with pytest.raises(ManifestError, match=message):
        load_manifest(_write(tmp_path, f"archives:\n  - {entry}\n"))


def test_duplicate_names_are_refused(tmp_path):
    entry = "{name: a, family: audio_nsfw, languages: [x]}"
    with pytest.raises(ManifestError, match="duplicate"):
        load_manifest(_write(tmp_path, f"archives:\n  - {entry}\n  - {entry}\n"))


def test_repo_manifest_has_a_fallback_and_several_languages(manifest):
    languages = {lang for spec in manifest for lang in spec.languages}
    assert {"hi", "ta", "*"} <= languages and len(languages) >= 5
