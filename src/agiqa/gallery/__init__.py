"""Looking at scored images: the gallery page served by ``agiqa serve`` and the static ``agiqa report``.

``records`` (what a score means: level word, percentile), ``thumbs`` (thumbnails, data URLs), ``folder`` (the
score tables a server may open, and nothing outside them), ``page`` (one HTML/CSS/JS template, served or inlined)
and ``report`` (a score table as one self-contained HTML file).
"""
