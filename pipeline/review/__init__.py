"""Editors' review of a brief: review.json (store.py), the reviewed brief and its export
(export.py), and the local web app that records decisions (app.py, guard.py, server.py).

The review sits beside the brief and never changes it: brief.json stays what the model wrote.
"""
