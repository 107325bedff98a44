"""The book's tooling: which chapters exist (:mod:`.chapters`), executing them with papermill
(:mod:`.run`), building the offline HTML book (:mod:`.build`), opening it as a reader would
(:mod:`.check`), and the ``python -m handlib book`` commands (:mod:`.cli`).

Chapters themselves import none of this; what a chapter calls inside its kernel is
:mod:`handlib.notebook`.
"""
