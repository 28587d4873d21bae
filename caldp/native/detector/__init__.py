"""Pure CCD and MAMA array algorithms: overscan fits and trimming (``overscan``), bias, gain,
electrons, saturation and errors (``ccd``), dark and post-flash (``dark``), flat fields and
shading (``flat``), sink pixels (``sink``) and MAMA linearity (``mama``).

Functions here take arrays and plain parameters (a detector layout, a table row) and return
arrays; they write no trailer and no header, so ACS and WFC3/UVIS can both use them."""
