"""nbval runs each chapter in the environment its stored outputs were made in, with the smoke profile.

Loaded by pytest before any chapter kernel starts; kernels inherit this process's environment.
"""
import os

from handlib.book import CHAPTER_ENV

os.environ.update(CHAPTER_ENV)
os.environ["HANDLIB_PROFILE"] = "smoke"
os.environ.setdefault("HANDLIB_DATASET", "synthetic")
