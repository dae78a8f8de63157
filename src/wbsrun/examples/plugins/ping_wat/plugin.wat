;; A wbsrun plugin in WebAssembly text (docs/wasi.md): `run-action` finds the first
;; "http…" URL in the action's arguments and asks the host to GET it; `resume` turns the
;; answer into {"status": NNN}, or the host's failure into the action's error.
;;
;; A core module with the canonical ABI's names; `wasm-tools component embed` + `new`
;; (examples/plugins/build.py) make it a component of the world wbsrun:plugin/plugin.
;; A bump allocator, reset after every call (the post-return functions).
(module
  (import "wbsrun:plugin/host@0.1.0" "send"
    (func $send (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 0) "GET")
  (data (i32.const 16) "{\"status\":000}")
  (data (i32.const 64) "ping: no http URL in the arguments")
  (data (i32.const 128) "invalid-configuration")
  (data (i32.const 160) "ping: no answer")
  (data (i32.const 192) "schema-violation")

  (func (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $p i32)
    (local.set $p
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.xor (i32.sub (local.get $align) (i32.const 1)) (i32.const -1))))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (block $fits
      (loop $grow
        (br_if $fits
          (i32.le_u (global.get $heap) (i32.shl (memory.size) (i32.const 16))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (if (local.get $old)
      (then (memory.copy (local.get $p) (local.get $old) (local.get $old_size))))
    (local.get $p))

  ;; step::done(outcome{value-json: (vp, vl), error: (code, message) or none}) at 1024.
  (func $done (param $vp i32) (param $vl i32)
    (param $err i32) (param $cp i32) (param $cl i32) (param $mp i32) (param $ml i32)
    (result i32)
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (local.get $vp))
    (i32.store (i32.const 1032) (local.get $vl))
    (i32.store8 (i32.const 1036) (local.get $err))
    (i32.store (i32.const 1040) (local.get $cp))
    (i32.store (i32.const 1044) (local.get $cl))
    (i32.store (i32.const 1048) (local.get $mp))
    (i32.store (i32.const 1052) (local.get $ml))
    (i32.const 1024))

  (func (export "wbsrun:plugin/frame@0.1.0#init") (param i32 i32) (result i32)
    (i32.store8 (i32.const 1088) (i32.const 0))
    (i32.const 1088))

  (func (export "wbsrun:plugin/frame@0.1.0#run-action")
    (param $up i32) (param $ul i32) (param $cp i32) (param $cl i32)
    (param $ap i32) (param $al i32) (result i32)
    (local $i i32) (local $end i32) (local $j i32)
    (local.set $i (local.get $ap))
    (local.set $end (i32.add (local.get $ap) (local.get $al)))
    ;; the first "http" (little-endian 0x70747468)
    (block $found
      (loop $scan
        (if (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $end))
          (then (return (call $done (i32.const 0) (i32.const 0)
            (i32.const 1) (i32.const 128) (i32.const 21) (i32.const 64) (i32.const 34)))))
        (br_if $found (i32.eq (i32.load (local.get $i)) (i32.const 0x70747468)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    ;; up to the closing quote
    (local.set $j (local.get $i))
    (block $closed
      (loop $quote
        (br_if $closed (i32.ge_u (local.get $j) (local.get $end)))
        (br_if $closed (i32.eq (i32.load8_u (local.get $j)) (i32.const 34)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $quote)))
    (drop (call $send
      (i32.const 0) (i32.const 3)
      (local.get $i) (i32.sub (local.get $j) (local.get $i))
      (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 0)
      (i32.const 0)))
    ;; step::wait
    (i32.store8 (i32.const 1024) (i32.const 1))
    (i32.const 1024))

  ;; responses: list<response>, 56 bytes each: ticket @0, status @4, headers @8, body @16,
  ;; latency @24, error @32 (option: tag, then code @36/@40, message @44/@48).
  (func (export "wbsrun:plugin/frame@0.1.0#resume")
    (param $up i32) (param $ul i32) (param $rp i32) (param $rn i32) (result i32)
    (local $status i32)
    (if (i32.eqz (local.get $rn))
      (then (return (call $done (i32.const 0) (i32.const 0)
        (i32.const 1) (i32.const 192) (i32.const 16) (i32.const 160) (i32.const 15)))))
    (if (i32.load8_u (i32.add (local.get $rp) (i32.const 32)))
      (then (return (call $done (i32.const 0) (i32.const 0) (i32.const 1)
        (i32.load (i32.add (local.get $rp) (i32.const 36)))
        (i32.load (i32.add (local.get $rp) (i32.const 40)))
        (i32.load (i32.add (local.get $rp) (i32.const 44)))
        (i32.load (i32.add (local.get $rp) (i32.const 48)))))))
    (local.set $status (i32.load16_u (i32.add (local.get $rp) (i32.const 4))))
    (i32.store8 (i32.const 26) (i32.add (i32.const 48) (i32.div_u (local.get $status) (i32.const 100))))
    (i32.store8 (i32.const 27)
      (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $status) (i32.const 10)) (i32.const 10))))
    (i32.store8 (i32.const 28) (i32.add (i32.const 48) (i32.rem_u (local.get $status) (i32.const 10))))
    (call $done (i32.const 16) (i32.const 14)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))

  (func (export "wbsrun:plugin/frame@0.1.0#release-user") (param i32 i32))
  (func (export "wbsrun:plugin/frame@0.1.0#release"))

  (func $reset (param i32) (global.set $heap (i32.const 4096)))
  (export "cabi_post_wbsrun:plugin/frame@0.1.0#run-action" (func $reset))
  (export "cabi_post_wbsrun:plugin/frame@0.1.0#resume" (func $reset))
  (export "cabi_post_wbsrun:plugin/frame@0.1.0#init" (func $reset))
)
