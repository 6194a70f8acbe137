"""FV Studio: the Streamlit entrypoint. Run with `streamlit run dashboard/app.py`."""

from __future__ import annotations

import streamlit as st

from dashboard import state

st.set_page_config(page_title="FV Studio", page_icon="🧭", layout="wide")
state.init()

PAGES = [
    st.Page("../pages/model_prompts.py", title="Model & prompts", icon="🔤", default=True),
    st.Page("../pages/task_vectors.py", title="Task vectors", icon="📈"),
    st.Page("../pages/head_attribution.py", title="Head attribution", icon="🔥"),
    st.Page("../pages/function_vector.py", title="Function vector", icon="🧪"),
    st.Page("../pages/steer.py", title="Steer", icon="🎛️"),
    st.Page("../pages/steering_vectors.py", title="Steering vectors", icon="➕"),
    st.Page("../pages/vector_library.py", title="Vector library", icon="📚"),
]

st.navigation(PAGES).run()
