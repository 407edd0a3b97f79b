"""Input formats of the call-metrics flow (`--call_event_format`), one module
per format, each turning raw records into de-duplicated OfferedCall records
(transforms/records.py); `registry.FORMATS` lists them."""
