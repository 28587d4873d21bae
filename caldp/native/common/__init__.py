"""What every native program shares: FITS and imset I/O (``fitsread``, ``imageio``), reference
files and their tables (``refs``, ``tables``), the trailer (``trailer``), header keywords,
switches and HISTORY (``keywords``), image statistics (``statistics``), errors and the version."""
