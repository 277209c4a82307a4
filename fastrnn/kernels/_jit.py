"""The one place where fastrnn's Numba kernels get their compile options.

Every jitted function in :mod:`fastrnn.kernels` is built by :func:`kernel`, so all of them share
the same options and a test can check that none was built another way.

Options and why:

- ``cache=True``: compiled machine code is written next to the sources (``__pycache__``) or
  under ``NUMBA_CACHE_DIR`` if that environment variable is set; ``NUMBA_DISABLE_JIT=1`` turns
  compilation off altogether (pure-Python execution, for debugging and coverage).
- ``nogil=True``: kernels release the GIL, so threads can run them in parallel.
- ``error_model="numpy"``: division follows IEEE rules instead of raising, which removes a
  branch per division and lets LLVM vectorise the pointwise loops.
- no ``fastmath``: it assumes there are no NaN or inf, and fastrnn's divergence checks rely on
  seeing them.
- ``no_cfunc_wrapper=True``: Numba otherwise emits, for every compiled overload, a C-ABI
  wrapper that only a kernel passed around as a first-class function value would use (Numba's
  ``FunctionType``; such a use now fails with a ValueError). Generating and optimising those
  wrappers took ~1 s of a cell's cold first forward+backward (9.6-11.8 s without, 11.1-12.3 s
  with, interleaved). Compiled callers, yours included, call a kernel directly, and Python
  through its CPython wrapper, which stays.
"""

import copy
import functools
import hashlib
import importlib
import os
import types
from pathlib import Path

import numba
import numba.core.cpu
import numba.core.inline_closurecall
import numba.core.registry
from llvmlite import binding as llvm
from numba.core import cgutils, sigutils
from numba.core.ccallback import CFunc
from numba.core.imputils import fix_returning_optional, impl_ret_new_ref

JIT_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy", "no_cfunc_wrapper": True}

#: Every dispatcher built by :func:`kernel`, in definition order.
KERNELS = []

_STAMP_NAME = "fastrnn-kernels.sha256"


def _build(fn, unaliased=False, **extra):
    if unaliased and not numba.config.DISABLE_JIT:
        options = {key: value for key, value in JIT_OPTIONS.items() if key != "cache"}
        dispatcher = _UnaliasedDispatcher(py_func=fn, locals={}, targetoptions={"nopython": True, **options, **extra})
        dispatcher.enable_caching()
    else:
        dispatcher = numba.njit(**extra, **JIT_OPTIONS)(fn)
    _keep_reload_hooks(dispatcher)
    if extra.get("inline") != "always" and not getattr(fn, "linked", False):
        _called_by_symbol(dispatcher)
    KERNELS.append(dispatcher)
    return dispatcher


# -- compiled callers call a kernel by its symbol, rather than linking its code -------------------
#
# Numba links a callee's code into every compiled function that calls it, and LLVM optimises and
# emits all of it again there, at every level of the call tree: the binary-addition training loop
# (which calls the cell's forward and backward, which call the products) carried 2.1 MB of LLVM IR
# of which 0.27 MB was its own, and compiling it re-optimised the cell's kernels a third time.
# Instead, once a kernel's overload is compiled (or loaded from the cache), its machine code's
# address is given to LLVM under a symbol of its own, and compiled callers -- the package's and
# the user's -- call that symbol with Numba's own calling convention (status, exceptions and
# reference counts as for a linked call). Each function's module is then its own code alone. The
# price is a call LLVM cannot inline: the functions small enough to gain from inlining are the
# ``inlined`` ones, which Numba inlines itself, and the ``linked`` ones, left to LLVM.

def _called_by_symbol(dispatcher):
    """Route compiled calls of each overload of ``dispatcher`` through its symbol (see above)."""
    add_overload = getattr(dispatcher, "add_overload", None)
    if add_overload is None:  # NUMBA_DISABLE_JIT=1: a plain function
        return

    def add_overload_by_symbol(cres):
        add_overload(cres)
        if not cres.objectmode:
            _register(dispatcher, cres)

    dispatcher.add_overload = add_overload_by_symbol


def _symbol(py_func, args):
    """The symbol of a kernel's overload: from its name and argument types alone, the same in every
    process. (Numba's own name for it carries a counter of the functions compiled so far in the
    process, so a caller loaded from the cache would look for another name than the one the
    callee gets when it is compiled anew.)"""
    digest = hashlib.sha256(repr(args).encode()).hexdigest()[:24]
    return f"fastrnn.{py_func.__module__}.{py_func.__qualname__}.{digest}"


def _register(dispatcher, cres):
    """Give LLVM the address of ``cres``'s native function and make compiled callers call it there."""
    fndesc = cres.fndesc
    py_func = dispatcher.py_func
    args = tuple(cres.signature.args)
    symbol = _symbol(py_func, args)
    if not llvm.address_of_symbol(symbol):
        llvm.add_symbol(symbol, cres.library.get_pointer_to_function(fndesc.mangled_name))
    hook = functools.partial(load_symbol, py_func.__module__, py_func.__qualname__, args)
    context = dispatcher.targetctx
    context.remove_user_function(cres.entry_point)
    call = _call_symbol(fndesc, symbol, hook)
    context._defns[cres.entry_point].append(call, call.signature)


def _call_symbol(fndesc, symbol, hook):
    """The lowering of a call of ``fndesc`` by ``symbol``, in place of Numba's linked call."""
    def call(context, builder, sig, args):
        # A caller loaded from the cache loads the callee and registers its symbol first (a call
        # to an undefined symbol is a crash, not an error).
        context.active_code_library._reload_init.add(hook)
        function = cgutils.get_or_insert_function(
            builder.module, context.call_conv.get_function_type(fndesc.restype, fndesc.argtypes), symbol)
        context.call_conv.decorate_function(function, fndesc.args, fndesc.argtypes, noalias=fndesc.noalias)
        status, value = context.call_conv.call_function(builder, function, fndesc.restype, fndesc.argtypes, args)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        value = fix_returning_optional(context, builder, sig, status, value)
        return impl_ret_new_ref(context, builder, fndesc.restype, value)

    call.signature = fndesc.argtypes
    call.libs = ()
    return call


def load_symbol(module, qualname, args):
    """Compile or load from the cache the overload for ``args`` of the kernel ``module.qualname``,
    which registers its symbol: the reload hook of every compiled caller of it."""
    importlib.import_module(module)
    for dispatcher in KERNELS:
        if dispatcher.py_func.__module__ == module and dispatcher.py_func.__qualname__ == qualname:
            dispatcher.compile(args)
            return
    raise LookupError(f"no fastrnn kernel {module}.{qualname}")


def _keep_reload_hooks(dispatcher):
    """Let code loaded from the cache pass its reload hooks on to the code that links it.

    A compiled function can carry hooks that must run before its machine code is loaded from
    the cache: the threading layer's start for parallel loops, :func:`fastrnn.kernels._gemm.load_core`
    for the product's core, whose symbol its code calls. A caller compiled later inherits the
    hooks of the code it links, but Numba restores them only on the loaded function's compile
    result, not on its code library, which is what a caller inherits from: a kernel compiled
    against a product loaded from the cache would then be cached without the product's hook,
    and a later process loading that kernel alone would call an undefined symbol (a crash).
    Copying the hooks back onto the library at each load closes that gap.
    """
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or not hasattr(cache, "load_overload"):  # NUMBA_DISABLE_JIT=1: a plain function
        return
    load = cache.load_overload

    def load_overload(sig, target_context):
        compiled = load(sig, target_context)
        if compiled is not None and compiled.reload_init:
            compiled.library._reload_init.update(compiled.reload_init)
        return compiled

    cache.load_overload = load_overload


# -- Numba's inliner, without copying the callee's variables once per block -----------------------
#
# To inline a function, Numba deep-copies the callee's IR (twice: one copy to splice in, one kept
# unchanged), block by block, each block with a fresh memo. Every variable of a block points to
# the function's scope, which holds all its variables, so each block's copy copies the whole
# scope again: blocks times variables. The recurrences inlined into every cell kernel have
# hundreds of each, and these copies took ~2 s of a cell's ~13 s cold compile (an open Numba
# issue, numba/numba#8989). Below, the copies made for inlining one of fastrnn's own functions
# share one memo, so the scope is copied once per copy, as one deep copy of the whole IR would.
# The copied IR is the same; other packages' inlining is left as it is.

class _SharedMemoCopy:
    """Stands in for the ``copy`` module inside Numba's inliner: ``deepcopy`` with the memo of the
    inlining under way, when it inlines one of fastrnn's functions."""

    def __init__(self):
        self.memo = None

    def deepcopy(self, x, memo=None):
        return copy.deepcopy(x, self.memo if memo is None else memo)

    def __getattr__(self, name):
        return getattr(copy, name)


def _share_inliner_copies():
    worker = numba.core.inline_closurecall.InlineWorker
    if getattr(worker.inline_ir, "fastrnn_shared_memo", False):  # already installed
        return
    shim = _SharedMemoCopy()
    inline_ir = worker.inline_ir

    @functools.wraps(inline_ir)
    def inline_ir_sharing_copies(self, caller_ir, block, i, callee_ir, *args, **kwargs):
        func = getattr(getattr(callee_ir, "func_id", None), "func", None)
        ours = getattr(func, "__module__", "").startswith("fastrnn.")
        outer, shim.memo = shim.memo, ({} if ours else None)
        try:
            return inline_ir(self, caller_ir, block, i, callee_ir, *args, **kwargs)
        finally:
            shim.memo = outer

    inline_ir_sharing_copies.fastrnn_shared_memo = True
    worker.inline_ir = inline_ir_sharing_copies
    numba.core.inline_closurecall.copy = shim


_share_inliner_copies()


#: Every C-callable function built by :func:`c_callable`, by qualified name.
C_FUNCTIONS = {}


def c_callable(fn, signature):
    """``fn`` compiled now (or loaded from the cache) as a C-callable function of ``signature``,
    with :data:`JIT_OPTIONS`; once per process, registered in :data:`C_FUNCTIONS`. For code that
    other kernels call by address rather than link in (see :mod:`fastrnn.kernels._gemm`)."""
    name = fn.__qualname__
    if name not in C_FUNCTIONS:
        options = {key: value for key, value in JIT_OPTIONS.items() if key != "cache"}
        function = CFunc(fn, sigutils.normalize_signature(signature), locals={}, options=options)
        function.enable_caching()
        save = function._cache.save_overload

        def save_overload(sig, cres):
            # Numba gathers the reload hooks of the code a function calls into a jitted function's
            # compile result, not a C callable's: without this, loading it from the cache would
            # not load the kernels it calls by symbol first.
            cres.reload_init.extend(hook for hook in cres.library._reload_init if hook not in cres.reload_init)
            save(sig, cres)

        function._cache.save_overload = save_overload
        function.compile()
        C_FUNCTIONS[name] = function
    return C_FUNCTIONS[name]


# -- functions whose array arguments LLVM may take as not overlapping -----------------------------
#
# LLVM vectorises a loop over several arrays only behind a run-time check that none of the ones
# it writes overlaps any other, one comparison per pair; a pointwise step touches a dozen arrays,
# and at H = 16 or 20 that check, made again for every batch row, cost more than the arithmetic
# (LSTM backward step: ~500 instructions of comparisons a row, 3 ns an element). Numba can mark
# a function's array arguments ``noalias`` (it does for its parallel loops' bodies), which tells
# LLVM that they do not overlap: no check is needed, and the loops run as vectors. Numba offers
# this as a compiler flag, not a jit option, hence a target of its own sharing the CPU target's
# typing and code contexts.

class _UnaliasedOptions(numba.core.cpu.CPUTargetOptions):
    def finalize(self, flags, options):
        super().finalize(flags, options)
        flags.noalias = True


class _UnaliasedTarget(numba.core.registry.CPUTarget):
    options = _UnaliasedOptions

    @property
    def target_context(self):
        return numba.core.registry.cpu_target.target_context

    @property
    def typing_context(self):
        return numba.core.registry.cpu_target.typing_context


class _UnaliasedDispatcher(numba.core.registry.CPUDispatcher):
    targetdescr = _UnaliasedTarget("cpu")


def unaliased_twin(dispatcher):
    """A twin of an :func:`inlined` function, compiled as a kernel of its own (called by symbol)
    whose array arguments LLVM takes as not overlapping (see above): no two of them may share
    memory that the function writes."""
    return _build(_twin(dispatcher, "unaliased", {}, ""), unaliased=True)


def inlined_twin(function, suffix, changed_globals):
    """A copy of the plain function ``function`` with some of its globals changed, built by
    :func:`inlined` under its own name (see :func:`fastrnn.kernels._driver.recurrences`)."""
    return _build(_twin(function, suffix, changed_globals, ""), inline="always")


def _twin(dispatcher, suffix, changed_globals, note):
    """A copy of a kernel's Python function, with some of its globals changed, under a name of its
    own: Numba's cache files are named by the function's qualified name and line."""
    fn = getattr(dispatcher, "py_func", dispatcher)  # a plain function under NUMBA_DISABLE_JIT=1
    # The module's own globals when none change, so that the twin sees what the original sees.
    namespace = {**fn.__globals__, **changed_globals} if changed_globals else fn.__globals__
    twin = types.FunctionType(fn.__code__, namespace, f"{fn.__name__}_{suffix}", fn.__defaults__, fn.__closure__)
    twin.__qualname__ = f"{fn.__qualname__}_{suffix}"
    twin.__module__ = fn.__module__
    twin.__doc__ = f"{fn.__doc__}{note}" if note else fn.__doc__
    return twin


def linked(fn):
    """Mark ``fn``, under one of the decorators below, to be linked into its compiled callers (and
    so open to LLVM's inlining) rather than called by its symbol: for the small products the time
    loops call at every step, where a call by symbol cost the smallest problems a few percent."""
    fn.linked = True
    return fn


def kernel(fn):
    """Compile ``fn`` lazily with :data:`JIT_OPTIONS` and register it in :data:`KERNELS`."""
    return _build(fn)


def inlined(fn):
    """Like :func:`kernel`, for functions that are always inlined into their callers at Numba's IR level.

    Used for element functions called inside pointwise loops (left to LLVM's inliner, the larger
    ones such as tanh stay calls, and a call inside a loop stops it from being vectorised:
    15 ns against 4 ns per element) and for the per-step functions of the time loop (a call that
    passes a dozen arrays costs reference-count traffic on each of them, every step).
    """
    return _build(fn, inline="always")


def parallel(fn):
    """Like :func:`kernel`, with Numba's ``parallel=True``: its ``prange`` loops run on Numba's
    threading layer, as many threads as :func:`numba.set_num_threads` allows (per calling thread).
    Kept to a few small functions, since the parallel transform adds to compile time; a caller
    calls one only above a measured size and when more than one thread is allowed."""
    return _build(fn, parallel=PRANGE_ONLY)


#: Numba's parallel transform for ``prange`` loops only: its other rewrites turn array
#: expressions and slice assignments (``out[...] = 0.0``) into parallel loops of their own, each a
#: thread launch, on arrays far too small to pay for one.
PRANGE_ONLY = {"prange": True, "comprehension": False, "reduction": False, "inplace_binop": False,
               "setitem": False, "numpy": False, "stencil": False, "fusion": False}


#: What a cell kernel passes its recurrence as ``split``: false in the kernel itself, true in its
#: :func:`threaded` twin (a compile-time constant either way).
THREADED = False


def threaded(dispatcher):
    """The threaded twin of a cell kernel built by :func:`kernel`: the same Python function, with
    :data:`THREADED` true and Numba's parallel loops, so that each step's batch rows are shared out
    over the threads allowed (see :func:`fastrnn.kernels._driver.recur_forward`).

    A twin of its own rather than a run-time switch in the kernel: the parallel loops cost compile
    time (one LSTM forward+backward 11 s -> 18 s), which only calls large enough to gain from
    threads should pay. :class:`fastrnn.cells.Cell` calls the twin for those, so it is compiled on
    first use there, and never for small problems.
    """
    twin = _twin(dispatcher, "threaded", {"THREADED": True},
                 "\n\nThe threaded twin (:func:`fastrnn.kernels._jit.threaded`).")
    return _build(twin, parallel=PRANGE_ONLY)


def reassociating(fn):
    """Like :func:`kernel`, plus leave to LLVM the order of a sum's terms (``reassoc``) and fused
    multiply-adds (``contract``): only then is a dot-product loop vectorised. Used for the small
    matrix products only; it changes rounding like any BLAS does, and keeps NaN and inf semantics.
    """
    return _build(fn, fastmath={"reassoc", "contract"})


def entry_point(dispatcher, args):
    """The compiled wrapper that ``dispatcher(*args)`` runs: a built-in function of the same
    arguments, without the dispatcher's typing of each argument (0.25 µs of a 2 µs call that
    passes ten arrays). None where there is none: under ``NUMBA_DISABLE_JIT``, or before the
    dispatcher has compiled or loaded code for these argument types.

    The wrapper converts its arguments as if they had those types, unchecked: a caller must make
    sure that every later call passes arguments of exactly the same Numba types.
    """
    overloads = getattr(dispatcher, "overloads", None)
    if not overloads:
        return None
    compiled = overloads.get(tuple(map(dispatcher.typeof_pyval, args)))
    return None if compiled is None else compiled.entry_point


def with_python_fallback(fallback):
    """Decorator for a Numba ``@intrinsic``: under ``NUMBA_DISABLE_JIT=1`` the plain-Python
    ``fallback`` (same arguments, same result) stands in for it, since an intrinsic only exists
    inside compiled code. Everything else in the kernels is plain Python already."""
    def choose(compiled):
        return fallback if numba.config.DISABLE_JIT else compiled
    return choose


def source_digest():
    """Hash of every kernel source file plus the Numba version."""
    digest = hashlib.sha256(numba.__version__.encode())
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):  # the step modules in steps/ too
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def invalidate_stale_cache():
    """Drop cached machine code compiled from other kernel sources than the ones installed.

    Numba keys a cache entry on the source file of the function itself only. A cell kernel
    calls the shared recurrence driver in another file, so after an edit of the driver the
    cell's cached code would be reused silently, stale. A digest of all kernel sources is kept
    beside the cache; when it differs, the cache files of this package are removed. Called
    once, after all kernel modules are imported and before anything is compiled.
    """
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return
    digest = source_digest()
    cache_dirs = set()
    for dispatcher in KERNELS:
        cache = getattr(dispatcher, "_cache", None)
        path = getattr(cache, "_cache_path", None)
        if path:
            cache_dirs.add(Path(path))
    for directory in cache_dirs:
        stamp = directory / _STAMP_NAME
        try:
            if stamp.is_file() and stamp.read_text() == digest:
                continue
            for pattern in ("*.nbi", "*.nbc"):
                for entry in directory.glob(pattern):
                    entry.unlink(missing_ok=True)
            directory.mkdir(parents=True, exist_ok=True)
            stamp.write_text(digest)
        except OSError:
            # A read-only install: Numba falls back to compiling in memory, which is correct.
            pass
