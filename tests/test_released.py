"""The table of released SETR checkpoints, downloading + converting them, and `eval --checkpoint official:<name>`.

Nothing here touches the network: downloads are served from local files (file:// URLs) or replaced by the
official fixture checkpoints (setr_edu/convert/official_setr).
"""
import hashlib
import re
import sys

import pytest
import torch

from mmseg_reference import EncoderDecoder, randomize
from setr_edu import released
from setr_edu.cli import main
from setr_edu.convert import official_stand_ins
from setr_edu.recipes import get_recipe

FIX = official_stand_ins()  # setr_edu/convert/official_setr (package data)


def test_table_entries_are_consistent():
    assert len(released.RELEASED) == 22
    for key, r in released.RELEASED.items():
        assert key == f"{r.source}:{r.name}" and r.dataset in ("ade20k", "cityscapes", "pascal_context")
        assert r.decoder in ("naive", "pup", "mla") and r.crop == dict(ade20k=512, cityscapes=768, pascal_context=480)[r.dataset]
        assert r.sha256 is None and not r.verified  # nothing pinned yet: the table says "unverified"
        if r.source == "mmseg":  # mmsegmentation names carry the first 8 hex digits of the file's SHA-256
            assert re.search(r"_\d{8}_\d{6}-[0-9a-f]{8}\.pth$", r.url), r.url
        else:
            assert r.url == f"https://drive.google.com/file/d/{r.drive_id}/view" and len(r.drive_id) == 33
        recipe = released.released_recipe(r)  # the paper's test settings for that dataset
        assert recipe.crop_size == r.crop and recipe.eval_mode == "slide"
    assert released.get_released("official:ade20k_pup").paper_ss == 48.58  # Table 4
    assert released.get_released("official:ade20k_mla_bs8").ss == 47.79
    assert "unverified" in released.table() and released.table("mmseg").count("mmseg:") == 7
    with pytest.raises(KeyError, match="Did you mean official:ade20k_pup"):
        released.get_released("official:ade20k_pupp")


def test_mmseg_release_is_downloaded_hash_checked_and_converted(tmp_path, monkeypatch):
    ref = randomize(EncoderDecoder("pup"), seed=3)
    raw = tmp_path / "raw.pth"
    meta = {"config": "model = dict(backbone=dict(num_heads=4))"}
    torch.save({"meta": meta, "state_dict": ref.state_dict()}, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    served = raw.rename(tmp_path / f"setr_pup_tiny_20210619_191343-{digest[:8]}.pth")
    entry = released.Released("mmseg", "tiny_pup", "ade20k", "pup", 64, 16, 160_000, served.as_uri(), 1.0, 2.0, 3.0, 4.0)
    monkeypatch.setitem(released.RELEASED, entry.key, entry)
    model, got = released.load_released("mmseg:tiny_pup", cache_dir=tmp_path / "cache")
    assert got is entry and (tmp_path / "cache" / served.name).is_file()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x)[0], atol=1e-5, rtol=0)
    served.write_bytes(b"truncated")  # a changed file upstream is refused, never used
    (tmp_path / "cache" / served.name).unlink()
    with pytest.raises(ValueError, match="expected SHA-256"):
        released.load_released("mmseg:tiny_pup", cache_dir=tmp_path / "cache")


def test_google_drive_release_needs_gdown(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gdown", None)  # as if gdown were not installed
    with pytest.raises(FileNotFoundError, match="pip install gdown"):
        released.download_released(released.get_released("official:ade20k_pup"), cache_dir=tmp_path)


def test_cli_eval_released_checkpoint(tmp_path, monkeypatch, capsys):
    """`eval --checkpoint official:<name>` downloads (here: the fixture), converts, and evaluates with a protocol."""
    entry = released.Released("official", "tiny_pup", "ade20k", "pup", 64, 16, 160_000, "https://example.invalid",
                              1.0, 2.0, 48.58, 50.09)
    monkeypatch.setitem(released.RELEASED, entry.key, entry)
    monkeypatch.setattr(released, "download_released", lambda e, cache_dir=None: FIX / "pup.pth")
    # the paper's recipe for ADE20K needs the real dataset; the synthetic task stands in for it
    monkeypatch.setattr(released, "released_recipe", lambda e: get_recipe("synthetic_ci", ["crop_size=64", "num_val=2"]))
    assert main(["eval", "--checkpoint", "official:tiny_pup", "--protocol", "official", "--device", "cpu",
                 "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "official SETR (fudan-zvg/SETR) checkpoint -> setr_edu" in out and "conv_seg" in out
    assert "expected mIoU: SS 1.0, MS 2.0, paper SS 48.58, paper MS 50.09" in out
    assert "scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75], flip=True" in out  # synthetic: the official ratios are the six
    assert (tmp_path / "m.json").is_file()


def test_deit_recipes_taps_and_weights(monkeypatch):
    """The -DeiT rows: T-Base shape, the DeiT configs' taps, DeiT-B weights loaded without the distillation token."""
    import timm

    from setr_edu.config import DecoderConfig
    from setr_edu.engine import build
    from setr_edu.model import pretrained

    r = get_recipe("ade20k_pup_deit")
    assert (r.encoder, r.pretrained, r.crop_size) == ("base", "deit", 512)
    assert get_recipe("cityscapes_mla_deit_80k").pretrained == "deit"
    io = torch.load(FIX / "pup_deit_io.pt", weights_only=True)["config"]  # official SETR_PUP_DeiT config taps
    dec = DecoderConfig.for_encoder("pup", 12)
    assert dec.main_tap == io["main_in_index"] + 1 and list(dec.aux_taps) == [i + 1 for i in io["aux_in_index"]]
    # load_pretrained asks paper_weights for "deit" (stubbed: a tiny distilled DeiT stands in for DeiT-B)
    deit = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, num_classes=0)
    asked = []
    monkeypatch.setattr(pretrained, "paper_weights", lambda name: asked.append(name) or (deit.state_dict(), "stub"))
    small = get_recipe("ade20k_pup_deit", ["encoder=tiny", "crop_size=64", "encoder_overrides={'depth': 12}"])
    logs = []
    build.load_pretrained(build.build_model(small, 150), small, log=logs.append)
    assert asked == ["deit"] and "stub: loaded" in logs[0] and "distillation token" in logs[0]


def _offline(monkeypatch):
    """As on a machine without internet: every URL fails to resolve (torch.hub and gdown alike)."""
    import urllib.error
    import urllib.request

    def refuse(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    import torch.hub

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "urlopen", refuse)  # torch.hub imported its own name


@pytest.mark.parametrize("key", ["official:ade20k_pup", "mmseg:ade20k_pup"])
def test_released_download_offline_or_without_gdown_is_one_line_saying_what_to_do(key, tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.setitem(sys.modules, "gdown", None)  # not installed (Drive files)
    _offline(monkeypatch)  # no network (mmsegmentation files)
    monkeypatch.setenv("HOME", str(tmp_path))  # the cache: ~/.cache/setr_edu
    code = main(["eval", "--checkpoint", key, "--data-root", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.splitlines()) <= 2  # the error line (+ the SETR_EDU_DEBUG hint)
    cache = tmp_path / ".cache" / "setr_edu"
    assert str(cache) in err and "by hand" in err  # where to put a hand-downloaded file
    assert ("pip install gdown" in err) == key.startswith("official:")
    assert not any(cache.glob("*.part"))  # nothing half-downloaded left


def test_a_failing_gdown_download_is_one_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from setr_edu.model.pretrained import DownloadError

    def broken(id, output, quiet):
        Path(output).write_bytes(b"half")  # gdown writes, then the connection drops
        raise ConnectionError("Connection reset by peer")

    monkeypatch.setitem(sys.modules, "gdown", SimpleNamespace(download=broken))
    entry = released.get_released("official:ade20k_pup")
    with pytest.raises(DownloadError, match=r"could not download .*by hand .*to .*setr_official_ade20k_pup\.pth"):
        released.download_released(entry, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setitem(sys.modules, "gdown", SimpleNamespace(download=lambda id, output, quiet: None))
    with pytest.raises(DownloadError, match="could not download"):  # gdown's "no file" answer
        released.download_released(entry, cache_dir=tmp_path)
