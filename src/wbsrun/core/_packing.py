"""Packed workbook entries: msgpack (msgspec) then raw deflate with a per-scenario dictionary.

Entries of one scenario repeat the same field names, phase names, action names and defaults;
deflating each ~1 KiB entry alone would find little to share. zlib's preset dictionary (the
first packed entry of the scenario) gives every later entry those strings for free, which is
what a zstd dictionary would do, without a second binary dependency.

Exactness: tuples and MappingProxy values (frozen plan data, `user.context`) travel as msgpack
extension types and come back as tuples and MappingProxy; only JSON-like scalars (str, int,
float, bool, None) and bytes are accepted otherwise. Anything else raises `Unpackable` and the
entry simply stays live.
"""

from __future__ import annotations

import zlib
from types import MappingProxyType
from typing import Any, Final, final

import msgspec

__all__ = ["Packer", "Unpackable"]

_TUPLE: Final = 1
_PROXY: Final = 2
# Raw deflate (no header or checksum: the blob never leaves the process) with a 4 KiB window:
# the primed compressor state copied per entry stays small, and a whole entry fits the window.
_WBITS: Final = -12
_MEMLEVEL: Final = 5
_LEVEL: Final = 6
_SCALARS: Final = frozenset({str, int, float, bool, type(None), bytes})
_KEYS: Final = frozenset({str, int})
# Plan values are few; a run that writes a fresh tuple per entry must not grow the cache.
_FROZEN_CACHE: Final = 4096


class Unpackable(Exception):
    """A value the packed form could not give back exactly; the entry stays live."""


def _immutable(value: Any) -> bool:
    # A tuple may be cached only if nothing inside it can change (MappingProxy over frozen
    # plan data is taken as immutable: the plan builder made it so).
    kind = type(value)
    if kind is tuple:
        return all(_immutable(v) for v in value)
    return kind in _SCALARS or kind is MappingProxyType


@final
class Packer:
    """Packs and unpacks entry states; one per workbook (the dictionaries are its own)."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(ext_hook=self._ext)
        self._dicts: dict[str, bytes] = {}
        self._primed: dict[str, Any] = {}
        self._frozen: dict[int, tuple[Any, msgspec.msgpack.Ext]] = {}

    def pack(self, key: str, state: Any) -> bytes:
        try:
            raw = self._encoder.encode(self._prep(state))
        except (OverflowError, TypeError, msgspec.EncodeError) as exc:
            raise Unpackable(str(exc)) from exc
        primed = self._primed.get(key)
        if primed is None:
            primed = self._prime(key, raw)
        # Copying the primed state is cheaper than loading the dictionary again (measured
        # ~3 µs against ~5 µs per entry).
        comp = primed.copy()
        return bytes(comp.compress(raw) + comp.flush())

    def unpack(self, key: str, blob: bytes) -> Any:
        inflater = zlib.decompressobj(_WBITS, zdict=self._dicts[key])
        return self._decoder.decode(inflater.decompress(blob) + inflater.flush())

    def _prime(self, key: str, sample: bytes) -> Any:
        # The first entry packed for a scenario becomes its dictionary: later entries share
        # its structure and strings. Fixed from then on, since every blob needs it to inflate.
        zdict = sample[-(1 << -_WBITS) + 262 :]
        self._dicts[key] = zdict
        primed = zlib.compressobj(
            _LEVEL, zlib.DEFLATED, _WBITS, _MEMLEVEL, zlib.Z_DEFAULT_STRATEGY, zdict
        )
        self._primed[key] = primed
        return primed

    def _prep(self, value: Any) -> Any:
        """`value` with tuples and MappingProxy values wrapped as extension types; raises
        `Unpackable` for anything msgpack would not give back as it was."""
        kind = type(value)
        if kind in _SCALARS:
            return value
        if kind is dict:
            out = {}
            for k, v in value.items():
                if type(k) not in _KEYS:
                    raise Unpackable(f"cannot pack a {type(k).__name__} key exactly")
                out[k] = v if type(v) in _SCALARS else self._prep(v)
            return out
        if kind is list:
            return [v if type(v) in _SCALARS else self._prep(v) for v in value]
        if kind is tuple or kind is MappingProxyType:
            # Frozen plan values (user.context, defaults) are the same objects in every entry:
            # wrap each once. The cache holds the object, so its id cannot be reused.
            found = self._frozen.get(id(value))
            if found is not None and found[0] is value:
                return found[1]
            inner = self._prep(dict(value) if kind is MappingProxyType else list(value))
            ext = msgspec.msgpack.Ext(
                _PROXY if kind is MappingProxyType else _TUPLE, self._encoder.encode(inner)
            )
            if len(self._frozen) < _FROZEN_CACHE and (
                kind is MappingProxyType or _immutable(value)
            ):
                self._frozen[id(value)] = (value, ext)
            return ext
        raise Unpackable(f"cannot pack a {kind.__name__} exactly")

    def _ext(self, code: int, data: memoryview) -> Any:
        inner = self._decoder.decode(data)
        if code == _TUPLE:
            return tuple(inner)
        if code == _PROXY:
            return MappingProxyType(inner)
        raise ValueError(f"unknown packed extension {code}")
