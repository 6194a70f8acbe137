import streamlit as st
st.title('vector_library')
st.info('Coming soon')
