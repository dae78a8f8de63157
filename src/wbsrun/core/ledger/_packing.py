"""Packed workbook entries: msgpack (msgspec), compressed (zstd) a block of entries at a time
with a per-scenario dictionary.

Entries of one scenario repeat the same field names, phase names, action names and defaults;
compressing each ~1 KiB entry alone would find little to share and pays the compressor's fixed
cost per entry. One frame per block of entries shares both: later entries of a block are
mostly back-references to earlier ones, and the raw-content dictionary (the first packed entry
of the scenario) serves the first entry of every block. A packed entry is its block and its
index in it; reading one decompresses its block (the last block read stays decompressed, so
reading entries in order decompresses each block once).

Exactness: tuples and MappingProxy values (frozen plan data, `user.context`) travel as msgpack
extension types and come back as tuples and MappingProxy; the frozen ones the plan hands every
entry (the same objects each time) travel as references to the object itself. Only JSON-like
scalars (str, int, float, bool, None) and bytes are accepted otherwise (exact types: msgspec
would quietly turn an OrderedDict, a list subclass or a frozenset into their plain
neighbours). Anything else raises `Unpackable` and the entry simply stays live. An unset
slot (MISSING) is an extension value itself and travels as it is.
"""

from __future__ import annotations

from array import array
from types import MappingProxyType
from typing import Any, Final, final

import msgspec
import zstandard

from wbsrun.core.ledger._state import MISSING

__all__ = ["Block", "BlockWriter", "Packer", "Unpackable"]

_TUPLE: Final = 1
_PROXY: Final = 2
# A frozen value by reference: its index in the packer's table of frozen objects.
_REF: Final = 3
# The "not set" marker of the live state's slots (MISSING is this extension value itself).
_UNSET: Final = MISSING.code
# zstd level 1, no checksum (the frame never leaves the process): a block's entries are mostly
# long repeats of the entries before them, which the fastest level finds. Measured on blocks of
# 64 reference entries (~920 bytes each, msgpack): 0.87 µs an entry at 69 bytes, against
# 2.39 µs and 88 bytes for raw deflate level 1 with a 32 KiB window and the same dictionary.
_LEVEL: Final = 1
# Entries per block: ~48 KiB decompressed (a read of one packed entry decompresses that),
# and indexes stay small ints (shared objects, not one per entry).
BLOCK_ENTRIES: Final = 64
_SCALARS: Final = frozenset({str, int, float, bool, type(None), bytes})
_KEYS: Final = frozenset({str, int})
# Plan values are few; a run that writes a fresh tuple per entry must not grow the table.
_FROZEN_CACHE: Final = 4096


class Unpackable(Exception):
    """A value the packed form could not give back exactly; the entry stays live."""


def _immutable(value: Any) -> bool:
    # A tuple may be referenced only if nothing inside it can change (MappingProxy over
    # frozen plan data is taken as immutable: the plan builder made it so).
    kind = type(value)
    if kind is tuple:
        return all(_immutable(v) for v in value)
    return kind in _SCALARS or kind is MappingProxyType


@final
class Block:
    """Packed entries of one scenario: one zstd frame, the end offset of each entry."""

    __slots__ = ("data", "ends", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.data = b""
        self.ends = array("I")


@final
class BlockWriter:
    """Encodes entry states one after the other into one block; `close()` compresses it."""

    __slots__ = ("_buf", "_packer", "block")

    def __init__(self, packer: Packer, key: str) -> None:
        self._packer = packer
        self._buf = bytearray()
        self.block = Block(key)

    def add(self, state: Any) -> int | None:
        """The state's index in the block, or None if it cannot be packed exactly. `state`
        comes through `Packer.prep` (whole or in parts)."""
        buf = self._buf
        start = len(buf)
        try:
            self._packer.encode_into(state, buf, -1)
        except (Unpackable, OverflowError, TypeError, msgspec.EncodeError):
            # A failed encode leaves what it wrote so far behind.
            del buf[start:]
            return None
        ends = self.block.ends
        ends.append(len(buf))
        return len(ends) - 1

    def close(self) -> Block:
        """Compresses what was added (once: a second call changes nothing)."""
        block, buf = self.block, self._buf
        if buf:
            block.data = self._packer.compress(block.key, buf, block.ends[0])
            self._buf = bytearray()
        return block


@final
class Packer:
    """Packs and unpacks entry states; one per workbook (the dictionaries are its own)."""

    def __init__(self, refs: bool = True) -> None:
        # Without refs (the on-disk ledger: read by another process) frozen values are
        # written out in full each time.
        self._ref_limit = _FROZEN_CACHE if refs else 0
        self._encoder = msgspec.msgpack.Encoder(enc_hook=self._hook)
        self._decoder = msgspec.msgpack.Decoder(ext_hook=self._ext)
        self.encode_into = self._encoder.encode_into
        # Per scenario: its compressor and decompressor, over its dictionary.
        self._compressors: dict[str, zstandard.ZstdCompressor] = {}
        self._decompressors: dict[str, zstandard.ZstdDecompressor] = {}
        # id → (the object, what stands for it): the object is held, so its id is not reused.
        self._frozen: dict[int, tuple[Any, msgspec.msgpack.Ext]] = {}
        self._refs: list[Any] = []
        # The block read last, decompressed.
        self._unpacked: tuple[Block, bytes] | None = None

    def writer(self, key: str) -> BlockWriter:
        return BlockWriter(self, key)

    def unpack(self, block: Block, index: int) -> Any:
        found = self._unpacked
        if found is not None and found[0] is block:
            raw = found[1]
        else:
            raw = self._decompressors[block.key].decompress(block.data)
            self._unpacked = (block, raw)
        ends = block.ends
        start = ends[index - 1] if index else 0
        return self._decoder.decode(memoryview(raw)[start : ends[index]])

    def compress(self, key: str, raw: bytearray, first_end: int) -> bytes:
        found = self._compressors.get(key)
        if found is None:
            found = self._prime(key, bytes(raw[:first_end]))
        # python-zstandard allocates its output at the input's size and leaves the bytes
        # object holding it (tracemalloc: ~60 KB held for 21 bytes of output): a copy keeps
        # only the compressed length, ~80 B an entry instead of ~800.
        return bytes(memoryview(found.compress(raw)))

    def _prime(self, key: str, sample: bytes) -> zstandard.ZstdCompressor:
        # The first entry packed for a scenario becomes its dictionary: the first entries of
        # every block share its structure and strings. Fixed from then on, since every block
        # needs it to decompress.
        zdict = zstandard.ZstdCompressionDict(sample, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        found = self._compressors[key] = zstandard.ZstdCompressor(
            level=_LEVEL, dict_data=zdict, write_checksum=False, write_dict_id=False
        )
        self._decompressors[key] = zstandard.ZstdDecompressor(dict_data=zdict)
        return found

    def prep_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`prep` for an entry's overlay: its keys are field names (str, the workbook made
        them); its values are mostly the frozen plan values every entry holds."""
        out = fields.copy()
        frozen = self._frozen
        for k, v in fields.items():
            kind = type(v)
            if kind in _SCALARS:
                continue
            if kind is tuple or kind is MappingProxyType:
                found = frozen.get(id(v))
                if found is not None and found[0] is v:
                    out[k] = found[1]
                    continue
            out[k] = self.prep(v)
        return out

    def prep(self, value: Any) -> Any:
        """`value` with tuples and MappingProxy values wrapped as extension types; raises
        `Unpackable` for anything msgpack would not give back as it was. What needs no
        wrapping is returned as it is, not copied (it is encoded right away)."""
        kind = type(value)
        if kind is list:
            if _SCALARS.issuperset(map(type, value)):
                return value
            return [v if type(v) in _SCALARS else self.prep(v) for v in value]
        if kind is dict:
            frozen = self._frozen
            out = None
            for k, v in value.items():
                if type(k) not in _KEYS:
                    raise Unpackable(f"cannot pack a {type(k).__name__} key exactly")
                inner_kind = type(v)
                if inner_kind in _SCALARS:
                    continue
                if inner_kind is dict or inner_kind is list:
                    w = self.prep(v)
                else:
                    # Inline for the frozen plan values every entry holds (user.context's).
                    found = frozen.get(id(v))
                    w = found[1] if found is not None and found[0] is v else self.prep(v)
                if w is not v:
                    if out is None:
                        out = value.copy()
                    out[k] = w
            return value if out is None else out
        if kind in _SCALARS or value is MISSING:
            return value
        if kind is tuple or kind is MappingProxyType:
            found = self._frozen.get(id(value))
            if found is not None and found[0] is value:
                return found[1]
            if len(self._refs) < self._ref_limit and (
                kind is MappingProxyType or _immutable(value)
            ):
                ext = msgspec.msgpack.Ext(_REF, len(self._refs).to_bytes(2, "little"))
                self._refs.append(value)
                self._frozen[id(value)] = (value, ext)
                return ext
            inner = self.prep(dict(value) if kind is MappingProxyType else list(value))
            return msgspec.msgpack.Ext(
                _PROXY if kind is MappingProxyType else _TUPLE, self._encoder.encode(inner)
            )
        raise Unpackable(f"cannot pack a {kind.__name__} exactly")

    def decode(self, data: bytes | memoryview) -> Any:
        """One record encoded by this packer's kind (extension values as `unpack` gives them)."""
        return self._decoder.decode(data)

    def _hook(self, value: Any) -> Any:
        raise Unpackable(f"cannot pack a {type(value).__name__} exactly")

    def _ext(self, code: int, data: memoryview) -> Any:
        if code == _UNSET:
            return MISSING
        if code == _REF:
            return self._refs[int.from_bytes(data, "little")]
        inner = self._decoder.decode(data)
        if code == _TUPLE:
            return tuple(inner)
        if code == _PROXY:
            return MappingProxyType(inner)
        raise ValueError(f"unknown packed extension {code}")
