"""The GIMP 3 plug-in's files, shipped as package data of ``knockout.gimp_plugin``.

``plug-ins/knockout-backdrop/knockout-backdrop.py`` runs inside GIMP, not here; ``knockout
gimp install`` copies that folder into GIMP's plug-ins folder (see :mod:`knockout.gimp`).
"""
