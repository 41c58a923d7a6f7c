"""Importing this module takes what the process holds so far, and again at exit, out of the garbage collector's sight.

Beam and its libraries leave about a hundred thousand objects that live as long
as the process. Every full collection walks them all: ~70 ms each in a worker,
~0.6 s per worker over a 100 MB BERT build. And when a process ends, the
interpreter collects several times more over everything still alive, ~0.3 s
per process that imported Beam, spent on memory the operating system is about
to reclaim (the local runner stops its workers one after another, so a small
build waited ~0.6 s for that). `gc.freeze()` on import and in an exit handler
(exit handlers run before those last collections) skips both walks. The
`tokenmill` command imports this module (its process ends with the command),
and local runs name it in `--beam_plugins`, which each worker process imports
at its start, after Beam. Frozen objects are still freed when their last
reference goes; only cyclic garbage among them stays, and every file a run
writes is closed by the code that opened it.
"""

import atexit
import gc

gc.freeze()
atexit.register(gc.freeze)
