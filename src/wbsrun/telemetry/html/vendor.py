"""Fetch the report's charting library (uPlot) from the npm registry into `assets/`.

Build time only (`make assets`, a dependency of `make demo` and `make test`): the pinned
tarball is downloaded, its `dist.integrity` (sha512) checked, and only the files the page
inlines are extracted. Standard library only, so a machine without node (or without the
project installed) can run it: `python src/wbsrun/telemetry/html/vendor.py`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

__all__ = ["ASSETS", "ASSET_DIR", "INTEGRITY", "TARBALL", "VERSION", "fetch", "main"]

VERSION = "1.6.32"
TARBALL = f"https://registry.npmjs.org/uplot/-/uplot-{VERSION}.tgz"
# `npm view uplot@1.6.32 dist.integrity`
INTEGRITY = (
    "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/"
    "ep3tOkyTxpiQIw=="
)
# Member of the tarball -> file name under assets/.
ASSETS = {
    "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
    "package/dist/uPlot.min.css": "uPlot.min.css",
    "package/LICENSE": "uPlot.LICENSE",
}
ASSET_DIR = Path(__file__).resolve().parent / "assets"
MAX_TARBALL = 8 * 1024 * 1024


def verify(data: bytes, integrity: str = INTEGRITY) -> None:
    """Raise ValueError unless `data` hashes to the Subresource Integrity string."""
    algo, _, expected = integrity.partition("-")
    if algo != "sha512":
        raise ValueError(f"unsupported integrity algorithm {algo!r}")
    got = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if got != expected:
        raise ValueError(f"{TARBALL}: integrity mismatch: got sha512-{got}, expected {integrity}")


def extract(data: bytes, out: Path) -> list[Path]:
    """Write the ASSETS members of the tarball to `out` (by name: no path from the archive)."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, name in ASSETS.items():
            info = tar.getmember(member)
            f = tar.extractfile(info) if info.isfile() else None
            if f is None:
                raise ValueError(f"{TARBALL}: {member} is not a regular file")
            path = out / name
            path.write_bytes(f.read())
            written.append(path)
    return written


def fetch(out: Path = ASSET_DIR, timeout: float = 60.0) -> list[Path]:
    with urllib.request.urlopen(TARBALL, timeout=timeout) as response:
        data = response.read(MAX_TARBALL + 1)
    if len(data) > MAX_TARBALL:
        raise ValueError(f"{TARBALL}: larger than {MAX_TARBALL} bytes")
    verify(data)
    return extract(data, out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else ASSET_DIR
    try:
        paths = fetch(out)
    except (OSError, ValueError, KeyError, tarfile.TarError) as exc:
        print(f"error: cannot fetch uPlot {VERSION}: {exc}", file=sys.stderr)
        return 1
    for p in paths:
        print(f"{p} ({p.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
