import streamlit as st
st.title('steering_vectors')
st.info('Coming soon')
