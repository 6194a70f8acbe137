"""Start the dashboard with the model loading as the server starts: ``python -m dashboard.serve``.

``streamlit run dashboard/app.py`` loads the model on the first visit, so the first person to
open the page waits for the imports (torch, transformers, nnsight) and the load. This launcher
starts that work in a background thread of the server's own process, then runs Streamlit's
usual command line (``streamlit run dashboard/app.py`` plus the arguments given): by the time a
browser connects, the shared model (:func:`dashboard.server.get_model`, a process-wide
``st.cache_resource``; a session asking while it loads waits for the same load) is there, and
with ``python -m core warm`` run before, the pages' results are on disk
(:mod:`core.result_files`), so the first page shows at once.

The model warmed is the sidebar's default (the default model, float32, cpu), or the first model
the operator allows. A failure is only logged: the page reports it as it always has.
``streamlit run dashboard/app.py`` keeps working, without the head start.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
log = logging.getLogger("fv_studio.serve")


def preload() -> None:
    """Import the heavy modules, load the default model into the shared cache, and hash its
    weights for the disk tier's keys (in a background thread; errors are logged)."""
    t0 = time.perf_counter()
    try:
        import streamlit.runtime.scriptrunner_utils.script_run_context as ctx_mod

        # no Streamlit session in this thread: its "missing ScriptRunContext" warning says nothing
        # (a filter, not a level: Streamlit sets its loggers' levels as the server starts)
        logging.getLogger(ctx_mod.__name__).addFilter(lambda record: "fv-studio-preload" not in record.getMessage())
        from core.models import DEFAULT_MODEL, ModelSpec
        from core.result_files import model_identity
        from dashboard import compute, figures, server  # noqa: F401  (plotly imported here, not on the first visit)

        _import_all()
        allowed = server.server_config().allowed_models
        spec = ModelSpec(DEFAULT_MODEL if not allowed or DEFAULT_MODEL in allowed else allowed[0])
        server.get_model(spec)
        model_identity(spec)
        log.warning("fv-studio: %s loaded at server start in %.1f s", spec.model_id, time.perf_counter() - t0)
    except Exception as exc:  # the page shows the error to whoever opens it
        log.warning("fv-studio: preloading the model failed (%s: %s)", type(exc).__name__, exc)


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


def main(argv: list[str] | None = None) -> None:
    """``streamlit run dashboard/app.py [argv...]`` with :func:`preload` running alongside."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see app.py)
    root = str(APP.parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    threading.Thread(target=preload, name="fv-studio-preload", daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
