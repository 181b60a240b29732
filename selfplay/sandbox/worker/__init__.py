"""The worker's side of the sandbox: standard library only.

A worker runs ``selfplay/sandbox/start_worker.py`` with ``python -I -S``, which loads this
package as a top-level one (``worker``), without ``selfplay``; so its modules import each
other relatively and nothing else of the project. The pool, in the caller's process, imports
``rules`` and ``protocol`` from here as ``selfplay.sandbox.worker``.

- ``rules``: ``Limits``, the allowed modules and names, the static check (layer 1);
- ``protocol``: length-prefixed JSON over the worker's pipes;
- ``program``: the program in its child, under restricted builtins, module views and the
  audit hook (layers 2 and 3);
- ``kernel``: Landlock and the seccomp filter (layer 4);
- ``serve``: the worker's loop, a confined child per program (layer 5).
"""
