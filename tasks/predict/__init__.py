"""Models at work: clip preparation (``prepare``), training (``training``), inference into the store's
``predictions`` (``inference``: windows per face track, the promoted model, face-api.js's expression net
(``face_net``, which also streams the stored face crops) or the AU-rule baseline; ``windows``: what they label), and
the personal-data policy that depends on them (``privacy``: which videos keep crops, erasure, crops'
retention once the current models have predicted a video).

May import: ``tasks.store``, ``tasks.extract`` and ``models`` (and third-party packages); never ``analyse``,
``synthetic`` or ``flows``.
"""
