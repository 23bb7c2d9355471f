"""Corpora: `corpus build` (datatrove pipeline: read → language ID → quality → dedup → PII), language ID
(`lid.load_lid_model`, `lid.predict_language`) and mixing (`corpus mix`)."""
