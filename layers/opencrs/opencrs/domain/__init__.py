"""The gallery's own terms: target records, their fields, domain errors and the ports
(Protocols) that storage adapters implement. Imports no AWS, HTTP or OpenCV code."""
