"""Pack what `recsys train separator` reads from a corpus into a small transport copy.

A GPU machine that is reached by copying a folder of at most a few tens of MB cannot take a
built corpus (16-bit WAV, about 1 MB per 15 s song). The copy keeps every manifest row, so
`recsys train separator --data COPY --extra COPY2` selects exactly the songs it would select
from the originals, and writes only the audio that command loads:

* the training stems (vocals and accompaniment) as Ogg Vorbis, about 6 KB/s per stem at
  quality 0.9, with a waveform SNR of roughly 25-35 dB: the training mixture is the sum of
  the coded stems, so mixture and target stay consistent;
* the validation excerpts' songs (mixture and vocals) as FLAC, bit-exact, so the
  validation SDR is that of the original corpus.

Usage::

    python scripts/pack_corpus.py CORPUS OUT                 # --data: train stems + val
    python scripts/pack_corpus.py CORPUS_SEP OUT --main CORPUS   # --extra: its kept songs

``--parts-mib 60`` also tars the copy into ``OUT.part1.tar``, ``OUT.part2.tar``, ... of at
most 60 MiB each, one per call to a machine that takes 64 MiB per call; ``tar xf`` of every
part into one folder gives back ``OUT`` (docs/gpu-training.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tarfile
from pathlib import Path

import soundfile as sf

from recsys.corpus import Corpus, extension_songs


def _write(src: Path, dst: Path, fmt: str, subtype: str, **kw) -> None:
    audio, rate = sf.read(src, dtype="float32")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, audio, rate, format=fmt, subtype=subtype, **kw)


def pack(root: Path, out: Path, main: Path | None, val_songs: int, quality: float) -> dict:
    corpus = Corpus(root)
    if main is None:
        train = corpus.songs("train")
        val = [s for s in corpus.songs("val") if not s.instrumental][:val_songs]
    else:
        train, val = extension_songs(Corpus(main), corpus, None), []
    lossy = {s.song_id for s in train}
    exact = {s.song_id for s in val}
    out.mkdir(parents=True, exist_ok=True)
    for name in ("corpus.json", "singers.jsonl", "queries.jsonl"):
        shutil.copy2(root / name, out / name)
    rows = []
    for line in (root / "songs.jsonl").read_text().splitlines():
        row = json.loads(line)
        sid = row["song_id"]
        if sid in lossy:
            for key in ("vocals", "accompaniment"):
                rel = str(Path(row[key]).with_suffix(".ogg"))
                _write(root / row[key], out / rel, "OGG", "VORBIS",
                       compression_level=1.0 - quality)
                row[key] = rel
        if sid in exact:
            for key in ("mixture", "vocals"):
                rel = str(Path(row[key]).with_suffix(".flac"))
                _write(root / row[key], out / rel, "FLAC", "PCM_16")
                row[key] = rel
        rows.append(json.dumps(row, sort_keys=True))
    (out / "songs.jsonl").write_text("\n".join(rows) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"train_songs": len(lossy), "val_songs": len(exact), "bytes": size}


def _tar_bytes(size: int) -> int:
    """Bytes a file of ``size`` bytes takes in a tar: a 512-byte header, data padded to 512."""
    return 512 + -(-size // 512) * 512


def write_parts(folder: Path, limit_mib: float) -> list[Path]:
    """Tar the files under ``folder`` into ``folder.partN.tar`` files of at most ``limit_mib``
    MiB each (members named ``folder.name/...``, so every part unpacks into one tree)."""
    limit = int(limit_mib * 2**20)
    # what tarfile adds: two zero blocks at the end, then padding to a 10240-byte record
    overhead = 2 * 512 + tarfile.RECORDSIZE
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    groups: list[list[Path]] = [[]]
    used = overhead
    for path in files:
        need = _tar_bytes(path.stat().st_size)
        if need + overhead > limit:
            raise ValueError(f"{path} alone is larger than a part of {limit_mib:g} MiB")
        if used + need > limit:
            groups.append([])
            used = overhead
        groups[-1].append(path)
        used += need
    parts = []
    for i, group in enumerate(groups, start=1):
        part = folder.with_name(f"{folder.name}.part{i}.tar")
        with tarfile.open(part, "w", format=tarfile.USTAR_FORMAT) as tar:
            for path in group:
                tar.add(path, arcname=f"{folder.name}/{path.relative_to(folder)}")
        parts.append(part)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--main", type=Path, default=None,
                        help="Pack CORPUS as an --extra of this corpus (its kept songs only).")
    parser.add_argument("--val-songs", type=int, default=8)
    parser.add_argument("--quality", type=float, default=0.9, help="Vorbis quality, 0-1.")
    parser.add_argument("--parts-mib", type=float, default=0,
                        help="Also write OUT.partN.tar files of at most this many MiB.")
    args = parser.parse_args()
    report = pack(args.corpus, args.out, args.main, args.val_songs, args.quality)
    if args.parts_mib:
        report["parts"] = [str(p) for p in write_parts(args.out, args.parts_mib)]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
