import streamlit as st
st.title('steer')
st.info('Coming soon')
