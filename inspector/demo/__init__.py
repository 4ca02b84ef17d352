"""`inspector demo`: a whole station on one machine, from a texture that ships with scikit-image to PDF reports.

product.py makes the parts, broker.py a private Mosquitto, station.py runs the daemon on the demo line,
summary.py the closing numbers, run.py puts them in order.
"""
