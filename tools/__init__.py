"""pixplan.tools: image editing tools with region arguments, usable by any LangChain or LangGraph agent.

Importing this package loads Pillow, NumPy and OpenCV only; generative tools load torch and diffusers when
first used.
"""
