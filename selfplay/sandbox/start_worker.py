"""The script a sandbox worker runs: ``python -I -S start_worker.py --worker <directory>``.

Standard library only: it loads the ``worker`` package beside it, never ``selfplay`` (whose
imports would sit in every program's process). Isolated mode leaves this file's folder off
``sys.path``; it is put there for that one import and taken off again.
"""

import os
import sys

if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from worker.serve import serve

    del sys.path[0]
    serve(sys.argv[2])
