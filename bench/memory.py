"""Peak resident memory of a process tree: the whole tree at once, and each process on its own.

The tree's total is what the machine must hold; each process's own peak is
what bounds a build on a runner that gives every worker process its share of
a machine (Dataflow runs one SDK process per vCPU). A process's own peak is
the kernel's high-water mark (`VmHWM` in /proc/<pid>/status, Linux), so a
spike between two samples still counts; where that is missing, the largest
resident size sampled.
"""

from __future__ import annotations

import contextlib
import threading


def _high_water_mark(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakMemory(threading.Thread):
    """Samples the resident memory of a process and all its descendants every 50 ms.

    Finding the descendants scans every process on the machine (6 % of a core
    at this rate), which would be taken from the build it measures; so they
    are looked up once a second, and only their memory at every sample (under
    1 %). `peak` is the tree's largest total; `process_peaks` maps each
    process (pid) to its own peak, `launcher_peak` is the root's.
    """

    _LOOKUP_EVERY = 20  # samples

    def __init__(self, pid: int, also: tuple[int, ...] = ()):
        super().__init__(daemon=True)
        self._pid = pid
        self._also = also  # more roots counted with it (a Dask cluster's workers, which are not the launcher's children)
        self.peak = 0
        self.process_peaks: dict[int, int] = {}
        self._done = threading.Event()

    @property
    def launcher_peak(self) -> int:
        return self.process_peaks.get(self._pid, 0)

    @property
    def largest_process_peak(self) -> int:
        return max(self.process_peaks.values(), default=0)

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self._pid)
        except psutil.NoSuchProcess:
            return
        sample = 0
        tree = [root]
        while not self._done.is_set():
            if sample % self._LOOKUP_EVERY == 0:
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    break
                for pid in self._also:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        other = psutil.Process(pid)
                        tree += [other, *other.children(recursive=True)]
            total = 0
            for p in tree:
                try:
                    rss = p.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                total += rss
                own = max(rss, _high_water_mark(p.pid) or 0)
                self.process_peaks[p.pid] = max(self.process_peaks.get(p.pid, 0), own)
            self.peak = max(self.peak, total)
            sample += 1
            self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self.join()
