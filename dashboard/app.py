"""FV Studio: the Streamlit entrypoint. Run with `streamlit run dashboard/app.py`.

The frame of every page: session defaults, the sidebar (drawn here once per run, so its
widgets keep their values on every page; pages read it with ``sidebar.context()``), then
the chosen page."""

from __future__ import annotations

import os

# torch's OpenMP threads spin while they wait for work; on shared cores (several users, their
# browsers, other processes) that made a generation several times slower. Read once, when torch
# is first imported (below, through dashboard and core): so set here, before it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st

from dashboard import lesson, links, running, sidebar, state

st.set_page_config(page_title="FV Studio", page_icon=":material/explore:", layout="wide")
state.init()
running.begin_script_run()

# the guided lesson first (dashboard.lesson: its steps, in order), then the tools
LESSON = [st.Page(s.path, title=f"{s.n}. {s.title}", icon=s.icon) for s in lesson.STEPS]
TOOLS = [
    st.Page("../pages/model_prompts.py", title="Model & prompts", icon=":material/text_fields:", default=True),
    st.Page("../pages/task_vectors.py", title="Task vectors", icon=":material/show_chart:"),
    st.Page("../pages/head_attribution.py", title="Head attribution", icon=":material/grid_on:"),
    st.Page("../pages/function_vector.py", title="Function vector", icon=":material/science:"),
    st.Page("../pages/task_report.py", title="Task report", icon=":material/summarize:"),
    st.Page("../pages/compare_tasks.py", title="Compare tasks", icon=":material/compare:"),
    st.Page("../pages/steer.py", title="Steer", icon=":material/tune:"),
    st.Page("../pages/steering_vectors.py", title="Steering vectors", icon=":material/add_circle:"),
    st.Page("../pages/vector_library.py", title="Vector library", icon=":material/library_books:"),
]

page = st.navigation({"Lesson": LESSON, "Tools": TOOLS}, expanded=True)  # every page listed
links.restore(page)  # shareable links (dashboard.links): a link's settings, before the sidebar
sidebar.draw()
with links.kept_in_url(page):  # the settings written to the URL; the sidebar's Copy link
    page.run()
