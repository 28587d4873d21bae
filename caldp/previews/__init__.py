"""Preview images and spectra of a dataset's products.

caldp.create_preview is the entry point (the make_previews step and caldp-create-previews);
the pieces live here:

    frames    what an image preview shows: one 2-D array and the mask of pixels not to show
    stretch   caldp's own numpy + Pillow renderer (asinh, 99.5 % autoscale, JPEG + thumbnail)
    fitscut   the same previews made by the fitscut program (STScI's fork or Debian's 1.4.4)
    spectra   spec-plots' make_hst_spec_previews for COS and STIS spectra
"""
