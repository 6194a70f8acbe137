"""Start the dashboard with the model loaded before the server answers: ``python -m dashboard.serve``.

``streamlit run dashboard/app.py`` loads the model on the first visit, so the first person to
open the page waits for the imports (torch, transformers, nnsight) and the load. This launcher
runs Streamlit's usual command line (``streamlit run dashboard/app.py`` plus the arguments
given) and does that work in the server's process at the point where Streamlit starts its
server, once it has read its configuration (the flags, ``.streamlit/``, the secrets the
operator's settings come from): the shared model (:func:`dashboard.server.get_model`, a
process-wide ``st.cache_resource``) is loaded before the server opens its port, and with
``python -m core warm`` run before, the pages' results are on disk (:mod:`core.result_files`),
so the first page opened shows at once.

Before, not alongside (a background thread, as this launcher first did): the imports hold
Python's lock, so a page opened during the preload waited for all of it anyway, and the page's
own run and the browser's requests were slowed by the imports they shared the lock with (on 2
cores, a page opened at once took about twice as long as one opened later). Two threads
importing at once also raced: Streamlit's modules could deadlock on their import locks, and
nnsight, which gives every object a ``save`` method, made anyio's ``TypedAttributeSet``
classes fail when it came first (the server's lifespan then failed to start). Here one thread
imports everything, anyio's classes first. The cost: the port opens a few seconds later
(``make run`` says so while it loads), and the process start to the first page complete is
about a second longer (the browser's own loading no longer overlaps the imports).

The model loaded is the sidebar's default (the default model, float32, cpu), or the first
model the operator allows. A failure is only logged: the server starts and the page reports it
as it always has. ``streamlit run dashboard/app.py`` keeps working, without the head start.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parent / "app.py"
log = logging.getLogger("fv_studio.serve")


def preload() -> None:
    """Import the heavy modules, load the default model into the shared cache, and hash its
    weights for the disk tier's keys (errors are logged, never raised)."""
    t0 = time.perf_counter()
    import streamlit.runtime.scriptrunner_utils.script_run_context as ctx_mod

    # no Streamlit session yet: its "missing ScriptRunContext" warning says nothing here
    # (a filter, not a level: Streamlit sets its loggers' levels as the server starts)
    ctx_logger = logging.getLogger(ctx_mod.__name__)

    def quiet(record: logging.LogRecord) -> bool:
        return "missing ScriptRunContext" not in record.getMessage()

    ctx_logger.addFilter(quiet)
    try:
        from core.models import DEFAULT_MODEL, ModelSpec
        from core.result_files import model_identity
        from dashboard import compute, figures, server  # noqa: F401  (plotly imported here, not on the first visit)

        _import_all()
        _warm_tables()
        allowed = server.server_config().allowed_models
        spec = ModelSpec(DEFAULT_MODEL if not allowed or DEFAULT_MODEL in allowed else allowed[0])
        server.get_model(spec)
        model_identity(spec)
        log.warning("fv-studio: %s loaded in %.1f s, before the server starts", spec.model_id, time.perf_counter() - t0)
    except Exception as exc:  # the page shows the error to whoever opens it
        log.warning("fv-studio: preloading the model failed (%s: %s)", type(exc).__name__, exc)
    finally:
        ctx_logger.removeFilter(quiet)


def _import_all() -> None:
    """Import every module of ``core`` and ``dashboard`` the pages use, so the first visit runs
    the page, not a second of imports (``dashboard.app`` is the script Streamlit runs)."""
    import importlib
    import pkgutil

    import core
    import dashboard

    for package in (core, dashboard):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name in ("dashboard.app", "dashboard.serve", "core.__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # a module that fails here fails on its page, with a message
                log.warning("fv-studio: could not import %s ahead (%s)", info.name, exc)


def _warm_tables() -> None:
    """Convert one small table as ``st.table`` and ``st.dataframe`` do (pandas, then Arrow): the
    sidebar's first table imported pandas and pyarrow, a second or more of the first visit."""
    import pandas as pd
    import pyarrow as pa

    pa.Table.from_pandas(pd.DataFrame({"what": ["x"], "limit": [1.0]}))


def main(argv: list[str] | None = None) -> None:
    """``streamlit run dashboard/app.py [argv...]``, with :func:`preload` before the server starts."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see app.py)
    root = str(APP.parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    # anyio's typed-attribute classes before nnsight patches object (see the module docstring)
    from anyio.abc import SocketAttribute  # noqa: F401
    from anyio.streams.file import FileStreamAttribute  # noqa: F401
    from anyio.streams.tls import TLSAttribute  # noqa: F401
    from streamlit.web import bootstrap, cli

    bootstrap.run = _after_preload(bootstrap.run)  # what `streamlit run` calls once its config is read
    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    cli.main()


def _after_preload(run: Callable[..., None]) -> Callable[..., None]:
    """Streamlit's server start (``bootstrap.run``), preceded by :func:`preload`."""

    @functools.wraps(run)
    def preload_then_run(*args: Any, **kwargs: Any) -> None:
        print("fv-studio: loading the model before the server starts...", file=sys.stderr, flush=True)
        preload()
        run(*args, **kwargs)

    return preload_then_run


if __name__ == "__main__":
    main()
