"""Serving converted models in engines people already run: Ray Serve (ray_serve.py) and Triton Inference Server's
onnxruntime backend (triton.py). requests.py decodes and checks request bodies for both the server and its tests."""
