"""WebAssembly plugins: components of the WIT worlds in `wit/` (docs/wasi.md), hosted with
wasmtime (the `wasi` extra). An adapter beside `protocols`: the CLI hands
`loader.load_component` to `protocols.registry.build_components`, which falls back to the
built-ins as the DSL says; `check` runs `wasm-tools component targets` for
`wbsrun plugins check` and `wbsrun validate`.

Nothing is imported here, so that `check` works without wasmtime installed."""
