"""Calls into a component instance with the function's types looked up once.

wasmtime-py's `Func.__call__` asks the store for the function's type on every call, and its
value types ask the C API for their fields and cases every time a value is converted (most
of a small call's cost, docs/benchmarks.md "WebAssembly plugins"). `TypedFunc` keeps the
parameter and result types it read when the export was first looked up, with their fields
and cases read once (`cache_types`), and otherwise does what `Func.__call__` does. It uses
wasmtime-py's C-API bindings (`wasmtime._ffi`): the pinned range of the `wasi` extra is the
one this was written against.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, final

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import Func, Instance
from wasmtime.component import _types as wt
from wasmtime.component._enter import catch_exceptions, enter_wasm
from wasmtime.component._linker import FUNCTIONS, LinkerInstance, func_finalize

__all__ = [
    "MissingExport",
    "TypedFunc",
    "WrongType",
    "add_host_func",
    "cache_types",
    "describe",
    "export",
    "signature",
]


# Subclasses whose structure (cases, fields, payloads) is read from the C API once: a
# type's structure never changes, and reading it was ~2/3 of a call that returns a variant.
class _Variant(wt.VariantType):
    @property
    def cases(self) -> Any:
        got = self.__dict__.get("_cases_memo")
        if got is None:
            got = [(n, cache_types(t)) for n, t in wt.VariantType.cases.fget(self)]  # type: ignore[attr-defined]
            self.__dict__["_cases_memo"] = got
        return got

    def _tagged(self) -> bool:
        got = self.__dict__.get("_tagged_memo")
        if got is None:
            got = self.__dict__["_tagged_memo"] = super()._tagged()
        return bool(got)


class _Record(wt.RecordType):
    @property
    def fields(self) -> Any:
        got = self.__dict__.get("_fields_memo")
        if got is None:
            got = [(n, cache_types(t)) for n, t in wt.RecordType.fields.fget(self)]  # type: ignore[attr-defined]
            self.__dict__["_fields_memo"] = got
        return got


class _Option(wt.OptionType):
    @property
    def payload(self) -> Any:
        if "_payload_memo" not in self.__dict__:
            self.__dict__["_payload_memo"] = cache_types(wt.OptionType.payload.fget(self))  # type: ignore[attr-defined]
        return self.__dict__["_payload_memo"]

    def _tagged(self) -> bool:
        got = self.__dict__.get("_tagged_memo")
        if got is None:
            got = self.__dict__["_tagged_memo"] = super()._tagged()
        return bool(got)


class _Result(wt.ResultType):
    @property
    def ok(self) -> Any:
        if "_ok_memo" not in self.__dict__:
            self.__dict__["_ok_memo"] = cache_types(wt.ResultType.ok.fget(self))  # type: ignore[attr-defined]
        return self.__dict__["_ok_memo"]

    @property
    def err(self) -> Any:
        if "_err_memo" not in self.__dict__:
            self.__dict__["_err_memo"] = cache_types(wt.ResultType.err.fget(self))  # type: ignore[attr-defined]
        return self.__dict__["_err_memo"]

    def _tagged(self) -> bool:
        got = self.__dict__.get("_tagged_memo")
        if got is None:
            got = self.__dict__["_tagged_memo"] = super()._tagged()
        return bool(got)


class _List(wt.ListType):
    @property
    def element(self) -> Any:
        if "_element_memo" not in self.__dict__:
            self.__dict__["_element_memo"] = cache_types(wt.ListType.element.fget(self))  # type: ignore[attr-defined]
        return self.__dict__["_element_memo"]


class _Tuple(wt.TupleType):
    @property
    def elements(self) -> Any:
        got = self.__dict__.get("_elements_memo")
        if got is None:
            got = [cache_types(t) for t in wt.TupleType.elements.fget(self)]  # type: ignore[attr-defined]
            self.__dict__["_elements_memo"] = got
        return got


_MEMO: dict[type, type] = {
    wt.VariantType: _Variant,
    wt.RecordType: _Record,
    wt.OptionType: _Option,
    wt.ResultType: _Result,
    wt.ListType: _List,
    wt.TupleType: _Tuple,
}


def cache_types(ty: Any) -> Any:
    """`ty` (and the types inside it, as they are read) with its structure memoised."""
    memo = _MEMO.get(type(ty))
    if memo is not None:
        ty.__class__ = memo
    return ty


class MissingExport(Exception):
    """The instance does not export the interface or function looked up."""


class WrongType(Exception):
    """An export whose type is not its world's: each call of it fails (its action does)."""


@final
class TypedFunc:
    """One exported function with its types cached (`types_cached=False`: looked up per
    call, as wasmtime-py does; the benchmark's baseline)."""

    __slots__ = ("_func", "_params", "_result", "mismatch", "name", "types_cached")

    def __init__(
        self,
        func: Func,
        store: wasmtime.Store,
        name: str,
        types_cached: bool = True,
        expected: str | None = None,
    ) -> None:
        self._func = func
        self.name = name
        self.types_cached = types_cached
        fty = func.type(store)
        self._params = [cache_types(ty) for _name, ty in fty.params]
        self._result = cache_types(fty.result)
        actual = signature(func, store) if expected is not None else None
        self.mismatch: str | None = (
            f"its export '{name}' is {actual}; its world says {expected}"
            if actual != expected
            else None
        )

    @property
    def arity(self) -> int:
        return len(self._params)

    def __call__(self, store: wasmtime.Store, *params: Any) -> Any:
        if self.mismatch is not None:
            raise WrongType(self.mismatch)
        if not self.types_cached:
            return self._func(store, *params)
        tys = self._params
        if len(params) != len(tys):
            raise TypeError(f"{self.name}: {len(params)} arguments given, {len(tys)} expected")
        raw = (ffi.wasmtime_component_val_t * len(params))()
        n = 0
        try:
            for ty, val in zip(tys, params, strict=True):
                ty.convert_to_c(store, val, ctypes.pointer(raw[n]))
                n += 1
            result_ty = self._result
            space = ffi.wasmtime_component_val_t() if result_ty is not None else None
            out = ctypes.byref(space) if space is not None else None
            func = ctypes.byref(self._func._func)
            context = store._context()
            count = n

            def run() -> Any:
                return ffi.wasmtime_component_func_call(
                    func, context, raw, count, out, 1 if out is not None else 0
                )

            enter_wasm(run)
            if space is None or result_ty is None:
                return None
            return result_ty.convert_from_c(space)
        finally:
            for i in range(n):
                ffi.wasmtime_component_val_delete(ctypes.byref(raw[i]))


@final
class _HostFunc:
    """A host function and its types, read at its first call (wasmtime-py's own trampoline
    reads them, and every field and case of them, at every call: ~40 µs a `change` record
    that `block` returns, against ~5 µs with them cached; bench/wasm_calls.py)."""

    __slots__ = ("func", "params", "result")

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.params: list[Any] | None = None
        self.result: Any = None

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)


@ffi.wasmtime_component_func_callback_t  # type: ignore[untyped-decorator]
def _host_impl(idx: Any, context: Any, ty_raw: Any, args: Any, nargs: int, results: Any,
               nresults: int) -> Any:  # fmt: skip
    def run(store: Any) -> None:
        host: _HostFunc = FUNCTIONS.get(idx or 0)  # type: ignore[assignment]
        params = host.params
        if params is None:
            with wt.FuncType._from_ptr(ty_raw, owner=store) as fty:
                # Owned copies (func_type_param_nth clones them): valid after the call.
                params = host.params = [cache_types(ty) for _name, ty in fty.params]
                host.result = cache_types(fty.result)
        result = host.func(store, *[ty.convert_from_c(args[i]) for i, ty in enumerate(params)])
        if host.result is not None:
            host.result.convert_to_c(store, result, results)

    return catch_exceptions(context, run)


def add_host_func(inst: LinkerInstance, name: str, func: Callable[..., Any]) -> None:
    """`inst.add_func(name, func)`, with the function's types looked up once."""
    raw = name.encode("utf-8")
    idx = FUNCTIONS.allocate(_HostFunc(func))
    err = ffi.wasmtime_component_linker_instance_add_func(
        inst.ptr(), ctypes.create_string_buffer(raw), len(raw), _host_impl, idx, func_finalize
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


def export(
    instance: Instance,
    store: wasmtime.Store,
    interface: str,
    name: str,
    types_cached: bool = True,
    expected: str | None = None,
) -> TypedFunc:
    """`interface#name` of `instance` (e.g. wbsrun:plugin/frame@0.1.0, run-action);
    `expected`: its signature as `signature` writes it (None: not checked)."""
    where = instance.get_export_index(store, interface)
    if where is None:
        raise MissingExport(f"it exports no interface {interface}")
    index = instance.get_export_index(store, name, where)
    func = instance.get_func(store, index) if index is not None else None
    if func is None:
        raise MissingExport(f"its interface {interface} exports no function '{name}'")
    return TypedFunc(func, store, name, types_cached, expected)


def describe(ty: Any) -> str:
    """A WIT-like text of a component value type, to compare an export with its world's."""
    from wasmtime.component import _types as t

    simple = {
        t.Bool: "bool", t.S8: "s8", t.S16: "s16", t.S32: "s32", t.S64: "s64",
        t.U8: "u8", t.U16: "u16", t.U32: "u32", t.U64: "u64", t.F32: "f32",
        t.F64: "f64", t.Char: "char", t.String: "string",
    }  # fmt: skip
    for cls, name in simple.items():
        if isinstance(ty, cls):
            return name
    if ty is None:
        return "_"
    if isinstance(ty, t.ListType):
        return f"list<{describe(ty.element)}>"
    if isinstance(ty, t.TupleType):
        return f"tuple<{', '.join(describe(e) for e in ty.elements)}>"
    if isinstance(ty, t.OptionType):
        return f"option<{describe(ty.payload)}>"
    if isinstance(ty, t.ResultType):
        return f"result<{describe(ty.ok)}, {describe(ty.err)}>"
    if isinstance(ty, t.RecordType):
        return "record{" + ", ".join(f"{n}: {describe(v)}" for n, v in ty.fields) + "}"
    if isinstance(ty, t.VariantType):
        cases = (n if v is None else f"{n}({describe(v)})" for n, v in ty.cases)
        return "variant{" + ", ".join(cases) + "}"
    if isinstance(ty, t.EnumType):
        return "enum{" + ", ".join(ty.names) + "}"
    return type(ty).__name__


def signature(func: Func, store: wasmtime.Store) -> str:
    fty = func.type(store)
    params = ", ".join(f"{name}: {describe(ty)}" for name, ty in fty.params)
    return f"func({params}) -> {describe(fty.result)}"
